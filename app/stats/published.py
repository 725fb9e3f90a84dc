"""Published statistics, read from the release ledger only: the release tables and the analysts' summary.

Nothing here touches a contact, a case or a counter. The analysts' summary keeps the shape of the
operational one but is made of released months: a sum over several months is shown only when every month
in it is shown (so it says nothing the months did not), and a quarter or a year asked for exactly is read
from its own frozen table. Every figure names the release it comes from.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.orm import Session

from app.crypto import service as crypto
from app.errors import Invalid, NotFound
from app.stats import counters as c
from app.stats import ledger
from app.stats.models import StatsRelease
from app.stats.schemas import (
    MEASURES,
    Counts,
    DpInfo,
    PeriodCounts,
    Release,
    ReleaseListItem,
    ReleaseRef,
    ReleaseTable,
    Summary,
)
from app.stats.service import OPEN_STATUSES, funnel

DP_TABLES = [*ledger.TABLE_MEASURES, ledger.OPEN_AT_END]

# A release is month x region x measure: these figures of the coordinators' summary have no release.
_GRID = "a release covers counts by month and region only (contacts, cases opened, escapes, resettled)"
NOT_PUBLISHED = {
    "by_channel": f"not released: {_GRID}",
    "by_risk": f"not released: {_GRID}",
    "median_days_to_evacuation": "not released: a duration is not a count of the fixed grid a release holds",
    "p90_days_to_evacuation": "not released: a duration is not a count of the fixed grid a release holds",
    **{
        m: f"not released (totals and series): {_GRID}; known-bad alerts stay with the coordinators"
        for m in MEASURES
        if m not in ledger.TABLE_MEASURES
    },
}


def _dp(row: StatsRelease) -> DpInfo | None:
    return None if row.epsilon is None else DpInfo(epsilon=row.epsilon, tables=DP_TABLES, mechanism=ledger.MECHANISM)


def _created(row: StatsRelease) -> datetime:
    # SQLite hands a timezone-aware column back naive; it was written in UTC.
    at = row.created_at
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def ref(row: StatsRelease) -> ReleaseRef:
    return ReleaseRef(id=row.id, period=row.period, created_at=_created(row))


def item(row: StatsRelease) -> ReleaseListItem:
    return ReleaseListItem(
        id=row.id,
        period=row.period,
        kind=row.kind,  # type: ignore[arg-type]
        first_day=row.first_on,
        last_day=row.last_on,
        created_at=_created(row),
        epsilon=row.epsilon,
    )


def release(row: StatsRelease) -> Release:
    """A frozen release as published: counts by region per measure, totals, null where suppressed."""
    published: dict[str, Any] = json.loads(row.published)
    regions = published["regions"]  # stored sorted by key: put them back in the configured order
    tables = {
        m: ReleaseTable(cells={r: t["cells"][r] for r in regions}, total=t["total"])
        for m, t in sorted(published["tables"].items(), key=lambda mt: ledger.TABLE_MEASURES.index(mt[0]))
    }
    status = published.get(ledger.OPEN_AT_END)
    if status:
        status = {"cells": {s: status["cells"][s] for s in ledger.PIPELINE}, "total": status["total"]}
    suppressed = [f"{m}.{r}" for m, t in tables.items() for r, v in t.cells.items() if v is None]
    suppressed += [f"{m}.total" for m, t in tables.items() if t.total is None]
    open_at_end = ReleaseTable(**status) if status else None
    if open_at_end:
        suppressed += [f"{ledger.OPEN_AT_END}.{s}" for s, v in open_at_end.cells.items() if v is None]
        suppressed += [f"{ledger.OPEN_AT_END}.total"] if open_at_end.total is None else []
    return Release(
        id=row.id,
        period=row.period,
        kind=row.kind,  # type: ignore[arg-type]
        first_day=row.first_on,
        last_day=row.last_on,
        created_at=_created(row),
        k=row.k,
        tables=tables,
        open_at_end=open_at_end,
        suppressed=suppressed,
        dp=_dp(row),
    )


def list_releases(session: Session, *, today: date | None = None) -> list[ReleaseListItem]:
    """Every frozen release (last month's is made first if nobody has made it yet)."""
    ledger.ensure_previous_month(session, today=today)
    return [item(row) for row in ledger.list_releases(session)]


def get_release(session: Session, *, period: str, today: date | None = None) -> Release:
    """One frozen release by period; 404 if there is none."""
    ledger.ensure_previous_month(session, today=today)
    return release(ledger.get_release(session, period=period))


def _sum(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def summary(
    session: Session,
    *,
    start: date | None = None,
    end: date | None = None,
    interval: str = c.MONTH,
    today: date | None = None,
) -> Summary:
    """The summary an analyst may see: released months in [start, end] only, as frozen."""
    settings = crypto.settings_of(session)
    today = today or settings.today()
    if interval != c.MONTH:
        raise Invalid.field("interval", "published statistics come by whole released month only")
    if start is not None and end is not None and start > end:
        raise Invalid.field("from", "must not be after to")
    ledger.ensure_previous_month(session, today=today)
    first = c.period_start(c.MONTH, start) if start else date(1, 1, 1)
    last = end or today
    rows = ledger.released_months(session, first, last)
    if start is None and len(rows) > 12:
        rows = rows[-12:]
    if not rows:
        raise Invalid.field("to", "no released month in that range")
    releases = [release(r) for r in rows]
    series = []
    suppressed: list[str] = []
    for i, (row, rel) in enumerate(zip(rows, releases, strict=True)):
        values = {m: rel.tables[m].total if m in rel.tables else None for m in MEASURES}
        series.append(PeriodCounts(period=row.period, start=row.first_on, end=row.last_on, release=ref(row), **values))
        suppressed += [f"series[{i}].{m}" for m, v in values.items() if v is None and m in ledger.TABLE_MEASURES]
    totals = Counts(**{m: _sum([getattr(p, m) for p in series]) for m in MEASURES})
    suppressed += [f"totals.{m}" for m in ledger.TABLE_MEASURES if getattr(totals, m) is None]
    refs = [ref(r) for r in rows]
    longer = _exact_longer(session, rows)
    regions = json.loads(rows[-1].published)["regions"]
    by_region: dict[str, dict[str, int | None]] = {}
    for m in ledger.TABLE_MEASURES:
        if longer is not None:
            cells = release(longer).tables[m].cells
            by_region[m] = {r: cells.get(r) for r in regions}
        else:
            by_region[m] = {r: _sum([rel.tables[m].cells.get(r, 0) for rel in releases]) for r in regions}
        suppressed += [f"by_region.{m}.{r}" for r, v in by_region[m].items() if v is None]
    if longer is not None:
        refs.append(ref(longer))
    status = releases[-1].open_at_end
    open_by_status: dict[str, int | None] = {s: None for s in OPEN_STATUSES}
    if status is not None:
        open_by_status.update({s: v for s, v in status.cells.items() if s in open_by_status})
    suppressed += [f"open_by_status.{s}" for s, v in open_by_status.items() if v is None]
    return Summary(
        interval="month",
        from_=rows[0].first_on,
        to=rows[-1].last_on,
        k=rows[-1].k,
        view="published",
        totals=totals,
        series=series,
        by_region=by_region,
        by_channel=None,
        by_risk=None,
        open_by_status=open_by_status,
        open_cases=status.total if status else None,
        funnel=funnel(totals),
        median_days_to_evacuation=None,
        p90_days_to_evacuation=None,
        suppressed=suppressed,
        not_published=NOT_PUBLISHED,
        releases=refs,
        dp=_dp(rows[-1]),
    )


def _exact_longer(session: Session, rows: list[StatsRelease]) -> StatsRelease | None:
    """The quarter or year release that covers exactly these months, if the range is one."""
    first, last = rows[0].first_on, rows[-1].last_on
    for period in (f"{first.year:04d}", f"{first.year:04d}-Q{(first.month - 1) // 3 + 1}"):
        try:
            row = ledger.get_release(session, period=period)
        except NotFound:
            continue
        if row.first_on == first and row.last_on == last and len(rows) == (12 if len(period) == 4 else 3):
            return row
    return None
