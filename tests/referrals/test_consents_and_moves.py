"""The sending side's bookkeeping, in-process: withdrawing a consent, moving a referral by hand, listing consents,
referrals and partners, removing a partner. Each expected value is written out by hand: which referrals a
withdrawal ends and in what order, the exact steps and audit lines left behind, who may see what.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.referrals import service as referral_service
from app.referrals.models import Consent, Partner, Referral, ReferralStep
from app.referrals.schemas import ConsentIn, ReferralIn
from tests.referrals.test_package import AGE_RECIPIENT, PUBLIC_B64

GIVEN = date(2026, 11, 3)
# Moves and withdrawals happen on or after the day a referral is made (today): days after it.
LATER = date.today() + timedelta(days=3)


@pytest.fixture
def partners(session) -> list[str]:
    for name in ("Shelter", "Railroad"):
        referral_service.add_partner(
            session=session, actor="admin", name=name, age_recipient=AGE_RECIPIENT, verify_key=PUBLIC_B64
        )
    return ["Shelter", "Railroad"]


def _consent(session, worker, case, *, partner: str = "Shelter", fields: list[str] | None = None) -> Any:  # type: ignore[no-untyped-def]
    return referral_service.record_consent(
        session=session,
        actor=worker,
        case_id=case.id,
        data=ConsentIn(partner=partner, given_on=GIVEN, how="spoken", fields=fields or ["full_name", "region"]),
    )


def _refer(session, worker, case, consent, *, partner: str = "Shelter", fields: list[str] | None = None) -> Any:  # type: ignore[no-untyped-def]
    return referral_service.create_referral(
        session=session,
        actor=worker,
        case_id=case.id,
        data=ReferralIn(partner=partner, fields=fields or ["full_name"], consent_id=consent.id),
    )


def _steps(session, referral_id: uuid.UUID) -> list[tuple[int, str, date, str, str]]:  # type: ignore[no-untyped-def]
    rows = session.execute(
        select(ReferralStep.position, ReferralStep.status, ReferralStep.on, ReferralStep.source, ReferralStep.actor)
        .where(ReferralStep.referral_id == referral_id)
        .order_by(ReferralStep.position)
    )
    return [tuple(r) for r in rows]


def _audit(session, action: str) -> list[tuple[str, str | None, dict]]:  # type: ignore[no-untyped-def]
    rows = session.execute(
        select(AuditEntry.actor, AuditEntry.target, AuditEntry.detail)
        .where(AuditEntry.action == action)
        .order_by(AuditEntry.seq)
    )
    return [(a, t, json.loads(d) if isinstance(d, str) else d) for a, t, d in rows]


def _case(factory, worker, **fields):  # type: ignore[no-untyped-def]
    return factory.case(worker, opened_on=GIVEN, **fields)


# --- withdrawing a consent ---------------------------------------------------------------------


def test_a_withdrawal_ends_every_open_referral_on_that_consent_in_code_order_and_nothing_else(
    session, factory, partners
) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    consent = _consent(session, worker, case)
    other = _consent(session, worker, case, partner="Railroad")
    # Two open referrals on the consent whose codes run against both the order they were made in and the order
    # of their statuses: the earlier one, accepted, has the larger code (codes are random: referrals made in
    # between are declined), so an order that is not by code shows.
    accepted, later = _refer(session, worker, case, consent), _refer(session, worker, case, consent)
    in_between = []
    while later.code > accepted.code:
        in_between.append(later)
        later = _refer(session, worker, case, consent)
    declined = _refer(session, worker, case, consent)
    for closed in (*in_between, declined):
        referral_service.move(
            session=session, actor=worker, referral_id=closed.id, to="declined", on=date.today() + timedelta(days=1)
        )
    made = [later, accepted, declined]
    kept = _refer(session, worker, case, other, partner="Railroad")
    referral_service.move(
        session=session, actor=worker, referral_id=accepted.id, to="accepted", on=date.today() + timedelta(days=2)
    )

    ended = referral_service.withdraw_consent(
        session=session, actor=worker, case_id=case.id, consent_id=consent.id, on=LATER
    )

    open_codes = [later.code, accepted.code]  # by code, not in the order made, nor by status
    assert ended == open_codes
    status = {r.code: (r.status, r.status_on) for r in session.scalars(select(Referral))}
    assert status[made[0].code] == ("withdrawn", LATER)
    assert status[accepted.code] == ("withdrawn", LATER)
    assert status[declined.code] == ("declined", date.today() + timedelta(days=1))
    assert status[kept.code][0] == "sent"
    today = made[0].sent_on
    assert _steps(session, accepted.id) == [
        (0, "sent", today, "created", worker.username),
        (1, "accepted", date.today() + timedelta(days=2), "by_hand", worker.username),
        (2, "withdrawn", LATER, "consent", worker.username),
    ]
    assert _audit(session, "referral.consent_withdraw") == [
        (worker.username, case.code, {"consent": str(consent.id), "ended": open_codes})
    ]
    (listed,) = [
        c for c in referral_service.list_consents(session=session, actor=worker, case_id=case.id) if c.id == consent.id
    ]
    assert listed.withdrawn_on == LATER


def test_a_withdrawal_with_nothing_open_ends_nothing_and_is_audited(session, factory, partners) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    consent = _consent(session, worker, case)
    assert (
        referral_service.withdraw_consent(
            session=session, actor=worker, case_id=case.id, consent_id=consent.id, on=LATER
        )
        == []
    )
    assert _audit(session, "referral.consent_withdraw") == [
        (worker.username, case.code, {"consent": str(consent.id), "ended": []})
    ]


def test_a_consent_is_withdrawn_once_only_from_its_own_case_and_by_who_may_change_the_case(
    session, factory, partners
) -> None:
    worker, stranger = factory.user("caseworker"), factory.user("caseworker")
    coordinator = factory.user("coordinator")
    case, other_case = _case(factory, worker), _case(factory, worker)
    consent = _consent(session, worker, case)
    with pytest.raises(NotFound):  # a consent of another case is not found through this one
        referral_service.withdraw_consent(session=session, actor=worker, case_id=other_case.id, consent_id=consent.id)
    with pytest.raises(NotFound):
        referral_service.withdraw_consent(session=session, actor=worker, case_id=case.id, consent_id=uuid.uuid4())
    with pytest.raises(NotFound):  # another caseworker does not see the case at all
        referral_service.withdraw_consent(session=session, actor=stranger, case_id=case.id, consent_id=consent.id)
    # A coordinator may withdraw; the day defaults to today.
    assert (
        referral_service.withdraw_consent(session=session, actor=coordinator, case_id=case.id, consent_id=consent.id)
        == []
    )
    with pytest.raises(Conflict) as again:
        referral_service.withdraw_consent(session=session, actor=worker, case_id=case.id, consent_id=consent.id)
    assert again.value.detail == "this consent was already withdrawn"
    (listed,) = referral_service.list_consents(session=session, actor=worker, case_id=case.id)
    from app.crypto import service as crypto

    assert listed.withdrawn_on == crypto.settings_of(session).today()
    assert [a for a, _t, _d in _audit(session, "referral.consent_withdraw")] == [coordinator.username]


def test_an_analyst_may_not_withdraw(session, factory, partners) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    consent = _consent(session, worker, case)
    with pytest.raises(Forbidden):
        referral_service.withdraw_consent(
            session=session, actor=factory.user("analyst"), case_id=case.id, consent_id=consent.id
        )


# --- listing consents ------------------------------------------------------------------------


def test_consents_are_listed_in_the_order_recorded_with_terms_only_for_the_assigned_caseworker(
    session, factory, partners
) -> None:
    worker = factory.user("caseworker")
    coordinator = factory.user("coordinator")
    case = _case(factory, worker)
    railroad = _consent(session, worker, case, partner="Railroad", fields=["region", "full_name"])
    shelter = _consent(session, worker, case, partner="Shelter", fields=["risk"])
    # The one with the larger id was recorded a day earlier: the list follows the day first, then the id.
    earlier, later = sorted([railroad, shelter], key=lambda c: c.id, reverse=True)
    session.get(Consent, earlier.id).recorded_on = date(2026, 11, 4)
    session.flush()
    terms = {railroad.id: ("Railroad", ["full_name", "region"]), shelter.id: ("Shelter", ["risk"])}
    mine = referral_service.list_consents(session=session, actor=worker, case_id=case.id)
    assert [(c.id, c.partner, c.given_on, c.how, c.fields, c.recorded_on, c.withdrawn_on) for c in mine] == [
        (earlier.id, terms[earlier.id][0], GIVEN, "spoken", terms[earlier.id][1], date(2026, 11, 4), None),
        (later.id, terms[later.id][0], GIVEN, "spoken", terms[later.id][1], later.recorded_on, None),
    ]
    theirs = referral_service.list_consents(session=session, actor=coordinator, case_id=case.id)
    assert [(c.id, c.partner, c.given_on, c.how, c.fields) for c in theirs] == [
        (earlier.id, terms[earlier.id][0], None, None, []),
        (later.id, terms[later.id][0], None, None, []),
    ]


# --- moving a referral by hand ---------------------------------------------------------------


def test_a_move_is_stepped_audited_and_refused_when_illegal_or_backdated(session, factory, partners) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    # To the partner added second: a look-up of the partner's name that ignored the referral would find the first.
    consent = _consent(session, worker, case, partner="Railroad")
    made = _refer(session, worker, case, consent, partner="Railroad")
    moved = referral_service.move(session=session, actor=worker, referral_id=made.id, to="accepted", on=LATER)
    assert (moved.status, moved.status_on, moved.code, moved.case_code, moved.partner) == (
        "accepted",
        LATER,
        made.code,
        case.code,
        "Railroad",
    )
    assert [(s.status, s.on, s.source, s.actor) for s in moved.steps] == [
        ("sent", made.sent_on, "created", worker.username),
        ("accepted", LATER, "by_hand", worker.username),
    ]
    assert _audit(session, "referral.status") == [
        (worker.username, case.code, {"referral": made.code, "from": "sent", "to": "accepted", "source": "by_hand"})
    ]
    with pytest.raises(Conflict) as illegal:
        referral_service.move(session=session, actor=worker, referral_id=made.id, to="declined", on=LATER)
    assert illegal.value.detail == {
        "message": "a referral cannot move from accepted to declined",
        "allowed": ["completed", "withdrawn"],
    }
    with pytest.raises(Invalid) as backdated:
        referral_service.move(
            session=session, actor=worker, referral_id=made.id, to="completed", on=LATER - timedelta(days=1)
        )
    assert backdated.value.detail == [
        {"loc": ["body", "on"], "msg": "must not be before the referral's last status change", "type": "value_error"}
    ]
    same_day = referral_service.move(session=session, actor=worker, referral_id=made.id, to="completed", on=LATER)
    assert same_day.status == "completed" and [s.status for s in same_day.steps] == ["sent", "accepted", "completed"]
    assert len(_audit(session, "referral.status")) == 2


def test_a_referral_waiting_for_approval_is_sent_only_by_a_coordinator(
    session, factory, partners, settings, monkeypatch
) -> None:
    monkeypatch.setattr(settings, "referral_approval", True)
    worker = factory.user("caseworker")
    coordinator = factory.user("coordinator")
    case = _case(factory, worker)
    made = _refer(session, worker, case, _consent(session, worker, case))
    assert made.status == "pending"
    with pytest.raises(Forbidden) as refused:
        referral_service.move(session=session, actor=worker, referral_id=made.id, to="sent")
    assert refused.value.detail == "a coordinator approves a referral"
    sent = referral_service.move(session=session, actor=coordinator, referral_id=made.id, to="sent")
    assert sent.status == "sent" and [s.actor for s in sent.steps] == [worker.username, coordinator.username]
    # The caseworker may still withdraw a pending one of their own.
    other = _refer(session, worker, case, _consent(session, worker, case))
    assert (
        referral_service.move(session=session, actor=worker, referral_id=other.id, to="withdrawn").status == "withdrawn"
    )


def test_nobody_moves_or_sees_a_referral_of_a_case_they_do_not_hold(session, factory, partners) -> None:
    worker, stranger = factory.user("caseworker"), factory.user("caseworker")
    case = _case(factory, worker)
    made = _refer(session, worker, case, _consent(session, worker, case))
    for actor in (stranger, factory.user("analyst")):
        with pytest.raises((NotFound, Forbidden)):
            referral_service.move(session=session, actor=actor, referral_id=made.id, to="withdrawn")
        with pytest.raises((NotFound, Forbidden)):
            referral_service.referral_view(session=session, actor=actor, referral_id=made.id)
    with pytest.raises(NotFound):
        referral_service.referral_view(session=session, actor=worker, referral_id=uuid.uuid4())
    assert session.get(Referral, made.id).status == "sent"


# --- listing referrals -------------------------------------------------------------------------


def test_referrals_are_listed_newest_first_then_by_code_and_only_of_visible_cases(session, factory, partners) -> None:
    worker, other_worker = factory.user("caseworker"), factory.user("caseworker")
    coordinator = factory.user("coordinator")
    case, second_case = _case(factory, worker), _case(factory, worker)
    theirs_case = _case(factory, other_worker)
    consent, second_consent = _consent(session, worker, case), _consent(session, worker, second_case)
    three = [_refer(session, worker, case, consent), _refer(session, worker, second_case, second_consent)]
    three.append(_refer(session, worker, case, consent))
    # The one with the smallest code was sent earliest: newest first puts it last, an order by code alone first.
    old = min(three, key=lambda r: r.code)
    made = [r for r in three if r is not old]
    session.get(Referral, old.id).sent_on = date(2026, 11, 4)
    session.flush()
    theirs = _refer(session, other_worker, theirs_case, _consent(session, other_worker, theirs_case))

    mine = referral_service.list_referrals(session=session, actor=worker)
    assert [r.code for r in mine] == [*sorted(r.code for r in made), old.code]
    assert {r.code: r.case_code for r in mine} == {
        three[0].code: case.code,
        three[1].code: second_case.code,
        three[2].code: case.code,
    }
    assert all(r.partner == "Shelter" and r.fields == ["full_name"] for r in mine)
    one_case = referral_service.list_referrals(session=session, actor=worker, case_id=second_case.id)
    assert [r.code for r in one_case] == [three[1].code]
    everyone = referral_service.list_referrals(session=session, actor=coordinator)
    assert sorted(r.code for r in everyone) == sorted([*(r.code for r in made), old.code, theirs.code])
    with pytest.raises(Forbidden):
        referral_service.list_referrals(session=session, actor=factory.user("analyst"))


# --- partners --------------------------------------------------------------------------------


def test_a_removed_partner_is_not_listed_or_referred_to_but_its_referrals_keep_its_name(
    session, factory, partners
) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    consent = _consent(session, worker, case)
    made = _refer(session, worker, case, consent)
    assert [p.name for p in referral_service.list_partners(session=session)] == ["Railroad", "Shelter"]
    referral_service.remove_partner(session=session, actor="admin", name="Shelter")
    assert [p.name for p in referral_service.list_partners(session=session)] == ["Railroad"]
    from app.crypto import service as crypto

    assert (
        session.scalar(select(Partner.removed_on).where(Partner.name == "Shelter"))
        == crypto.settings_of(session).today()
    )
    assert _audit(session, "partner.remove") == [("admin", "Shelter", {})]
    with pytest.raises(Invalid) as gone:
        _refer(session, worker, case, consent)
    assert "no partner named Shelter" in str(gone.value.detail)
    with pytest.raises(Invalid):
        referral_service.remove_partner(session=session, actor="admin", name="Shelter")
    assert referral_service.referral_view(session=session, actor=worker, referral_id=made.id).partner == "Shelter"
    assert [c.partner for c in referral_service.list_consents(session=session, actor=worker, case_id=case.id)] == [
        "Shelter"
    ]


def test_adding_a_partner_checks_its_name_and_keys_refuses_a_second_and_replaces_only_when_asked(
    session, factory
) -> None:
    from app.crypto import service as crypto
    from app.referrals import keys

    today = crypto.settings_of(session).today()
    added = referral_service.add_partner(
        session=session,
        actor="admin",
        name="Shelter",
        age_recipient=AGE_RECIPIENT,
        verify_key=PUBLIC_B64,
        inbox_url="https://shelter.example/inbox",
    )
    assert (added.name, added.age_recipient, added.verify_key, added.inbox_url, added.added_on) == (
        "Shelter",
        AGE_RECIPIENT,
        PUBLIC_B64,
        "https://shelter.example/inbox",
        today,
    )
    assert [p.inbox_url for p in referral_service.list_partners(session=session)] == ["https://shelter.example/inbox"]

    def invalid(field: str, message: str, **call: Any) -> None:
        values = {"name": "Other", "age_recipient": AGE_RECIPIENT, "verify_key": PUBLIC_B64, **call}
        with pytest.raises(Invalid) as refused:
            referral_service.add_partner(session=session, actor="admin", **values)
        assert refused.value.detail == [{"loc": ["body", field], "msg": message, "type": "value_error"}]

    invalid("name", "use 1-64 letters, digits, dots, dashes or underscores", name="Rainbow Railroad")
    invalid("inbox_url", "must be an https:// address", inbox_url="http://shelter.example/inbox")
    invalid("verify_key", "is this organisation's own key", verify_key=keys.verify_key(crypto.keyring_of(session)))

    with pytest.raises(Conflict) as twice:
        referral_service.add_partner(
            session=session, actor="admin", name="Shelter", age_recipient=AGE_RECIPIENT, verify_key=PUBLIC_B64
        )
    assert twice.value.detail == "partner Shelter exists; replace its keys explicitly to change them"
    other_recipient = str(__import__("pyrage").x25519.Identity.generate().to_public())
    replaced = referral_service.add_partner(
        session=session,
        actor="admin",
        name="Shelter",
        age_recipient=other_recipient,
        verify_key=PUBLIC_B64,
        replace=True,
        inbox_url="https://shelter.example/new-inbox",
    )
    assert (replaced.age_recipient, replaced.inbox_url) == (other_recipient, "https://shelter.example/new-inbox")
    assert session.scalar(select(Partner.inbox_url).where(Partner.name == "Shelter")) == (
        "https://shelter.example/new-inbox"
    )
    # A removed partner may be added again under its name without `replace`: its keys are the new ones.
    referral_service.remove_partner(session=session, actor="admin", name="Shelter")
    again = referral_service.add_partner(
        session=session, actor="admin", name="Shelter", age_recipient=AGE_RECIPIENT, verify_key=PUBLIC_B64
    )
    assert again.age_recipient == AGE_RECIPIENT and [
        p.name for p in referral_service.list_partners(session=session)
    ] == ["Shelter"]
    assert session.scalar(select(Partner.removed_on).where(Partner.name == "Shelter")) is None
    trail = session.execute(
        select(AuditEntry.actor, AuditEntry.action, AuditEntry.target, AuditEntry.detail)
        .where(AuditEntry.action.like("partner.%"))
        .order_by(AuditEntry.seq)
    ).all()
    assert [(a, act, t, json.loads(d)) for a, act, t, d in trail] == [
        ("admin", "partner.add", "Shelter", {"age_recipient": AGE_RECIPIENT}),
        ("admin", "partner.replace_keys", "Shelter", {"age_recipient": other_recipient}),
        ("admin", "partner.remove", "Shelter", {}),
        ("admin", "partner.replace_keys", "Shelter", {"age_recipient": AGE_RECIPIENT}),
    ]


def test_a_referral_to_an_unknown_or_removed_partner_names_the_partner_field(session, factory, partners) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    consent = _consent(session, worker, case)
    referral_service.remove_partner(session=session, actor="admin", name="Shelter")
    for name in ("Shelter", "Nobody"):
        with pytest.raises(Invalid) as refused:
            referral_service.create_referral(
                session=session,
                actor=worker,
                case_id=case.id,
                data=ReferralIn(partner=name, fields=["full_name"], consent_id=consent.id),
            )
        assert refused.value.detail == [
            {"loc": ["body", "partner"], "msg": f"no partner named {name}", "type": "value_error"}
        ]


def test_only_the_assigned_caseworker_records_a_consent_and_never_on_a_shredded_case(
    session, factory, partners
) -> None:
    from app.lifecycle import shred

    worker = factory.user("caseworker")
    case = _case(factory, worker)
    with pytest.raises(Forbidden) as coordinator:
        _consent(session, factory.user("coordinator"), case)
    assert coordinator.value.detail == "only the case's assigned caseworker may do this"
    shred.shred_case(session=session, actor="admin", code=case.code)
    with pytest.raises(Conflict) as shredded:
        _consent(session, worker, case)
    assert shredded.value.detail == "this case was shredded"


def test_only_an_admin_manages_partners(factory) -> None:
    for role in ("caseworker", "coordinator", "analyst"):
        with pytest.raises(Forbidden):
            referral_service.require_admin(factory.user(role))
    assert referral_service.require_admin(factory.user("admin")) is None


def test_the_list_stops_at_500_referrals(session, factory, partners) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    consent = _consent(session, worker, case)
    codes = {_refer(session, worker, case, consent).code for _ in range(501)}
    listed = [r.code for r in referral_service.list_referrals(session=session, actor=worker)]
    assert len(listed) == 500 and listed == sorted(codes)[:500]  # all made today: by code


def test_a_referrals_steps_are_shown_by_position_not_by_when_their_rows_were_written(
    session, factory, partners
) -> None:
    worker = factory.user("caseworker")
    case = _case(factory, worker)
    made = _refer(session, worker, case, _consent(session, worker, case))
    # Written out of order (as a restore or a replayed import could leave them): position 2 before position 1.
    for position, status in ((2, "completed"), (1, "accepted")):
        session.add(
            ReferralStep(referral_id=made.id, position=position, status=status, on=LATER, source="answer", actor="x")
        )
    session.flush()
    view = referral_service.referral_view(session=session, actor=worker, referral_id=made.id)
    assert [s.status for s in view.steps] == ["sent", "accepted", "completed"]


def test_consents_of_one_day_are_listed_by_id(session, factory, partners, monkeypatch) -> None:
    from app.crypto import service as crypto

    worker = factory.user("caseworker")
    case = _case(factory, worker)
    # Recorded the same day, the first with the larger id: the list does not follow the order of writing.
    ids = iter([uuid.UUID(int=2**127 + 2), uuid.UUID(int=2**127 + 1)])
    monkeypatch.setattr(crypto, "new_subject_id", lambda: next(ids))
    first = _consent(session, worker, case, partner="Shelter")
    second = _consent(session, worker, case, partner="Railroad")
    monkeypatch.undo()
    listed = referral_service.list_consents(session=session, actor=worker, case_id=case.id)
    assert [(c.id, c.partner) for c in listed] == [(second.id, "Railroad"), (first.id, "Shelter")]
