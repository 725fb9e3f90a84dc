"""The receiving side in-process: what a partner's package or answer must pass before anything is written.

Fixed keys throughout (the sender signs with the Ed25519 reference seed, this installation decrypts with a
fixed age identity), so every refusal is for the one reason the test names.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from typing import Any

import pyrage
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.cases import service as case_service
from app.contacts import service as contact_service
from app.contacts.models import Contact
from app.crypto import service as crypto
from app.errors import Invalid
from app.referrals import keys, package, receiving
from app.referrals import service as referral_service
from app.referrals.models import ReceivedReferral
from app.referrals.package import PackageError
from tests.referrals.conftest import referral_of_region
from tests.referrals.test_package import AGE_IDENTITY, AGE_RECIPIENT, PUBLIC_B64, SEED

SENDER = Ed25519PrivateKey.from_private_bytes(SEED)
SENDER_AGE = "age1uenaffa597q8q3jf5mz7vt9s6ddnqllus7cdxq9q8nqsazgucezsd7sc27"
OTHER_SEED = bytes(range(1, 33))


def _ours() -> Any:
    return pyrage.x25519.Identity.from_str(AGE_IDENTITY)


def _body(code: str = "R-7K3Q-9M", fields: Any = None, **extra: Any) -> dict[str, Any]:
    return {
        "format": package.PACKAGE,
        "version": 1,
        "code": code,
        "from": PUBLIC_B64,
        "to": AGE_RECIPIENT,
        "sent_on": "2026-12-01",
        "fields": {"full_name": "Имя Фамилия", "risk": "medium"} if fields is None else fields,
        **extra,
    }


def _sealed(body: dict[str, Any], key: Ed25519PrivateKey = SENDER) -> bytes:
    return package.encrypt(package.sign(body, key=key), recipient=AGE_RECIPIENT)


@pytest.fixture
def sender(session) -> str:
    referral_service.add_partner(
        session=session, actor="admin", name="Sender", age_recipient=SENDER_AGE, verify_key=PUBLIC_B64
    )
    return "Sender"


def _import(session, data: bytes, assign: str | None = None) -> receiving.Imported:  # type: ignore[no-untyped-def]
    return receiving.import_referral(session=session, actor="coord", data=data, identity=_ours(), assign=assign)


def test_a_package_becomes_a_contact_and_a_case_for_the_named_caseworker(session, factory, sender) -> None:
    worker = factory.account("caseworker")
    factory.account("caseworker")
    fields = {
        "full_name": "Имя Фамилия",
        "handle": "@signal-handle",
        "location": "Grozny",
        "family_situation": "two children",
        "case_notes": "needs a safe flat",
        "alias": "Sparrow",
        "contact_handle": "+7 900",
        "contact_notes": "calls at night",
        "region": "chechnya",
        "language": "ru",
        "risk": "medium",
        "needs": ["shelter"],
    }
    done = _import(session, _sealed(_body(fields=fields)), assign=worker.username)
    today = crypto.settings_of(session).today()
    assert (done.code, done.partner, done.fields) == ("R-7K3Q-9M", "Sender", sorted(fields))
    case = case_service.read_case(session=session, actor=worker.user, case_id=done.case_id)
    assert (case.code, case.assigned_to, case.opened_on) == (done.case_code, worker.username, today)
    assert (case.full_name, case.handle, case.location) == ("Имя Фамилия", "@signal-handle", "Grozny")
    assert (case.family_situation, case.notes) == ("two children", "needs a safe flat")
    contact = contact_service.read_contact(session=session, actor=worker.user, contact_id=case.contact_id)
    assert (contact.code, contact.received_on, contact.channel) == (done.contact_code, today, "referral")
    assert (contact.region, contact.language, contact.risk, contact.needs) == ("chechnya", "ru", "medium", ["shelter"])
    assert (contact.alias, contact.handle, contact.notes) == ("Sparrow", "+7 900", "calls at night")
    row = session.scalar(select(ReceivedReferral))
    digest = hashlib.sha256(package.canonical(package.sign(_body(fields=fields), key=SENDER))).hexdigest()
    assert (row.code, row.case_id, row.digest, row.imported_on, row.imported_by, row.status) == (
        "R-7K3Q-9M",
        done.case_id,
        digest,
        today,
        "coord",
        "sent",
    )
    assert row.fields == ",".join(sorted(fields))
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "referral.import"))
    assert (entry.actor, entry.target) == ("coord", done.case_code)
    assert json.loads(entry.detail) == {
        "referral": "R-7K3Q-9M",
        "partner": "Sender",
        "fields": sorted(fields),
        "assigned_to": worker.username,
    }


def test_unknown_or_missing_values_take_safe_defaults(session, factory, sender) -> None:
    worker = factory.account("caseworker")  # the only caseworker: no need to name one
    done = _import(session, _sealed(_body(fields={"region": "atlantis", "language": "xx", "needs": "shelter"})))
    case = case_service.read_case(session=session, actor=worker.user, case_id=done.case_id)
    assert case.assigned_to == worker.username and case.full_name is None
    contact = contact_service.read_contact(session=session, actor=worker.user, contact_id=case.contact_id)
    assert (contact.region, contact.language, contact.risk, contact.needs) == ("unknown", "other", "high", [])
    assert contact.alias is None
    other = _import(session, _sealed(_body(code="R-2", fields={"region": 5, "language": ["ru"]})))
    contact = contact_service.read_contact(
        session=session,
        actor=worker.user,
        contact_id=case_service.read_case(session=session, actor=worker.user, case_id=other.case_id).contact_id,
    )
    assert (contact.region, contact.language) == ("unknown", "other")


def test_who_takes_the_case(session, factory, sender) -> None:
    def refused(assign: str | None, message: str) -> None:
        with pytest.raises(Invalid) as err:
            _import(session, _sealed(_body()), assign=assign)
        assert err.value.detail == [{"loc": ["body", "assign"], "msg": message, "type": "value_error"}]

    no_one = "name the caseworker who takes the case (there is not exactly one)"
    refused(None, no_one)
    coordinator = factory.account("coordinator")
    refused(coordinator.username, f"{coordinator.username} is not an active caseworker")
    first, second = factory.account("caseworker"), factory.account("caseworker")
    refused(None, no_one)
    second.user.active = False
    session.flush()
    refused(second.username, f"{second.username} is not an active caseworker")
    assert _import(session, _sealed(_body())).case_code.startswith("C-")
    assert session.scalar(select(ReceivedReferral.imported_by)) == "coord"
    assert first.user.active


def test_forged_unknown_removed_and_altered_senders_are_refused(session, factory, sender) -> None:
    factory.account("caseworker")
    with pytest.raises(
        PackageError, match=r"^refused: the signature does not match Sender's verify key \(altered or forged\)$"
    ):
        _import(session, _sealed(_body(), key=Ed25519PrivateKey.from_private_bytes(OTHER_SEED)))
    stranger = Ed25519PrivateKey.from_private_bytes(OTHER_SEED)
    stranger_key = base64.b64encode(stranger.public_key().public_bytes_raw()).decode()
    not_partner = r"^refused: signed by an organisation that is not a partner here$"
    with pytest.raises(PackageError, match=not_partner):
        _import(session, _sealed({**_body(), "from": stranger_key}, key=stranger))
    referral_service.remove_partner(session=session, actor="admin", name="Sender")
    with pytest.raises(PackageError, match=not_partner):
        _import(session, _sealed(_body()))
    assert session.scalar(select(ReceivedReferral)) is None


@pytest.mark.parametrize("fields", [["full_name"], {"full_name": "x", "passport": "123"}, "full_name"])
def test_fields_helpline_does_not_know_are_refused(session, factory, sender, fields: Any) -> None:
    factory.account("caseworker")
    with pytest.raises(PackageError, match=r"^refused: the package carries fields Helpline does not know$"):
        _import(session, _sealed(_body(fields=fields)))


def test_a_package_without_fields_is_refused(session, factory, sender) -> None:
    factory.account("caseworker")
    body = {k: v for k, v in _body().items() if k != "fields"}
    with pytest.raises(PackageError, match=r"^refused: the package carries fields Helpline does not know$"):
        _import(session, _sealed(body))


def test_a_package_with_an_empty_set_of_fields_is_refused_and_writes_nothing(session, factory, sender) -> None:
    factory.account("caseworker")
    contacts = session.scalar(select(func.count()).select_from(Contact))
    with pytest.raises(PackageError, match=r"^refused: the package carries no field$"):
        _import(session, _sealed(_body(fields={})))
    assert session.scalar(select(func.count()).select_from(Contact)) == contacts
    assert session.scalar(select(ReceivedReferral)) is None


def test_values_helpline_would_not_accept_are_refused(session, factory, sender) -> None:
    factory.account("caseworker")
    with pytest.raises(PackageError, match=r"^refused: the package's risk is not a value Helpline accepts$"):
        _import(session, _sealed(_body(fields={"risk": "extreme"})))
    with pytest.raises(PackageError, match=r"^refused: the package's needs\.0 is not a value Helpline accepts$"):
        _import(session, _sealed(_body(fields={"needs": ["a yacht"]})))
    with pytest.raises(PackageError, match=r"^refused: a case field in the package is longer than Helpline accepts$"):
        _import(session, _sealed(_body(fields={"full_name": "x" * 100_000})))


def test_a_package_is_imported_once_per_partner_and_code(session, factory, sender) -> None:
    factory.account("caseworker")
    _import(session, _sealed(_body()))
    today = crypto.settings_of(session).today()
    again = rf"^refused: referral R-7K3Q-9M from Sender was already imported on {today.isoformat()}$"
    with pytest.raises(PackageError, match=again):
        _import(session, _sealed(_body()))
    with pytest.raises(PackageError, match=again):  # re-signed with another date: the code is the same referral
        _import(session, _sealed(_body(sent_on="2026-12-02")))
    second = _import(session, _sealed(_body(code="R-2222")))
    assert second.code == "R-2222"
    # Another partner may use the same code for its own referral.
    other = Ed25519PrivateKey.from_private_bytes(OTHER_SEED)
    other_key = base64.b64encode(other.public_key().public_bytes_raw()).decode()
    referral_service.add_partner(
        session=session, actor="admin", name="Other", age_recipient=SENDER_AGE, verify_key=other_key
    )
    third = _import(session, _sealed({**_body(), "from": other_key}, key=other))
    assert third.partner == "Other"
    earlier = session.scalar(select(ReceivedReferral).where(ReceivedReferral.partner_id == third_partner_id(session)))
    earlier.imported_on = today - timedelta(days=1)
    session.flush()
    listed = [
        (r.code, r.partner, r.case_id, r.case_code, r.imported_on, r.fields)
        for r in receiving.list_received(session=session)
    ]
    fields = ["full_name", "risk"]
    # Newest first, then by code: R-2222 was imported after R-7K3Q-9M but sorts before it.
    assert listed[0] == ("R-2222", "Sender", second.case_id, second.case_code, today, fields)
    assert listed[1][:2] == ("R-7K3Q-9M", "Sender") and listed[1][4:] == (today, fields)
    assert listed[2] == ("R-7K3Q-9M", "Other", third.case_id, third.case_code, today - timedelta(days=1), fields)


def third_partner_id(session) -> Any:  # type: ignore[no-untyped-def]
    from app.referrals.models import Partner

    return session.scalar(select(Partner.id).where(Partner.name == "Other"))


def test_the_list_of_received_referrals_stops_at_500(session, sender) -> None:
    from app.referrals.models import Partner

    partner_id = session.scalar(select(Partner.id).where(Partner.name == "Sender"))
    today = crypto.settings_of(session).today()
    session.add_all(
        ReceivedReferral(
            code=f"R-{n:04d}",
            partner_id=partner_id,
            case_id=None,
            digest=f"{n:064d}",
            imported_on=today - timedelta(days=n % 2),
            imported_by="coord",
            status="sent",
            fields="" if n == 0 else "region",
        )
        for n in range(501)
    )
    session.flush()
    listed = receiving.list_received(session=session)
    # Today's (even) codes first, in order, then yesterday's: the last odd code no longer fits.
    assert len(listed) == 500
    assert [r.code for r in listed[:2]] == ["R-0000", "R-0002"]
    assert [r.code for r in listed[250:252]] == ["R-0500", "R-0001"]
    assert listed[-1].code == "R-0497"
    assert (listed[0].case_code, listed[0].fields, listed[-1].fields) == (None, [], ["region"])


def _answer_doc(data: bytes) -> dict[str, Any]:
    return json.loads(bytes(pyrage.decrypt(data, [_ours()])))  # the sender's age recipient is the fixed one


def test_the_answer_is_signed_here_and_sealed_to_the_sender(session, factory, sender) -> None:
    factory.account("caseworker")
    _import(session, _sealed(_body()))
    today = crypto.settings_of(session).today()
    data = receiving.make_answer(session=session, actor="coord", code=" r-7k3q-9m ", status="accepted")
    doc = _answer_doc(data)
    ours = keys.verify_key(crypto.keyring_of(session))
    assert {k: v for k, v in doc.items() if k != "signature"} == {
        "format": "helpline-referral-status",
        "version": 1,
        "code": "R-7K3Q-9M",
        "from": ours,
        "to": SENDER_AGE,
        "status": "accepted",
        "on": today.isoformat(),
    }
    assert package.signature_valid(doc, verify_key=ours)
    assert session.scalar(select(ReceivedReferral.status)) == "accepted"
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "referral.answer"))
    assert (entry.actor, entry.target) == ("coord", "R-7K3Q-9M")
    assert json.loads(entry.detail) == {"partner": "Sender", "from": "sent", "to": "accepted"}
    receiving.make_answer(session=session, actor="coord", code="R-7K3Q-9M", status="completed", partner="Sender")
    assert session.scalar(select(ReceivedReferral.status)) == "completed"


def _invalid(call: Any, name: str, message: str) -> None:
    with pytest.raises(Invalid) as err:
        call()
    assert err.value.detail == [{"loc": ["body", name], "msg": message, "type": "value_error"}]


def test_answers_that_cannot_be_given_are_refused(session, factory, sender) -> None:
    factory.account("caseworker")
    _import(session, _sealed(_body()))

    def answer(code: str = "R-7K3Q-9M", status: str = "accepted", partner: str | None = None) -> Any:
        return lambda: receiving.make_answer(session=session, actor="c", code=code, status=status, partner=partner)

    _invalid(answer(status="withdrawn"), "status", "must be one of: accepted, declined, completed")
    _invalid(answer(code="R-NONE"), "code", "no referral R-NONE was received here")
    _invalid(answer(partner="Other"), "code", "no referral R-7K3Q-9M was received here")
    _invalid(answer(status="completed"), "status", "a referral that is sent cannot be answered completed")
    other = Ed25519PrivateKey.from_private_bytes(OTHER_SEED)
    other_key = base64.b64encode(other.public_key().public_bytes_raw()).decode()
    referral_service.add_partner(
        session=session, actor="admin", name="Other", age_recipient=SENDER_AGE, verify_key=other_key
    )
    _import(session, _sealed({**_body(), "from": other_key}, key=other))
    _invalid(answer(), "partner", "two partners used this code; name the partner")
    assert _answer_doc(answer(status="declined", partner="Other")())["status"] == "declined"
    assert session.scalars(select(ReceivedReferral.status).order_by(ReceivedReferral.status)).all() == [
        "declined",
        "sent",
    ]


@pytest.fixture
def referred(session, factory, sender) -> Any:
    """A referral made here to Sender (whose key is the reference seed), sent ten days ago."""
    from app.referrals.models import Referral

    made, case = referral_of_region(session, factory, partner="Sender")
    referral = session.get(Referral, made.id)
    referral.status_on = crypto.settings_of(session).today() - timedelta(days=10)
    session.flush()
    return referral, case


def _answer(code: str, *, key: Ed25519PrivateKey = SENDER, **change: Any) -> bytes:
    body = {
        "format": package.STATUS,
        "version": 1,
        "code": code,
        "from": base64.b64encode(key.public_key().public_bytes_raw()).decode(),
        "to": AGE_RECIPIENT,
        "status": "accepted",
        "on": "2000-01-01",
        **change,
    }
    return _sealed(body, key=key)


def _take(session, data: bytes) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    return receiving.import_answer(session=session, actor="coord", data=data, identity=_ours())


@pytest.mark.parametrize(("days", "kept"), [(-20, -10), (-4, -4), (5, 0)])
def test_an_answer_moves_the_referral_on_a_day_between_its_last_step_and_today(
    session, referred, days: int, kept: int
) -> None:
    from app.referrals.models import ReferralStep

    referral, case = referred
    today = crypto.settings_of(session).today()
    on = (today + timedelta(days=days)).isoformat()
    assert _take(session, _answer(referral.code, on=on)) == (referral.code, "accepted")
    assert (referral.status, referral.status_on) == ("accepted", today + timedelta(days=kept))
    step = session.scalars(select(ReferralStep).order_by(ReferralStep.position.desc())).first()
    assert (step.status, step.source, step.actor) == ("accepted", "answer", "coord")
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "referral.status"))
    assert (entry.actor, entry.target) == ("coord", case.code)


def test_an_answer_from_anyone_but_the_partner_is_refused(session, referred) -> None:
    referral, _ = referred
    stranger = Ed25519PrivateKey.from_private_bytes(OTHER_SEED)
    refused = r"^refused: the answer is not signed by the partner the referral went to$"
    with pytest.raises(PackageError, match=refused):
        _take(session, _answer(referral.code, key=stranger))
    # Claiming the partner's key without its signature is no better.
    forged = package.sign({**_answer_doc_body(referral.code), "from": PUBLIC_B64}, key=stranger)
    with pytest.raises(PackageError, match=refused):
        _take(session, package.encrypt(forged, recipient=AGE_RECIPIENT))
    with pytest.raises(PackageError, match=r"^refused: no referral with this code was made here$"):
        _take(session, _answer("R-NONE"))
    assert referral.status == "sent"


def _answer_doc_body(code: str) -> dict[str, Any]:
    return {
        "format": package.STATUS,
        "version": 1,
        "code": code,
        "to": AGE_RECIPIENT,
        "status": "accepted",
        "on": "2000-01-01",
    }


def test_the_partners_old_and_new_keys_both_answer(session, referred) -> None:
    referral, _ = referred
    new = Ed25519PrivateKey.from_private_bytes(OTHER_SEED)
    new_key = base64.b64encode(new.public_key().public_bytes_raw()).decode()
    referral_service.add_partner(
        session=session, actor="admin", name="Sender", age_recipient=SENDER_AGE, verify_key=new_key, replace=True
    )
    assert _take(session, _answer(referral.code, key=new)) == (referral.code, "accepted")
    assert _take(session, _answer(referral.code, status="completed")) == (referral.code, "completed")


@pytest.mark.parametrize("status", ["withdrawn", None, "sent"])
def test_an_answer_without_a_partners_status_is_refused(session, referred, status: str | None) -> None:
    referral, _ = referred
    with pytest.raises(PackageError, match=r"^refused: the answer carries no status a partner may give$"):
        _take(session, _answer(referral.code, status=status))


def test_an_answer_without_a_date_is_refused(session, referred) -> None:
    referral, _ = referred
    with pytest.raises(PackageError, match=r"^refused: the answer's date is not a date$"):
        _take(session, _answer(referral.code, on="yesterday"))
    assert referral.status == "sent"


@pytest.mark.parametrize("code", ["R-" + "7" * 40, "", "R-7K3Q-9M\n<script>"])
def test_a_code_that_is_not_a_referral_code_is_refused(session, factory, sender, code: str) -> None:
    factory.account("caseworker")
    with pytest.raises(PackageError, match=r"^refused: the package's code is not a referral code$"):
        _import(session, _sealed(_body(code=code)))
    assert session.scalar(select(ReceivedReferral)) is None
