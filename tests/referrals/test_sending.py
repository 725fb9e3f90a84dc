"""The sending side in-process: exactly which of a person's fields leave in a package, and when none may.

A package is opened here with the partner's fixed age identity, so each test reads what the partner would read.
Every field has a value of its own (the case's handle is not the contact's handle), so a value taken from the
wrong record or column shows.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

import pyrage
import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.contacts.models import Contact
from app.crypto import service as crypto
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.referrals import keys, package
from app.referrals import service as referral_service
from app.referrals.models import Consent, Referral
from app.referrals.schemas import ConsentIn, ReferralIn
from tests.referrals.test_package import AGE_IDENTITY, AGE_RECIPIENT, PUBLIC_B64

PARTNER = "Shelter"
CASE = {
    "full_name": "Иван Петров",
    "handle": "@case_handle",
    "location": "Грозный, ул. Мира",
    "family_situation": "двое детей",
    "notes": "записи дела",
}
CONTACT = {
    "alias": "Ваня",
    "handle": "@contact_handle",
    "notes": "записи звонка",
    "region": "dagestan",
    "language": "ce",
    "risk": "immediate",
    "needs": ["evacuation", "shelter"],
}
# What each field is in a package of that case, written out by hand.
EVERY_VALUE = {
    "full_name": "Иван Петров",
    "handle": "@case_handle",
    "location": "Грозный, ул. Мира",
    "family_situation": "двое детей",
    "case_notes": "записи дела",
    "alias": "Ваня",
    "contact_handle": "@contact_handle",
    "contact_notes": "записи звонка",
    "region": "dagestan",
    "language": "ce",
    "risk": "immediate",
    "needs": ["evacuation", "shelter"],
}


@pytest.fixture
def partner(session) -> str:
    referral_service.add_partner(
        session=session, actor="admin", name=PARTNER, age_recipient=AGE_RECIPIENT, verify_key=PUBLIC_B64
    )
    return PARTNER


def _case(factory, worker):  # type: ignore[no-untyped-def]
    contact = factory.contact(worker, received_on=date(2026, 11, 2), **CONTACT)
    return factory.case(worker, contact_id=contact.id, opened_on=date(2026, 11, 3), **CASE)


def _refer(session, worker, case, *, consented: list[str], sent: list[str]) -> Any:  # type: ignore[no-untyped-def]
    consent = referral_service.record_consent(
        session=session,
        actor=worker,
        case_id=case.id,
        data=ConsentIn(partner=PARTNER, given_on=date(2026, 11, 3), how="spoken", fields=consented),
    )
    return referral_service.create_referral(
        session=session,
        actor=worker,
        case_id=case.id,
        data=ReferralIn(partner=PARTNER, fields=sent, consent_id=consent.id),
    )


def _opened(session, actor, referral_id) -> tuple[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    code, data = referral_service.build_package(session=session, actor=actor, referral_id=referral_id)
    doc = package.decrypt(data, identity=pyrage.x25519.Identity.from_str(AGE_IDENTITY), expect=package.PACKAGE)
    return code, doc


def _refused(session, actor, referral_id, *, error: type[Exception] = Conflict, match: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """build_package refuses, and no download is audited."""
    with pytest.raises(error, match=match):
        referral_service.build_package(session=session, actor=actor, referral_id=referral_id)


def test_a_package_carries_exactly_the_fields_of_its_referral(session, factory, partner) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    consented = ["full_name", "contact_handle", "needs", "region", "case_notes"]
    made = _refer(session, worker, case, consented=consented, sent=["contact_handle", "needs", "full_name"])
    code, doc = _opened(session, worker, made.id)
    assert code == made.code
    assert doc["fields"] == {
        "full_name": "Иван Петров",
        "contact_handle": "@contact_handle",
        "needs": ["evacuation", "shelter"],
    }
    own = keys.verify_key(crypto.keyring_of(session))
    assert package.signature_valid(doc, verify_key=own)
    assert {k: v for k, v in doc.items() if k != "signature"} == {
        "format": "helpline-referral",
        "version": 1,
        "code": made.code,
        "from": own,
        "to": AGE_RECIPIENT,
        "sent_on": made.sent_on.isoformat(),
        "fields": doc["fields"],
    }


@pytest.mark.parametrize("name", sorted(EVERY_VALUE))
def test_each_field_alone_is_its_own_value(session, factory, partner, name: str) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    made = _refer(session, worker, case, consented=[name], sent=[name])
    _, doc = _opened(session, worker, made.id)
    assert doc["fields"] == {name: EVERY_VALUE[name]}


def test_every_field_at_once(session, factory, partner) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    made = _refer(session, worker, case, consented=sorted(EVERY_VALUE), sent=sorted(EVERY_VALUE))
    _, doc = _opened(session, worker, made.id)
    assert doc["fields"] == EVERY_VALUE


def test_fields_left_blank_go_as_null_and_no_needs_as_an_empty_list(session, factory, partner) -> None:
    worker = factory.user("caseworker")
    contact = factory.contact(worker, received_on=date(2026, 11, 2), needs=[])
    case = factory.case(worker, contact_id=contact.id, opened_on=date(2026, 11, 3))
    sent = ["alias", "full_name", "needs"]
    made = _refer(session, worker, case, consented=sent, sent=sent)
    _, doc = _opened(session, worker, made.id)
    assert doc["fields"] == {"alias": None, "full_name": None, "needs": []}


def test_a_coordinator_downloads_the_same_fields_and_the_download_is_audited(session, factory, partner) -> None:
    worker = factory.user("caseworker")
    coordinator = factory.user("coordinator")
    case = _case(factory, worker)
    made = _refer(session, worker, case, consented=["risk", "alias"], sent=["risk"])
    _, doc = _opened(session, coordinator, made.id)
    assert doc["fields"] == {"risk": "immediate"}
    rows = session.execute(
        select(AuditEntry.actor, AuditEntry.target, AuditEntry.detail).where(AuditEntry.action == "referral.package")
    )
    ((actor, target, detail),) = rows.all()
    assert (actor, target) == (coordinator.username, case.code)
    # The audit names the referral and the key it went to, never a field value.
    assert json.loads(detail) == {"referral": made.code, "recipient": AGE_RECIPIENT}


def test_no_package_for_anyone_else(session, factory, partner) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    made = _refer(session, worker, case, consented=["region"], sent=["region"])
    _refused(session, factory.user("caseworker"), made.id, error=NotFound)
    _refused(session, factory.user("analyst"), made.id, error=Forbidden)


@pytest.mark.parametrize("status", ["pending", "withdrawn", "declined", "completed"])
def test_no_package_once_a_referral_is_not_sent_or_accepted(session, factory, partner, status: str) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    made = _refer(session, worker, case, consented=["region"], sent=["region"])
    session.get(Referral, made.id).status = status
    session.flush()
    ended = f"^this referral is {status}; its package can no longer be downloaded$"
    _refused(
        session,
        worker,
        made.id,
        match="^this referral waits for a coordinator's approval$" if status == "pending" else ended,
    )


def test_an_accepted_referral_still_has_its_package(session, factory, partner) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    made = _refer(session, worker, case, consented=["language"], sent=["language"])
    session.get(Referral, made.id).status = "accepted"
    session.flush()
    _, doc = _opened(session, worker, made.id)
    assert doc["fields"] == {"language": "ce"}


def test_nothing_is_sent_of_a_shredded_case_or_from_a_shredded_contact(session, factory, partner) -> None:
    from app.lifecycle import shred

    worker = factory.user("caseworker")
    case = _case(factory, worker)
    made = _refer(session, worker, case, consented=["region"], sent=["region"])
    shred.shred_case(session=session, actor="admin", code=case.code)
    _refused(session, worker, made.id, match="^the case was shredded; there is nothing left to send$")

    # A shredded contact's sealed columns are emptied: its alias goes as null, nothing of it is left to send.
    other = _case(factory, worker)
    made = _refer(session, worker, other, consented=["alias", "region"], sent=["region", "alias"])
    shred.shred_contact(session=session, actor="admin", code=session.get(Contact, other.contact_id).code)
    _, doc = _opened(session, worker, made.id)
    assert doc["fields"] == {"region": "dagestan", "alias": None}


def test_a_contact_whose_key_is_destroyed_stops_the_package(session, factory, partner) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    made = _refer(session, worker, case, consented=["alias", "region"], sent=["region", "alias"])
    crypto.shred_subject(session, subject_id=case.contact_id)
    _refused(session, worker, made.id, match="^the case or its contact was shredded; there is nothing left to send$")


def test_a_withdrawn_consent_stops_a_referral_still_marked_sent(session, factory, partner) -> None:
    # Withdrawing a consent while a referral on it is being made (another transaction, not yet committed) leaves
    # that referral "sent" on a withdrawn consent: the package must still not leave.
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    made = _refer(session, worker, case, consented=["full_name"], sent=["full_name"])
    session.get(Consent, made.consent_id).withdrawn_on = date(2026, 11, 4)
    session.flush()
    assert session.get(Referral, made.id).status == "sent"
    _refused(session, worker, made.id, match="^the person's consent was withdrawn; nothing may be sent$")


def test_nothing_goes_to_a_partner_removed_after_the_referral_was_made(session, factory, partner) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    made = _refer(session, worker, case, consented=["full_name"], sent=["full_name"])
    referral_service.remove_partner(session=session, actor="admin", name=PARTNER)
    assert session.get(Referral, made.id).status == "sent"
    _refused(session, worker, made.id, match="^this partner was removed; nothing may be sent to it$")
    _refused(
        session, factory.user("coordinator"), made.id, match="^this partner was removed; nothing may be sent to it$"
    )
    assert session.scalar(select(AuditEntry).where(AuditEntry.action == "referral.package")) is None


def test_a_consent_and_a_referral_on_it_are_recorded_as_given(session, factory, partner) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    today = crypto.settings_of(session).today()
    consent = referral_service.record_consent(
        session=session,
        actor=worker,
        case_id=case.id,
        data=ConsentIn(partner=PARTNER, given_on=date(2026, 11, 3), how="written", fields=["risk", "alias", "risk"]),
    )
    assert consent.model_dump(exclude={"id"}) == {
        "partner": PARTNER,
        "given_on": date(2026, 11, 3),
        "how": "written",
        "fields": ["alias", "risk"],
        "recorded_on": today,
        "withdrawn_on": None,
    }
    (listed,) = referral_service.list_consents(session=session, actor=worker, case_id=case.id)
    assert listed == consent
    made = referral_service.create_referral(
        session=session,
        actor=worker,
        case_id=case.id,
        data=ReferralIn(partner=PARTNER, fields=["risk"], consent_id=consent.id),
    )
    assert re.fullmatch(r"R-[0-9A-Z]{4}-[0-9A-Z]{2}", made.code)
    assert [(s.status, s.on, s.source, s.actor) for s in made.steps] == [("sent", today, "created", worker.username)]
    rows = session.execute(
        select(AuditEntry.action, AuditEntry.actor, AuditEntry.target, AuditEntry.detail)
        .where(AuditEntry.action.like("referral.%"))
        .order_by(AuditEntry.action)
    )
    assert [(a, u, t, json.loads(d)) for a, u, t, d in rows] == [
        ("referral.consent", worker.username, case.code, {"partner": PARTNER}),
        (
            "referral.create",
            worker.username,
            case.code,
            {"referral": made.code, "partner": PARTNER, "fields": ["risk"]},
        ),
    ]


def test_a_referral_needs_this_persons_standing_consent_covering_every_field(session, factory, partner) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    consent = _refer(session, worker, case, consented=["alias", "region"], sent=["region"]).consent_id
    other = _refer(session, worker, _case(factory, worker), consented=["alias"], sent=["alias"]).consent_id

    def refer(fields: list[str], consent_id) -> str:  # type: ignore[no-untyped-def]
        with pytest.raises(Conflict) as err:
            referral_service.create_referral(
                session=session,
                actor=worker,
                case_id=case.id,
                data=ReferralIn(partner=PARTNER, fields=fields, consent_id=consent_id),
            )
        return err.value.detail

    assert refer(["alias", "risk", "full_name"], consent) == {
        "message": "the consent does not cover every field chosen",
        "not_covered": ["full_name", "risk"],
    }
    assert refer(["alias"], other) == "no consent of this person for this partner with that id"
    referral_service.withdraw_consent(session=session, actor=worker, case_id=case.id, consent_id=consent)
    assert refer(["alias"], consent) == "this consent was withdrawn"
    with pytest.raises(Invalid) as err:
        referral_service.record_consent(
            session=session,
            actor=worker,
            case_id=case.id,
            data=ConsentIn(partner=PARTNER, given_on=date(2026, 11, 1), how="spoken", fields=["alias"]),
        )
    assert err.value.detail == [
        {"loc": ["body", "given_on"], "msg": "must not be before the first contact", "type": "value_error"}
    ]
