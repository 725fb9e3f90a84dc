"""The status workflow of an evacuation case: one explicit table of allowed moves.

The main line is new → verifying → planning → in_transit → evacuated → resettled → closed. Side states:
a case can be paused, lose contact, or be declined by the person at any open step; a case can be rejected
(not genuine, e.g. suspected infiltration) while it is still being checked. Paused and lost cases return
to the active step they need; declined and rejected ones can only be closed.
"""

from __future__ import annotations

import enum
from datetime import date
from typing import Any


class CaseStatus(enum.StrEnum):
    new = "new"
    verifying = "verifying"
    planning = "planning"
    in_transit = "in_transit"
    evacuated = "evacuated"
    resettled = "resettled"
    closed = "closed"
    paused = "paused"
    lost_contact = "lost_contact"
    declined = "declined"
    rejected = "rejected"


S = CaseStatus

# Where each status may go next. Every move not listed here is refused with 409.
TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    S.new: frozenset({S.verifying, S.paused, S.lost_contact, S.declined, S.rejected}),
    S.verifying: frozenset({S.planning, S.paused, S.lost_contact, S.declined, S.rejected}),
    S.planning: frozenset({S.in_transit, S.verifying, S.paused, S.lost_contact, S.declined}),
    S.in_transit: frozenset({S.evacuated, S.planning, S.paused, S.lost_contact, S.declined}),
    S.evacuated: frozenset({S.resettled, S.closed}),
    S.resettled: frozenset({S.closed}),
    S.closed: frozenset(),
    S.paused: frozenset({S.verifying, S.planning, S.in_transit, S.lost_contact, S.declined}),
    S.lost_contact: frozenset({S.verifying, S.planning, S.in_transit, S.paused, S.declined, S.closed}),
    S.declined: frozenset({S.closed}),
    S.rejected: frozenset({S.closed}),
}

# Entering these needs a verification recorded by someone other than the case's opener (two-person
# rule), whichever way the case arrives: from verifying, or back from paused or lost_contact.
NEEDS_VERIFICATION: frozenset[CaseStatus] = frozenset({S.planning, S.in_transit})

# No further work happens on a case in these states.
TERMINAL: frozenset[CaseStatus] = frozenset({S.closed, S.declined, S.rejected})

# The main line, in order, for building histories (demo data, tests).
MAIN_LINE: tuple[CaseStatus, ...] = (
    S.new,
    S.verifying,
    S.planning,
    S.in_transit,
    S.evacuated,
    S.resettled,
    S.closed,
)


def can_move(from_status: str, to_status: str) -> bool:
    """Whether the table allows the move (the verification rule is checked separately)."""
    return CaseStatus(to_status) in TRANSITIONS[CaseStatus(from_status)]


def stamp(case: Any, to: str, on: date) -> None:
    """Set a case's status and the dates a move to it implies (the caller has checked the move).

    A case counts as an escape from the day it FIRST reached evacuated: these dates are never cleared.
    """
    case.status = to
    case.status_on = on
    if to == CaseStatus.evacuated and case.evacuated_on is None:
        case.evacuated_on = on
    if to == CaseStatus.resettled and case.resettled_on is None:
        case.resettled_on = on
    if to == CaseStatus.closed:
        case.closed_on = on


def next_statuses(from_status: str) -> list[str]:
    """The statuses the table allows from ``from_status``, in a stable order."""
    allowed = TRANSITIONS[CaseStatus(from_status)]
    return [s.value for s in CaseStatus if s in allowed]


def path_to(status: str) -> list[CaseStatus]:
    """A legal path from ``new`` to ``status`` (excluding ``new``): the main line if it is on it, else shortest."""
    target = CaseStatus(status)
    if target in MAIN_LINE:
        return list(MAIN_LINE[1 : MAIN_LINE.index(target) + 1])
    frontier: list[list[CaseStatus]] = [[S.new]]
    seen = {S.new}
    while frontier:
        path = frontier.pop(0)
        if path[-1] == target:
            return path[1:]
        for nxt in (s for s in CaseStatus if s in TRANSITIONS[path[-1]]):
            if nxt not in seen:
                seen.add(nxt)
                frontier.append([*path, nxt])
    raise ValueError(f"no path from new to {status}")
