"""Cases through the service: opening, the workflow and its dates, two-person verification, assignment."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.cases import service as case_service
from app.cases.models import Case, CaseTransition
from app.cases.schemas import CaseFields
from app.errors import Conflict, Forbidden, Invalid, NotFound


def test_open_case_starts_new_assigned_to_the_opener_with_an_opening_history_row(session, factory):
    worker = factory.user("caseworker")
    day = date.today() - timedelta(days=10)
    contact = factory.contact(worker, received_on=day - timedelta(days=2), region="dagestan")
    made = case_service.open_case(
        session=session, actor=worker, contact_id=contact.id, data=CaseFields(full_name="Canary Name 5512"), on=day
    )
    row = session.get(Case, made.id)
    assert made.status == "new" and made.code.startswith("C-") and made.assigned_to == worker.username
    assert (row.region, row.first_contact_on, row.opened_on, row.status_on) == (
        "dagestan",
        contact.received_on,
        day,
        day,
    )
    assert b"5512" not in row.full_name_ct
    steps = session.execute(
        select(CaseTransition.position, CaseTransition.from_status, CaseTransition.to_status).where(
            CaseTransition.case_id == made.id
        )
    ).all()
    assert steps == [(0, None, "new")]
    with pytest.raises(Conflict):
        case_service.open_case(session=session, actor=worker, contact_id=contact.id)


def test_dates_follow_the_history_and_evacuated_on_is_never_cleared(session, factory):
    worker = factory.user("caseworker")
    opened = date.today() - timedelta(days=30)
    made = factory.case(worker, status="in_transit", opened_on=opened, on=opened + timedelta(days=5))
    ev = opened + timedelta(days=9)
    case_service.transition(session=session, actor=worker, case_id=made.id, to="evacuated", on=ev)
    case_service.transition(session=session, actor=worker, case_id=made.id, to="resettled", on=ev + timedelta(days=3))
    done = case_service.transition(
        session=session, actor=worker, case_id=made.id, to="closed", on=ev + timedelta(days=4)
    )
    assert (done.evacuated_on, done.resettled_on, done.closed_on, done.status_on) == (
        ev,
        ev + timedelta(days=3),
        ev + timedelta(days=4),
        ev + timedelta(days=4),
    )
    positions = session.scalars(
        select(CaseTransition.position).where(CaseTransition.case_id == made.id).order_by(CaseTransition.position)
    ).all()
    assert positions == list(range(7))


def test_transition_dates_outside_the_case_life_are_422(session, factory):
    worker = factory.user("caseworker")
    opened = date.today() - timedelta(days=3)
    made = factory.case(worker, opened_on=opened)
    for bad in (date.today() + timedelta(days=1), opened - timedelta(days=1)):
        with pytest.raises(Invalid) as err:
            case_service.transition(session=session, actor=worker, case_id=made.id, to="verifying", on=bad)
        assert err.value.detail[0]["loc"] == ["body", "on"]
    assert session.get(Case, made.id).status == "new"


def test_the_opener_cannot_verify_and_planning_waits_for_a_second_person(session, factory):
    opener, second = factory.user("caseworker"), factory.user("caseworker")
    coordinator = factory.user("coordinator")
    made = factory.case(opener, status="verifying")
    with pytest.raises(Forbidden):
        case_service.verify(session=session, actor=opener, case_id=made.id)
    with pytest.raises(Conflict) as err:
        case_service.transition(session=session, actor=opener, case_id=made.id, to="planning", on=date.today())
    assert "planning" not in err.value.detail["allowed"]
    # A second caseworker must be assigned before they can verify; unassigned, the case is not theirs.
    with pytest.raises(NotFound):
        case_service.verify(session=session, actor=second, case_id=made.id)
    case_service.assign(session=session, actor=coordinator, case_id=made.id, username=second.username)
    verified = case_service.verify(session=session, actor=second, case_id=made.id)
    assert verified.verified is True
    moved = case_service.transition(session=session, actor=second, case_id=made.id, to="planning", on=date.today())
    assert moved.status == "planning"
    assert (
        session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "case.verify", AuditEntry.target == made.code)
        )
        == 1
    )


def test_assign_needs_an_active_caseworker(session, factory):
    worker, coordinator = factory.user("caseworker"), factory.user("coordinator")
    made = factory.case(worker)
    for name in ("nobody-of-that-name", coordinator.username):
        with pytest.raises(Invalid) as err:
            case_service.assign(session=session, actor=coordinator, case_id=made.id, username=name)
        assert err.value.detail[0]["loc"] == ["body", "user"]
    with pytest.raises(Forbidden):
        case_service.assign(session=session, actor=worker, case_id=made.id, username=worker.username)
