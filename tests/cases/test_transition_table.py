"""The workflow written out by hand: every allowed move, and the terminal states.

The expected table below is the specification, copied from the workflow's documentation, not read from
``app.cases.workflow``: allowing a move that skips a step (planning → evacuated), reopening a declined
case, or refusing to close a lost one must each fail a test here.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.cases import service as case_service
from app.cases import workflow
from app.cases.models import Case
from app.errors import Conflict
from app.stats import service as stats_service

ALL = (
    "new",
    "verifying",
    "planning",
    "in_transit",
    "evacuated",
    "resettled",
    "closed",
    "paused",
    "lost_contact",
    "declined",
    "rejected",
)

EXPECTED: dict[str, set[str]] = {
    "new": {"verifying", "paused", "lost_contact", "declined", "rejected"},
    "verifying": {"planning", "paused", "lost_contact", "declined", "rejected"},
    "planning": {"in_transit", "verifying", "paused", "lost_contact", "declined"},
    "in_transit": {"evacuated", "planning", "paused", "lost_contact", "declined"},
    "evacuated": {"resettled", "closed"},
    "resettled": {"closed"},
    "closed": set(),
    "paused": {"verifying", "planning", "in_transit", "lost_contact", "declined"},
    "lost_contact": {"verifying", "planning", "in_transit", "paused", "declined", "closed"},
    "declined": {"closed"},
    "rejected": {"closed"},
}
EXPECTED_TERMINAL = {"closed", "declined", "rejected"}
EXPECTED_NEEDS_VERIFICATION = {"planning", "in_transit"}
EXPECTED_MAIN_LINE = ["new", "verifying", "planning", "in_transit", "evacuated", "resettled", "closed"]


def test_the_statuses_are_exactly_these() -> None:
    assert [s.value for s in workflow.CaseStatus] == list(ALL)


@pytest.mark.parametrize("from_status", ALL)
@pytest.mark.parametrize("to_status", ALL)
def test_can_move_matches_the_written_table(from_status: str, to_status: str) -> None:
    assert workflow.can_move(from_status, to_status) is (to_status in EXPECTED[from_status])


@pytest.mark.parametrize("from_status", ALL)
def test_next_statuses_lists_the_written_moves_in_declaration_order(from_status: str) -> None:
    assert workflow.next_statuses(from_status) == [s for s in ALL if s in EXPECTED[from_status]]


@pytest.mark.parametrize(
    ("from_status", "to_status", "allowed"),
    [
        ("planning", "evacuated", False),  # skipping transit
        ("declined", "verifying", False),  # reopening what the person declined
        ("rejected", "verifying", False),  # reopening a suspected infiltration
        ("lost_contact", "closed", True),  # a lost case can be closed
        ("evacuated", "in_transit", False),
        ("closed", "new", False),
        ("new", "planning", False),  # planning only after verifying
    ],
)
def test_the_moves_that_matter_most(from_status: str, to_status: str, allowed: bool) -> None:
    assert workflow.can_move(from_status, to_status) is allowed


def test_terminal_needs_verification_and_main_line() -> None:
    assert {s.value for s in workflow.TERMINAL} == EXPECTED_TERMINAL
    assert {s.value for s in workflow.NEEDS_VERIFICATION} == EXPECTED_NEEDS_VERIFICATION
    assert [s.value for s in workflow.MAIN_LINE] == EXPECTED_MAIN_LINE


def test_open_statuses_in_the_statistics_are_the_non_terminal_ones() -> None:
    assert set(stats_service.OPEN_STATUSES) == set(ALL) - EXPECTED_TERMINAL


@pytest.mark.parametrize(
    ("status", "path"),
    [
        ("new", []),
        ("evacuated", ["verifying", "planning", "in_transit", "evacuated"]),
        ("closed", EXPECTED_MAIN_LINE[1:]),
        ("paused", ["paused"]),
        ("rejected", ["rejected"]),
        ("declined", ["declined"]),
        ("lost_contact", ["lost_contact"]),
    ],
)
def test_path_to_gives_the_main_line_or_the_shortest_side_path(status: str, path: list[str]) -> None:
    assert [s.value for s in workflow.path_to(status)] == path


def test_path_to_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError):
        workflow.path_to("vanished")


@pytest.mark.parametrize("terminal", sorted(EXPECTED_TERMINAL))
def test_the_service_refuses_every_move_but_the_written_ones_from_terminal_states(session, factory, terminal) -> None:
    worker, coordinator = factory.user("caseworker"), factory.user("coordinator")
    start = date.today() - timedelta(days=10)
    made = factory.case(worker, status=terminal, opened_on=start, on=start, verifier=coordinator)
    assert case_service.allowed_transitions(session.get(Case, made.id)) == [s for s in ALL if s in EXPECTED[terminal]]
    for to in ALL:
        if to in EXPECTED[terminal]:
            continue
        with pytest.raises(Conflict):
            case_service.transition(session=session, actor=worker, case_id=made.id, to=to, on=date.today())
    assert session.get(Case, made.id).status == terminal


def test_the_service_allows_closing_a_lost_case_and_refuses_planning_to_evacuated(session, factory) -> None:
    worker, coordinator = factory.user("caseworker"), factory.user("coordinator")
    start = date.today() - timedelta(days=10)
    lost = factory.case(worker, status="lost_contact", opened_on=start, on=start, verifier=coordinator)
    done = case_service.transition(session=session, actor=worker, case_id=lost.id, to="closed", on=date.today())
    assert done.status == "closed" and done.closed_on == date.today()
    planning = factory.case(worker, status="planning", opened_on=start, on=start, verifier=coordinator)
    with pytest.raises(Conflict):
        case_service.transition(session=session, actor=worker, case_id=planning.id, to="evacuated", on=date.today())
    assert session.get(Case, planning.id).status == "planning"


@pytest.mark.parametrize(("status", "refused"), [("rejected", True), ("declined", True), ("paused", False)])
def test_only_terminal_cases_refuse_verification(session, factory, status, refused) -> None:
    worker, coordinator = factory.user("caseworker"), factory.user("coordinator")
    made = factory.case(worker, status=status)
    assert not made.verified
    if refused:
        with pytest.raises(Conflict, match=f"a {status} case cannot be verified"):
            case_service.verify(session=session, actor=coordinator, case_id=made.id)
        assert session.get(Case, made.id).verified_by_id is None
    else:
        assert case_service.verify(session=session, actor=coordinator, case_id=made.id).verified


def test_path_to_a_status_the_table_cannot_reach_is_refused(monkeypatch) -> None:
    """Every status is reachable today; a table edited so one is not must fail loudly, not loop."""
    S = workflow.CaseStatus
    cut_off = {s: frozenset() for s in S} | {
        S.new: frozenset({S.verifying}),
        S.verifying: frozenset({S.planning, S.new}),
        S.planning: frozenset({S.verifying}),
    }
    monkeypatch.setattr(workflow, "TRANSITIONS", cut_off)
    with pytest.raises(ValueError, match="^no path from new to paused$"):
        workflow.path_to("paused")
