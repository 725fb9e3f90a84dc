"""The statistics summary: counters folded into a fixed grid of periods, then disclosure control.

How the grid stops a reader from differencing queries: every published number is either a grid cell (one
period, one measure, maybe one region/channel/risk) or a sum of grid cells. Each period's breakdown row is
protected on its own (primary and complementary suppression against its total), so whether a cell is hidden
never depends on the range asked for. A sum over the range is published only when every cell in it is
shown, so it says nothing the single-period queries did not; if any of its cells is hidden, so is the sum.

Ranges snap outward to whole periods (``from`` back to its period's first day, ``to`` on to its period's
last day). A noisy release, and every external report, covers whole past periods only: ``to`` then snaps
inward, to the last period that has ended.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.cases.workflow import TERMINAL, CaseStatus
from app.contacts.schemas import Channel, Risk
from app.crypto import service as crypto
from app.errors import Invalid
from app.stats import counters as c
from app.stats import disclosure, release
from app.stats.schemas import MEASURES, Counts, DpInfo, Funnel, Interval, PeriodCounts, Summary

MAX_PERIODS = 600
DEFAULT_PERIODS = {"week": 13, "month": 12}
# Measures split by a dimension: the first listed dimension's rows define the measure's per-period count.
BREAKDOWNS: dict[str, tuple[str, ...]] = {
    c.CONTACTS: ("region", "channel", "risk"),
    c.CASES_OPENED: ("region",),
    c.EVACUATED: ("region",),
}
OPEN_STATUSES: tuple[str, ...] = tuple(s.value for s in CaseStatus if s not in TERMINAL)


@dataclass(frozen=True)
class Grid:
    interval: Interval
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
        year, week, _ = start.isocalendar()
        return f"{year:04d}-W{week:02d}"

    def period_end(self, i: int) -> date:
        return (self.starts[i + 1] if i + 1 < len(self.starts) else self.end) - timedelta(days=1)


@dataclass
class Raw:
    """Unprotected counts on a grid: the only place exact small numbers exist, never returned as is."""

    series: dict[str, list[int]]
    # (measure, dim) -> period index -> value -> count
    breakdowns: dict[tuple[str, str], list[dict[str, int]]]
    days: dict[int, int]
    status: dict[str, int]
    domains: dict[str, tuple[str, ...]] = field(default_factory=dict)


def make_grid(
    interval: str, start: date | None, end: date | None, *, today: date, whole_past_only: bool = False
) -> Grid:
    """The whole periods covering [start, end]; only periods that have ended when ``whole_past_only``."""
    if interval not in (c.WEEK, c.MONTH):
        raise Invalid.field("interval", "must be week or month")
    last = end or today
    if whole_past_only:
        # Inward: the last period ending on or before ``last`` that has also ended by today.
        stop = min(c.period_start(interval, last + timedelta(days=1)), c.period_start(interval, today))
        if end is None:
            stop = c.period_start(interval, today)
    else:
        stop = c.next_period(interval, c.period_start(interval, last))
    if start is None:
        first = stop
        for _ in range(DEFAULT_PERIODS[interval]):
            first = _previous(interval, first)
    else:
        first = c.period_start(interval, start)
    if start is not None and end is not None and start > end:
        raise Invalid.field("from", "must not be after to")
    starts: list[date] = []
    at = first
    while at < stop:
        starts.append(at)
        if len(starts) > MAX_PERIODS:
            raise Invalid.field("from", f"at most {MAX_PERIODS} periods at a time")
        at = c.next_period(interval, at)
    if not starts:
        raise Invalid.field("to", "the range holds no whole period that has ended")
    return Grid(interval=interval, starts=tuple(starts), end=stop)  # type: ignore[arg-type]


def _previous(interval: str, start: date) -> date:
    return c.period_start(interval, start - timedelta(days=1))


def _domains(session: Session) -> dict[str, tuple[str, ...]]:
    settings = crypto.settings_of(session)
    return {
        "region": tuple(settings.regions),
        "channel": tuple(ch.value for ch in Channel),
        "risk": tuple(r.value for r in Risk),
    }


def read_raw(session: Session, grid: Grid) -> Raw:
    """Fold the counter rows of the grid's periods into per-period counts (cost: periods, not records)."""
    n = len(grid.starts)
    index = {start: i for i, start in enumerate(grid.starts)}
    series = {m: [0] * n for m in MEASURES}
    breakdowns = {(m, d): [dict[str, int]() for _ in range(n)] for m, dims in BREAKDOWNS.items() for d in dims}
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
        i = index[period]
        if not dim:
            series[measure][i] += count
        elif measure == c.OUTCOME:
            series[c.SUSPECTED][i] += count
        elif (measure, dim) in breakdowns:
            cell = breakdowns[(measure, dim)][i]
            cell[value] = cell.get(value, 0) + count
    # The wait histogram is only published over the whole range: summed in the database.
    day_rows = session.execute(
        select(pc.value, func.sum(pc.count)).where(*in_range, pc.measure == c.DAYS).group_by(pc.value)
    )
    days = {int(value): int(total) for value, total in day_rows}
    status_rows = session.execute(
        select(pc.value, func.sum(pc.count))
        .where(pc.grain == grid.interval, pc.measure == c.STATUS, pc.period < grid.end)
        .group_by(pc.value)
    )
    status = {value: int(total) for value, total in status_rows}
    domains = _domains(session)
    for (_, dim), rows_by_period in breakdowns.items():
        extra = {v for row in rows_by_period for v in row} - set(domains[dim])
        domains[dim] = (*domains[dim], *sorted(extra))
    return Raw(series=series, breakdowns=breakdowns, days=days, status=status, domains=domains)


def summary(
    session: Session,
    *,
    start: date | None = None,
    end: date | None = None,
    interval: str = c.MONTH,
    noise: bool = False,
    today: date | None = None,
    whole_past_only: bool = False,
) -> Summary:
    """The disclosure-controlled summary of whole periods covering [start, end] (noisy and stored if asked)."""
    settings = crypto.settings_of(session)
    today = today or settings.today()
    k = settings.suppression_k
    grid = make_grid(interval, start, end, today=today, whole_past_only=whole_past_only or noise)
    raw = read_raw(session, grid)
    dp: DpInfo | None = None
    if noise:
        epsilon = settings.dp_epsilon
        params = {"interval": grid.interval, "from": grid.first, "to": grid.end, "k": k, "epsilon": epsilon}
        payload, released_on = release.stored_or_new(
            session, params=params, epsilon=epsilon, today=today, draw=lambda: _noisy(raw, epsilon)
        )
        raw = _from_payload(payload, raw.domains)
        dp = DpInfo(epsilon=epsilon, tables=sorted(payload["tables"]), released_on=released_on)
    return protect(raw, grid, k=k, dp=dp)


# --- differential privacy --------------------------------------------------------------------------


def _noisy(raw: Raw, epsilon: float) -> dict[str, Any]:
    """Noise every cell of every published table over its full fixed domain (zeros too), once."""
    n = len(raw.series[c.CONTACTS])
    breakdowns: dict[str, list[dict[str, int]]] = {}
    tables: list[str] = []
    for (measure, dim), rows in raw.breakdowns.items():
        domain = raw.domains[dim]
        flat = disclosure.add_integer_noise([row.get(v, 0) for row in rows for v in domain], epsilon=epsilon)
        breakdowns[f"{measure}.{dim}"] = [
            dict(zip(domain, flat[i * len(domain) : (i + 1) * len(domain)], strict=True)) for i in range(n)
        ]
        tables.append(f"{measure} by {dim}")
    series: dict[str, list[int]] = {}
    for measure in MEASURES:
        if measure in BREAKDOWNS:
            # Post-processing: the count is the sum of its first breakdown's noisy cells, no extra budget.
            first = breakdowns[f"{measure}.{BREAKDOWNS[measure][0]}"]
            series[measure] = [sum(row.values()) for row in first]
        else:
            series[measure] = disclosure.add_integer_noise(raw.series[measure], epsilon=epsilon)
            tables.append(measure)
    days = disclosure.add_integer_noise([raw.days.get(b, 0) for b in c.DAYS_BINS], epsilon=epsilon)
    statuses = list(OPEN_STATUSES)
    status = disclosure.add_integer_noise([raw.status.get(s, 0) for s in statuses], epsilon=epsilon)
    tables += ["days to evacuation", "open cases by status"]
    return {
        "series": series,
        "breakdowns": breakdowns,
        "days": {str(b): v for b, v in zip(c.DAYS_BINS, days, strict=True) if v},
        "status": dict(zip(statuses, status, strict=True)),
        "tables": tables,
    }


def _from_payload(payload: dict[str, Any], domains: dict[str, tuple[str, ...]]) -> Raw:
    breakdowns = {tuple(key.split(".", 1)): rows for key, rows in payload["breakdowns"].items()}
    return Raw(
        series=payload["series"],
        breakdowns=breakdowns,  # type: ignore[arg-type]
        days={int(b): v for b, v in payload["days"].items()},
        status=payload["status"],
        domains=domains,
    )


# --- disclosure control ----------------------------------------------------------------------------


def _protect_row(values: Sequence[int], k: int) -> tuple[list[int | None], int | None]:
    if not any(0 < v < k for v in values):
        return list(values), sum(values)  # nothing small: protect_series would hide nothing
    return disclosure.protect_series(values, k=k)


def protect(raw: Raw, grid: Grid, *, k: int, dp: DpInfo | None = None) -> Summary:
    """Apply suppression to grid counts and build the published summary (the only way out of Raw)."""
    n = len(grid.starts)
    hidden: list[str] = []
    cells: dict[str, list[int | None]] = {}
    by_dim: dict[str, dict[str, dict[str, int | None]]] = {"region": {}, "channel": {}, "risk": {}}
    for measure in MEASURES:
        values = raw.series[measure]
        shown: list[int | None] = [None if 0 < v < k else v for v in values]
        for dim in BREAKDOWNS.get(measure, ()):
            domain = raw.domains[dim]
            column_hidden: set[str] = set()
            sums = dict.fromkeys(domain, 0)
            for i, row in enumerate(raw.breakdowns[(measure, dim)]):
                row_values = [row.get(v, 0) for v in domain]
                released, total = _protect_row(row_values, k)
                if total is None:
                    shown[i] = None
                column_hidden.update(v for v, r in zip(domain, released, strict=True) if r is None)
                for v, count in zip(domain, row_values, strict=True):
                    sums[v] += count
            by_dim[dim][measure] = {v: None if v in column_hidden else sums[v] for v in domain}
            hidden += [f"by_{dim}.{measure}.{v}" for v in domain if v in column_hidden]
        cells[measure] = shown
    series = []
    for i in range(n):
        series.append(
            PeriodCounts(
                period=grid.label(i),
                start=grid.starts[i],
                end=grid.period_end(i),
                **{m: cells[m][i] for m in MEASURES},
            )
        )
        hidden += [f"series[{i}].{m}" for m in MEASURES if cells[m][i] is None]
    totals_map: dict[str, int | None] = {
        m: None if any(v is None for v in cells[m]) else sum(v for v in cells[m] if v is not None) for m in MEASURES
    }
    hidden += [f"totals.{m}" for m in MEASURES if totals_map[m] is None]
    totals = Counts(**totals_map)
    funnel, funnel_hidden = _funnel(totals, k)
    evacuated = totals.evacuated
    median, p90 = _quantile(raw.days, 0.5), _quantile(raw.days, 0.9)
    median_shown = disclosure.protect_quantile(median, evacuated, k=k)
    p90_shown = disclosure.protect_quantile(p90, evacuated, k=k)
    hidden += funnel_hidden
    hidden += [
        name
        for name, v, s in (
            ("median_days_to_evacuation", median, median_shown),
            ("p90_days_to_evacuation", p90, p90_shown),
        )
        if v is not None and s is None
    ]
    status_values = [max(raw.status.get(s, 0), 0) for s in OPEN_STATUSES]
    status_shown, open_cases = _protect_row(status_values, k)
    hidden += [f"open_by_status.{s}" for s, v in zip(OPEN_STATUSES, status_shown, strict=True) if v is None]
    if open_cases is None:
        hidden.append("open_cases")
    return Summary(
        interval=grid.interval,
        from_=grid.first,
        to=grid.last_day,
        k=k,
        totals=totals,
        series=series,
        by_region=by_dim["region"],
        by_channel=by_dim["channel"],
        by_risk=by_dim["risk"],
        open_by_status=dict(zip(OPEN_STATUSES, status_shown, strict=True)),
        open_cases=open_cases,
        funnel=funnel,
        median_days_to_evacuation=median_shown,
        p90_days_to_evacuation=p90_shown,
        suppressed=hidden,
        dp=dp,
    )


def _funnel(totals: Counts, k: int) -> tuple[Funnel, list[str]]:
    pairs = {
        "case_rate": (totals.cases_opened, totals.contacts),
        "escape_rate": (totals.evacuated, totals.contacts),
        "escape_rate_of_cases": (totals.evacuated, totals.cases_opened),
    }
    rates = {name: disclosure.suppress_rate(num, den, k=k) for name, (num, den) in pairs.items()}
    # A rate missing for lack of data (a zero denominator) is not a suppressed one.
    hidden = [f"funnel.{name}" for name, rate in rates.items() if rate is None and pairs[name][1] != 0]
    funnel = Funnel(contacts=totals.contacts, cases_opened=totals.cases_opened, evacuated=totals.evacuated, **rates)
    return funnel, hidden


def _quantile(histogram: dict[int, int], q: float) -> float | None:
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
