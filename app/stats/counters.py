"""Period counts kept in the same transaction as every write, so dashboards never scan records.

The contacts and cases services call the four hooks below. Each hook adds to one row per (grain, period,
measure, dimension, value) for both grains, weeks (ISO, Monday start) and calendar months, with an
upsert-increment (``count = count + n`` in SQL, never a value computed in Python), so a summary reads a
few rows per period however many records there are.

The hooks only note their deltas in the session. The unit of work applies them all at commit, summed and
in sorted key order, after every domain row and audit entry of the transaction: counter rows are the last
locks a writer takes (see the lock order in ``app/db.py``), so two writers can never wait on each other
through them. A query that reads counters in the same transaction sees the pending deltas applied first.
``rebuild_counters`` recounts everything from the base tables; ``drift`` compares the two (``helpline
stats check``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Date, Integer, String, Table, and_, delete, event, func, select
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, SessionTransaction, aliased, mapped_column

from app.cases.models import Case, CaseTransition
from app.contacts.models import Contact
from app.db import COUNTERS_STAGE, Base, commit_step, insert_on_conflict, reads_table

WEEK, MONTH = "week", "month"
GRAINS = (WEEK, MONTH)

# Measures and their dimensions ("" is the plain count).
CONTACTS, CASES_OPENED, EVACUATED, RESETTLED = "contacts", "cases_opened", "evacuated", "resettled"
FLAGGED, OUTCOME, STATUS, DAYS = "flagged", "outcome", "status", "days_to_evacuation"
SUSPECTED = "suspected_infiltration"

Key = tuple[str, date, str, str, str]


class PeriodCount(Base):
    """One counter: how many of ``measure`` (split by ``dim`` = ``value``) fell in the period."""

    __tablename__ = "period_count"
    # Small rows found only by their key: on SQLite the key is the table (no row id, no second index
    # to write), so an intake's counter moves touch half the pages.
    __table_args__ = {"sqlite_with_rowid": False}

    grain: Mapped[str] = mapped_column(String(8), primary_key=True)
    period: Mapped[date] = mapped_column(Date, primary_key=True)
    measure: Mapped[str] = mapped_column(String(32), primary_key=True)
    dim: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(32), primary_key=True)
    # For ``status`` this is a net flow (arrivals minus departures); a running sum gives the snapshot.
    count: Mapped[int] = mapped_column(Integer)


# --- the fixed grid ----------------------------------------------------------------------------------


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def month_start(day: date) -> date:
    return day.replace(day=1)


def period_start(grain: str, day: date) -> date:
    return week_start(day) if grain == WEEK else month_start(day)


def next_period(grain: str, start: date) -> date:
    if grain == WEEK:
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def days_bin(days: int) -> int:
    """The histogram bin (its lower bound) of a wait: exact to 8 weeks, then weeks, then 30-day steps."""
    days = max(days, 0)
    if days < 56:
        return days
    if days < 364:
        return days - (days - 56) % 7
    if days < 1084:
        return days - (days - 364) % 30
    return 1084


DAYS_BINS: tuple[int, ...] = tuple(sorted({days_bin(d) for d in range(0, 1100)}))


# --- writing ---------------------------------------------------------------------------------------


def _add(deltas: dict[Key, int], day: date, measure: str, dim: str = "", value: str = "", n: int = 1) -> None:
    for grain in GRAINS:
        deltas[(grain, period_start(grain, day), measure, dim, value)] += n


_PENDING = "period_count_pending"


def _note(session: Session, deltas: dict[Key, int]) -> None:
    """Keep ``deltas`` for the commit of the session's root transaction (see ``apply_pending``)."""
    root = session.get_transaction()
    held = session.info.get(_PENDING)
    if held is None or held[0] is not root:
        fresh: defaultdict[Key, int] = defaultdict(int)
        held = (root, fresh)
        session.info[_PENDING] = held
    for key, n in deltas.items():
        held[1][key] += n


@commit_step(COUNTERS_STAGE)
def apply_pending(session: Session) -> None:
    """Apply the transaction's counter deltas (the unit of work calls this at commit)."""
    held = session.info.pop(_PENDING, None)
    if held is not None and held[0] is session.get_transaction():
        _apply(session, held[1])


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    # A released or rolled-back savepoint leaves the root transaction's deltas alone (no hook runs
    # inside a savepoint); a rollback of the root drops them with everything else.
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)


@event.listens_for(Session, "do_orm_execute")
def _pending_before_reading(state: ORMExecuteState) -> None:
    # A read of the counters inside a writing transaction (a test, a bulk load that reports as it
    # goes) must see what the transaction counted so far.
    if state.is_select and _PENDING in state.session.info and reads_table(state.statement, PeriodCount.__table__):
        apply_pending(state.session)


def _upsert(dialect: str) -> Any:
    table = PeriodCount.__table__
    assert isinstance(table, Table)
    insert = insert_on_conflict(dialect)
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=["grain", "period", "measure", "dim", "value"],
        set_={"count": table.c.count + stmt.excluded["count"]},
    )


# Built once per dialect: building the upsert cost more than running it.
_UPSERTS = {dialect: _upsert(dialect) for dialect in ("postgresql", "sqlite")}


def _apply(session: Session, deltas: dict[Key, int]) -> None:
    rows = [
        {"grain": g, "period": p, "measure": m, "dim": d, "value": v, "count": n}
        for (g, p, m, d, v), n in sorted(deltas.items())  # one lock order, so concurrent writers cannot deadlock
        if n
    ]
    if not rows:
        return
    conn = session.connection()
    conn.execute(_UPSERTS[conn.dialect.name], rows)


def _contact_keys(deltas: dict[Key, int], contact: Contact, n: int) -> None:
    day = contact.received_on
    _add(deltas, day, CONTACTS, n=n)
    _add(deltas, day, CONTACTS, "channel", contact.channel, n)
    _add(deltas, day, CONTACTS, "region", contact.region, n)
    _add(deltas, day, CONTACTS, "risk", contact.risk, n)
    if contact.flagged_handle:
        _add(deltas, day, FLAGGED, n=n)
    if contact.outcome:
        _add(deltas, day, OUTCOME, "outcome", contact.outcome, n)


def contact_recorded(session: Session, *, contact: Contact) -> None:
    """Count a new contact on its received day (by channel, region, risk, flags)."""
    deltas: dict[Key, int] = defaultdict(int)
    _contact_keys(deltas, contact, 1)
    _note(session, deltas)


def contact_outcome_changed(session: Session, *, contact: Contact, old: str | None, new: str | None) -> None:
    """Move a contact between outcome counts."""
    if old == new:
        return
    deltas: dict[Key, int] = defaultdict(int)
    if old:
        _add(deltas, contact.received_on, OUTCOME, "outcome", old, -1)
    if new:
        _add(deltas, contact.received_on, OUTCOME, "outcome", new, 1)
    _note(session, deltas)


def case_opened(session: Session, *, case: Case) -> None:
    """Count a newly opened case on its opening day."""
    deltas: dict[Key, int] = defaultdict(int)
    _add(deltas, case.opened_on, CASES_OPENED)
    _add(deltas, case.opened_on, CASES_OPENED, "region", case.region)
    _add(deltas, case.opened_on, STATUS, "status", case.status)
    _note(session, deltas)


def case_moved(session: Session, *, case: Case, from_status: str | None, to_status: str, on: date) -> None:
    """Count a status change; the first arrival at ``evacuated`` counts as an escape on ``on``."""
    deltas: dict[Key, int] = defaultdict(int)
    if from_status is not None:
        _add(deltas, on, STATUS, "status", from_status, -1)
        _add(deltas, on, STATUS, "status", to_status, 1)
    # The service stamps evacuated_on / resettled_on on the first arrival only (and the workflow allows no
    # second arrival), so a stamp other than ``on`` means this is not the first.
    if to_status == EVACUATED and case.evacuated_on in (None, on):
        _add(deltas, on, EVACUATED)
        _add(deltas, on, EVACUATED, "region", case.region)
        _add(deltas, on, DAYS, "days", str(days_bin((on - case.first_contact_on).days)))
    if to_status == RESETTLED and case.resettled_on in (None, on):
        _add(deltas, on, RESETTLED)
    _note(session, deltas)


# --- recounting ------------------------------------------------------------------------------------


def rebuild_counters(session: Session) -> int:
    """Recount every counter from the base tables; returns how many counter rows now exist."""
    session.flush()
    session.info.pop(_PENDING, None)  # the base rows already hold what the pending deltas would add
    deltas = _expected(session)
    session.execute(delete(PeriodCount))
    _apply(session, deltas)
    return session.execute(select(func.count()).select_from(PeriodCount)).scalar_one()


@dataclass(frozen=True)
class Drift:
    """One counter whose stored value is not what the rows say."""

    key: Key
    stored: int
    expected: int

    def describe(self) -> str:
        grain, period, measure, dim, value = self.key
        split = f" {dim}={value}" if dim else ""
        return f"{grain} {period.isoformat()} {measure}{split}: stored {self.stored}, rows say {self.expected}"


def drift(session: Session) -> list[Drift]:
    """Every counter that differs from a recount of the rows, in key order (empty when all agree)."""
    session.flush()
    apply_pending(session)
    expected = {key: n for key, n in _expected(session).items() if n}
    stored = stored_counts(session)
    return [
        Drift(key, stored.get(key, 0), expected.get(key, 0))
        for key in sorted(expected.keys() | stored.keys())
        if stored.get(key, 0) != expected.get(key, 0)
    ]


def stored_counts(session: Session) -> dict[Key, int]:
    """The counters as stored, zero rows left out."""
    rows = session.execute(
        select(
            PeriodCount.grain,
            PeriodCount.period,
            PeriodCount.measure,
            PeriodCount.dim,
            PeriodCount.value,
            PeriodCount.count,
        )
    )
    return {(g, p, m, d, v): n for g, p, m, d, v, n in rows if n}


def _expected(session: Session) -> dict[Key, int]:
    deltas: dict[Key, int] = defaultdict(int)
    for day, n in _grouped(session, select(Contact.received_on, func.count()).group_by(Contact.received_on)):
        _add(deltas, day, CONTACTS, n=n)
    for dim in ("channel", "region", "risk"):
        column = getattr(Contact, dim)
        query = select(Contact.received_on, column, func.count()).group_by(Contact.received_on, column)
        for day, value, n in _grouped(session, query):
            _add(deltas, day, CONTACTS, dim, value, n)
    flagged = select(Contact.received_on, func.count()).where(Contact.flagged_handle.is_(True))
    for day, n in _grouped(session, flagged.group_by(Contact.received_on)):
        _add(deltas, day, FLAGGED, n=n)
    outcomes = select(Contact.received_on, Contact.outcome, func.count()).where(Contact.outcome.is_not(None))
    for day, value, n in _grouped(session, outcomes.group_by(Contact.received_on, Contact.outcome)):
        _add(deltas, day, OUTCOME, "outcome", value, n)
    _recount_cases(session, deltas)
    return deltas


def _recount_cases(session: Session, deltas: dict[Key, int]) -> None:
    opened = select(Case.opened_on, Case.region, func.count()).group_by(Case.opened_on, Case.region)
    for day, region, n in _grouped(session, opened):
        _add(deltas, day, CASES_OPENED, n=n)
        _add(deltas, day, CASES_OPENED, "region", region, n)
    evacuated = (
        select(Case.evacuated_on, Case.region, Case.first_contact_on, func.count())
        .where(Case.evacuated_on.is_not(None))
        .group_by(Case.evacuated_on, Case.region, Case.first_contact_on)
    )
    for day, region, first, n in _grouped(session, evacuated):
        _add(deltas, day, EVACUATED, n=n)
        _add(deltas, day, EVACUATED, "region", region, n)
        _add(deltas, day, DAYS, "days", str(days_bin((day - first).days)), n)
    resettled = select(Case.resettled_on, func.count()).where(Case.resettled_on.is_not(None))
    for day, n in _grouped(session, resettled.group_by(Case.resettled_on)):
        _add(deltas, day, RESETTLED, n=n)
    # A case enters its opening status on its opening day, then moves along its recorded transitions.
    for day, status, n in _opening_status(session):
        _add(deltas, day, STATUS, "status", status, n)
    moves = (
        select(CaseTransition.on, CaseTransition.from_status, CaseTransition.to_status, func.count())
        .where(CaseTransition.from_status.is_not(None))
        .group_by(CaseTransition.on, CaseTransition.from_status, CaseTransition.to_status)
    )
    for day, from_status, to_status, n in _grouped(session, moves):
        _add(deltas, day, STATUS, "status", from_status, -n)
        _add(deltas, day, STATUS, "status", to_status, n)


def _opening_status(session: Session) -> Iterable[tuple[date, str, int]]:
    """Each case's status when opened: the target of its first transition, or its status if it has none.

    The first transition is found per case through the (case, position) index: a correlated minimum,
    not a join against a grouped subquery (which SQLite cannot index and scans once per case).
    """
    later = aliased(CaseTransition)
    first_position = select(func.min(later.position)).where(later.case_id == Case.id).correlate(Case).scalar_subquery()
    opening = aliased(CaseTransition)
    # A first transition from None is the opening itself; from a status, the case opened in that status.
    status = func.coalesce(opening.from_status, opening.to_status, Case.status)
    query = (
        select(Case.opened_on, status, func.count())
        .select_from(Case)
        .outerjoin(opening, and_(opening.case_id == Case.id, opening.position == first_position))
        .group_by(Case.opened_on, status)
    )
    return _grouped(session, query)


def _grouped(session: Session, query):  # type: ignore[no-untyped-def]
    return session.execute(query)
