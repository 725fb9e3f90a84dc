"""The operational view: exact counts for the people who already see every case's region, dates and status.

Coordinators and admins list every case with its region, opening day and status; hiding a count they can
recount from that list protects nobody and costs them the dashboard. So this view applies no suppression:
it is exact at day, week and month grain, by region, channel, risk and status, and still holds no name,
no sealed field and no free text. Published figures (analysts, exports) never come from here: they come
from the release ledger (``app.stats.ledger``), which is where disclosure control sits.

Weeks and months are read from the period counters (a few rows per period, however many records there
are); days, which the counters do not keep, are grouped from the rows themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from app.cases.models import Case, CaseTransition
from app.cases.workflow import TERMINAL, CaseStatus
from app.contacts.models import Contact
from app.contacts.schemas import Channel, Risk
from app.crypto import service as crypto
from app.errors import Invalid
from app.stats import counters as c
from app.stats.schemas import MEASURES, Counts, Funnel, PeriodCounts, Summary

DAY = "day"
MAX_PERIODS = 800
DEFAULT_PERIODS = {DAY: 31, c.WEEK: 13, c.MONTH: 12}
BREAKDOWNS: dict[str, tuple[str, ...]] = {
    c.CONTACTS: ("region", "channel", "risk"),
    c.CASES_OPENED: ("region",),
    c.EVACUATED: ("region",),
}
OPEN_STATUSES: tuple[str, ...] = tuple(s.value for s in CaseStatus if s not in TERMINAL)


def period_start(interval: str, day: date) -> date:
    return day if interval == DAY else c.period_start(interval, day)


def next_period(interval: str, start: date) -> date:
    return start + timedelta(days=1) if interval == DAY else c.next_period(interval, start)


@dataclass(frozen=True)
class Grid:
    interval: str
    starts: tuple[date, ...]
    end: date  # exclusive

    @property
    def first(self) -> date:
        return self.starts[0]

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def label(self, i: int) -> str:
        start = self.starts[i]
        if self.interval == c.MONTH:
            return f"{start.year:04d}-{start.month:02d}"
        if self.interval == DAY:
            return start.isoformat()
        year, week, _ = start.isocalendar()
        return f"{year:04d}-W{week:02d}"

    def period_end(self, i: int) -> date:
        return (self.starts[i + 1] if i + 1 < len(self.starts) else self.end) - timedelta(days=1)


def make_grid(interval: str, start: date | None, end: date | None, *, today: date) -> Grid:
    """The whole periods covering [start, end]; by default the last few periods up to today's."""
    if interval not in (DAY, c.WEEK, c.MONTH):
        raise Invalid.field("interval", "must be day, week or month")
    if start is not None and start > (end or today):
        raise Invalid.field("from", "must not be after to (today when to is not given)")
    stop = next_period(interval, period_start(interval, end or today))
    if start is None:
        first = stop
        for _ in range(DEFAULT_PERIODS[interval]):
            first = period_start(interval, first - timedelta(days=1))
    else:
        first = period_start(interval, start)
    starts: list[date] = []
    at = first
    while at < stop:
        starts.append(at)
        if len(starts) > MAX_PERIODS:
            raise Invalid.field("from", "at most {count} periods at a time", count=MAX_PERIODS)
        at = next_period(interval, at)
    return Grid(interval=interval, starts=tuple(starts), end=stop)


@dataclass
class Exact:
    """Exact counts on a grid."""

    series: dict[str, list[int]]
    # (measure, dim) -> value -> count over the whole grid
    breakdowns: dict[tuple[str, str], dict[str, int]]
    days: dict[int, int]  # wait from first contact to escape (binned days) -> escapes, over the grid
    status: dict[str, int]  # open cases by status at the grid's end


def _domains(session: Session) -> dict[str, tuple[str, ...]]:
    return {
        "region": tuple(crypto.settings_of(session).regions),
        "channel": tuple(ch.value for ch in Channel),
        "risk": tuple(r.value for r in Risk),
    }


def _empty(n: int) -> Exact:
    return Exact(
        series={m: [0] * n for m in MEASURES},
        breakdowns={(m, d): {} for m, dims in BREAKDOWNS.items() for d in dims},
        days={},
        status={},
    )


def read_counters(session: Session, grid: Grid) -> Exact:
    """Fold the counter rows of the grid's weeks or months (cost: periods, not records)."""
    index = {start: i for i, start in enumerate(grid.starts)}
    out = _empty(len(grid.starts))
    # Core columns, not ORM entities: these rows are folded, never loaded as objects.
    pc = c.PeriodCount.__table__.c
    in_range = (pc.grain == grid.interval, pc.period >= grid.first, pc.period < grid.end)
    rows = session.execute(
        select(pc.period, pc.measure, pc.dim, pc.value, pc.count).where(
            *in_range,
            pc.measure.not_in((c.STATUS, c.DAYS)),
            or_(pc.measure != c.OUTCOME, pc.value == c.SUSPECTED),
        )
    )
    for period, measure, dim, value, count in rows:
        if not dim:
            out.series[measure][index[period]] += count
        elif measure == c.OUTCOME:
            out.series[c.SUSPECTED][index[period]] += count
        elif (measure, dim) in out.breakdowns:
            cell = out.breakdowns[(measure, dim)]
            cell[value] = cell.get(value, 0) + count
    day_rows = session.execute(
        select(pc.value, func.sum(pc.count)).where(*in_range, pc.measure == c.DAYS).group_by(pc.value)
    )
    out.days = {int(value): int(total) for value, total in day_rows}
    out.status = status_at(session, grid.end, grain=grid.interval)
    return out


def status_at(session: Session, end: date, *, grain: str = c.MONTH) -> dict[str, int]:
    """Cases by status at the start of ``end`` (a period boundary of ``grain``): the running sum of moves."""
    pc = c.PeriodCount.__table__.c
    rows = session.execute(
        select(pc.value, func.sum(pc.count))
        .where(pc.grain == grain, pc.measure == c.STATUS, pc.period < end)
        .group_by(pc.value)
    )
    return {value: int(total) for value, total in rows}


def read_rows(session: Session, grid: Grid) -> Exact:
    """Day grain, grouped from the rows (the counters keep weeks and months only)."""
    first, end = grid.first, grid.end
    index = {start: i for i, start in enumerate(grid.starts)}
    out = _empty(len(grid.starts))

    def fold(measure: str, day_column, *where, dims: Iterable[str] = ()) -> None:  # type: ignore[no-untyped-def]
        query = select(day_column, func.count()).where(day_column >= first, day_column < end, *where)
        for day, n in session.execute(query.group_by(day_column)):
            out.series[measure][index[day]] += n
        for dim in dims:
            model = Contact if measure == c.CONTACTS else Case
            column = getattr(model, dim)
            grouped = select(column, func.count()).where(day_column >= first, day_column < end, *where)
            out.breakdowns[(measure, dim)] = {v: int(n) for v, n in session.execute(grouped.group_by(column))}

    fold(c.CONTACTS, Contact.received_on, dims=BREAKDOWNS[c.CONTACTS])
    fold(c.FLAGGED, Contact.received_on, Contact.flagged_handle.is_(True))
    fold(c.SUSPECTED, Contact.received_on, Contact.outcome == c.SUSPECTED)
    fold(c.CASES_OPENED, Case.opened_on, dims=BREAKDOWNS[c.CASES_OPENED])
    fold(c.EVACUATED, Case.evacuated_on, dims=BREAKDOWNS[c.EVACUATED])
    fold(c.RESETTLED, Case.resettled_on)
    waits = select(Case.evacuated_on, Case.first_contact_on, func.count()).where(
        Case.evacuated_on >= first, Case.evacuated_on < end
    )
    for evacuated, first_contact, n in session.execute(waits.group_by(Case.evacuated_on, Case.first_contact_on)):
        b = c.days_bin((evacuated - first_contact).days) if evacuated else 0
        out.days[b] = out.days.get(b, 0) + n
    out.status = _status_on_rows(session, end)
    return out


def _status_on_rows(session: Session, end: date) -> dict[str, int]:
    """Cases by status at the start of ``end``: each case's last move before it (or its opening status)."""
    last = (
        select(CaseTransition.case_id, func.max(CaseTransition.position).label("position"))
        .where(CaseTransition.on < end)
        .group_by(CaseTransition.case_id)
        .subquery()
    )
    moved = (
        select(CaseTransition.to_status, func.count())
        .join(last, and_(last.c.case_id == CaseTransition.case_id, last.c.position == CaseTransition.position))
        .group_by(CaseTransition.to_status)
    )
    status: dict[str, int] = {v: int(n) for v, n in session.execute(moved)}
    # A case with no recorded move yet sits in its opening status.
    unmoved = (
        select(Case.status, func.count())
        .where(Case.opened_on < end, ~Case.id.in_(select(last.c.case_id)))
        .group_by(Case.status)
    )
    for value, n in session.execute(unmoved):
        status[value] = status.get(value, 0) + n
    return status


def summary(
    session: Session,
    *,
    start: date | None = None,
    end: date | None = None,
    interval: str = c.MONTH,
    today: date | None = None,
) -> Summary:
    """The exact summary of whole periods covering [start, end] (operational view, nothing suppressed)."""
    settings = crypto.settings_of(session)
    today = today or settings.today()
    grid = make_grid(interval, start, end, today=today)
    exact = read_rows(session, grid) if interval == DAY else read_counters(session, grid)
    return build(exact, grid, k=settings.suppression_k, today=today, domains=_domains(session))


def build(exact: Exact, grid: Grid, *, k: int, today: date, domains: dict[str, tuple[str, ...]]) -> Summary:
    """The summary's shape from exact counts; a period that has not ended is marked partial."""
    n = len(grid.starts)
    series = [
        PeriodCounts(
            period=grid.label(i),
            start=grid.starts[i],
            end=grid.period_end(i),
            partial=grid.period_end(i) >= today,
            **{m: exact.series[m][i] for m in MEASURES},
        )
        for i in range(n)
    ]
    totals = Counts(**{m: sum(exact.series[m]) for m in MEASURES})
    by_dim: dict[str, dict[str, dict[str, int | None]]] = {"region": {}, "channel": {}, "risk": {}}
    for (measure, dim), cells in exact.breakdowns.items():
        domain = (*domains[dim], *sorted(set(cells) - set(domains[dim])))
        by_dim[dim][measure] = {v: cells.get(v, 0) for v in domain}
    status = {s: max(exact.status.get(s, 0), 0) for s in OPEN_STATUSES}
    return Summary(
        interval=grid.interval,
        from_=grid.first,
        to=grid.last_day,
        k=k,
        view="operational",
        totals=totals,
        series=series,
        by_region=by_dim["region"],
        by_channel=by_dim["channel"],
        by_risk=by_dim["risk"],
        open_by_status=status,  # type: ignore[arg-type]
        open_cases=sum(status.values()),
        funnel=funnel(totals),
        median_days_to_evacuation=quantile(exact.days, 0.5),
        p90_days_to_evacuation=quantile(exact.days, 0.9),
        suppressed=[],
    )


def funnel(totals: Counts) -> Funnel:
    def rate(num: int | None, den: int | None) -> float | None:
        return None if num is None or not den else num / den

    return Funnel(
        contacts=totals.contacts,
        cases_opened=totals.cases_opened,
        evacuated=totals.evacuated,
        case_rate=rate(totals.cases_opened, totals.contacts),
        escape_rate=rate(totals.evacuated, totals.contacts),
        escape_rate_of_cases=rate(totals.evacuated, totals.cases_opened),
    )


def quantile(histogram: dict[int, int], q: float) -> float | None:
    """Nearest-rank quantile of binned day counts (the bin's lower bound), from counts alone."""
    total = sum(v for v in histogram.values() if v > 0)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total - 1e-9))
    seen = 0
    for days in sorted(histogram):
        seen += max(histogram[days], 0)
        if seen >= rank:
            return float(days)
    return float(max(histogram))


def verified_between(session: Session, start: date, end: date) -> int:
    """Cases whose verification by a second person was recorded on a day in [start, end)."""
    query = select(func.count()).where(Case.verified_on >= start, Case.verified_on < end)
    return int(session.execute(query).scalar_one())
