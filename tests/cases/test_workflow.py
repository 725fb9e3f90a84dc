"""The workflow table, every (from, to) pair: allowed moves succeed, the rest are 409 and change nothing."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.cases import service as case_service
from app.cases import workflow
from app.cases.models import Case, CaseTransition
from app.cases.workflow import CaseStatus
from app.errors import Conflict

STATUSES = list(CaseStatus)


def test_the_table_covers_every_status_and_the_main_line_is_legal():
    assert set(workflow.TRANSITIONS) == set(CaseStatus)
    for a, b in zip(workflow.MAIN_LINE, workflow.MAIN_LINE[1:], strict=False):
        assert workflow.can_move(a, b)
    assert workflow.TRANSITIONS[CaseStatus.closed] == frozenset()
    for status in STATUSES:
        assert CaseStatus.new not in workflow.TRANSITIONS[status]  # nothing goes back to "new"
        assert status not in workflow.TRANSITIONS[status]  # no move to the same status
        assert workflow.path_to(status)[-1:] == ([status] if status != CaseStatus.new else [])


def _case_in(session, factory, worker, coordinator, status, start):
    """A case at ``status``, verified by the coordinator whenever that is still possible."""
    made = factory.case(worker, status=status.value, opened_on=start, on=start, verifier=coordinator)
    if not made.verified and status not in workflow.TERMINAL:
        case_service.verify(session=session, actor=coordinator, case_id=made.id, on=start)
    return made


def _state(session, case_id):
    row = session.get(Case, case_id)
    session.refresh(row)
    history = session.scalar(select(func.count()).select_from(CaseTransition).where(CaseTransition.case_id == case_id))
    audits = session.scalar(select(func.count()).select_from(AuditEntry))
    return (row.status, row.status_on, row.evacuated_on, row.closed_on, history, audits)


@pytest.mark.parametrize("from_status", STATUSES, ids=[s.value for s in STATUSES])
def test_every_pair_of_the_transition_matrix(session, factory, from_status):
    worker, coordinator = factory.user("caseworker"), factory.user("coordinator")
    start = date.today() - timedelta(days=20)
    step_day = date.today() - timedelta(days=1)
    refused_case = _case_in(session, factory, worker, coordinator, from_status, start)
    for to in STATUSES:
        if workflow.can_move(from_status, to):
            case = _case_in(session, factory, worker, coordinator, from_status, start)
            before = _state(session, case.id)
            moved = case_service.transition(session=session, actor=worker, case_id=case.id, to=to.value, on=step_day)
            after = _state(session, case.id)
            assert moved.status == to and after[0] == to.value
            assert after[4] == before[4] + 1  # one more history row
            assert after[5] == before[5] + 1  # one audit entry for the move
            assert after[1] == step_day
        else:
            before = _state(session, refused_case.id)
            with pytest.raises(Conflict) as err:
                case_service.transition(
                    session=session, actor=worker, case_id=refused_case.id, to=to.value, on=step_day
                )
            assert err.value.detail["allowed"] == case_service.allowed_transitions(session.get(Case, refused_case.id))
            assert to.value not in err.value.detail["allowed"]
            assert _state(session, refused_case.id) == before


@pytest.mark.parametrize("via", [CaseStatus.paused, CaseStatus.lost_contact])
def test_side_states_cannot_skip_verification(session, factory, via):
    worker = factory.user("caseworker")
    made = factory.case(worker, status="new")
    case_service.transition(session=session, actor=worker, case_id=made.id, to=via.value, on=date.today())
    for target in ("planning", "in_transit"):
        with pytest.raises(Conflict):
            case_service.transition(session=session, actor=worker, case_id=made.id, to=target, on=date.today())
    assert case_service.allowed_transitions(session.get(Case, made.id)) == [
        s for s in workflow.next_statuses(via) if s not in ("planning", "in_transit")
    ]


def test_evacuated_on_is_kept_from_the_first_arrival(session, factory):
    worker = factory.user("caseworker")
    first = date.today() - timedelta(days=10)
    made = factory.case(worker, status="evacuated", opened_on=first - timedelta(days=5), on=first)
    done = case_service.transition(session=session, actor=worker, case_id=made.id, to="closed", on=date.today())
    assert done.evacuated_on == first and done.closed_on == date.today()
