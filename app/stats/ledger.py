"""The release ledger: the only source of published statistics (analysts, exports, anything shared).

A release is one closed calendar month on one fixed grid — configured region × measure (contacts, cases
opened, escapes, resettled) with each measure's total, plus the open cases by status on the month's last
day — suppressed and then frozen: its figures and its suppression pattern are stored and never recomputed,
so a later correction or shred never changes what was published. When the last month of a quarter (or of
a year) is released, the quarter's (year's) own table is frozen too, suppressed jointly with every table of
that year already published (``app.stats.joint``). Frozen figures are never taken back, so the new table
hides whatever it must. No week, no day and no free range is ever published.

Suppression is decided on the ``basis`` counts stored beside the published ones: the exact counts, or with
noise on, the noisy counts (noise drawn once per month, stored; quarters and years are sums of the noisy
months, which is post-processing and costs no privacy). The loss of a noisy release, epsilon, is stated in
it and charged to its month's budget in ``stats_budget``; a release that would overspend it is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.cases.models import Case
from app.cases.workflow import CaseStatus
from app.contacts.models import Contact
from app.crypto import service as crypto
from app.errors import Conflict, Invalid, NotFound
from app.referrals import counts as referral_counts
from app.stats import counters as c
from app.stats import disclosure, joint
from app.stats.joint import month_label, parse_month  # noqa: F401 - part of this module's surface
from app.stats.models import StatsBudget, StatsRelease
from app.stats.service import status_at

TABLE_MEASURES: tuple[str, ...] = (c.CONTACTS, c.CASES_OPENED, c.EVACUATED, c.RESETTLED)
# The status snapshot covers the cases still on their way: escapes and resettlements are published as flows.
PIPELINE: tuple[str, ...] = tuple(
    s.value
    for s in (
        CaseStatus.new,
        CaseStatus.verifying,
        CaseStatus.planning,
        CaseStatus.in_transit,
        CaseStatus.paused,
        CaseStatus.lost_contact,
    )
)
OPEN_AT_END = "open_at_end"
REFERRALS = "referrals"
MECHANISM = "discrete Laplace (OpenDP), counts clamped at zero, threshold applied after noise"
AUTO_ACTOR = "system:release"


# --- reading and building ------------------------------------------------------------------------------


def _count_by_region(session: Session, day_column, region_column, first: date, end: date) -> dict[str, int]:  # type: ignore[no-untyped-def]
    query = select(region_column, func.count()).where(day_column >= first, day_column < end).group_by(region_column)
    return {region: int(n) for region, n in session.execute(query)}


def read_month(session: Session, month: date) -> dict[str, dict[str, int]]:
    """Exact counts of one month from the rows: measure -> region -> count, plus the status snapshot."""
    end = c.next_period(c.MONTH, month)
    counts = {
        c.CONTACTS: _count_by_region(session, Contact.received_on, Contact.region, month, end),
        c.CASES_OPENED: _count_by_region(session, Case.opened_on, Case.region, month, end),
        c.EVACUATED: _count_by_region(session, Case.evacuated_on, Case.region, month, end),
        c.RESETTLED: _count_by_region(session, Case.resettled_on, Case.region, month, end),
    }
    status = status_at(session, end, grain=c.MONTH)
    counts[OPEN_AT_END] = {s: max(status.get(s, 0), 0) for s in PIPELINE}
    return counts


def _noisy(counts: dict[str, dict[str, int]], regions: Sequence[str], epsilon: float) -> dict[str, dict[str, int]]:
    """Noise over each table's full fixed domain (zeros too), each table taking an equal share of epsilon."""
    share = epsilon / (len(TABLE_MEASURES) + 1)
    out: dict[str, dict[str, int]] = {}
    for name, domain in [*((m, regions) for m in TABLE_MEASURES), (OPEN_AT_END, PIPELINE)]:
        values = [counts[name].get(v, 0) for v in domain]
        out[name] = dict(zip(domain, disclosure.add_integer_noise(values, epsilon=share), strict=True))
    return out


def _tables_of(row: StatsRelease) -> dict[str, joint.Table]:
    basis = json.loads(row.basis)
    published = json.loads(row.published)
    tables = {}
    for m in TABLE_MEASURES:
        shown = published["tables"][m]
        hidden = {r for r, v in shown["cells"].items() if v is None} | (
            {joint.TOTAL} if shown["total"] is None else set()
        )
        tables[m] = joint.Table(cells=dict(basis["tables"][m]), hidden=hidden)
    return tables


def _year_rows(session: Session, year: int) -> dict[str, StatsRelease]:
    rows = session.scalars(select(StatsRelease).where(StatsRelease.period.like(f"{year:04d}%")))
    return {row.period: row for row in rows}


def _publish(table: joint.Table, regions: Sequence[str]) -> dict[str, Any]:
    hidden = table.hidden or set()
    return {
        "cells": {r: None if r in hidden else table.cells.get(r, 0) for r in regions},
        "total": None if joint.TOTAL in hidden else table.total,
    }


def _freeze(
    session: Session,
    *,
    period: str,
    kind: str,
    tables: dict[str, joint.Table],
    regions: Sequence[str],
    year: dict[str, StatsRelease],
    k: int,
    status: dict[str, int] | None,
    epsilon: float | None,
    now: datetime,
    referrals: tuple[list[str], dict[str, list[int]]] | None = None,
) -> StatsRelease:
    frozen = {p: _tables_of(row) for p, row in year.items()}
    for m in TABLE_MEASURES:
        joint_tables = {p: t[m] for p, t in frozen.items()}
        joint_tables[period] = tables[m]
        tables[m].hidden = joint.suppress_jointly(joint_tables, regions=regions, k=k)
    published: dict[str, Any] = {
        "regions": list(regions),
        "tables": {m: _publish(tables[m], regions) for m in TABLE_MEASURES},
        OPEN_AT_END: None,
    }
    basis: dict[str, Any] = {"tables": {m: tables[m].cells for m in TABLE_MEASURES}}
    if status is not None:
        values = [status.get(s, 0) for s in PIPELINE]
        shown, total = disclosure.protect_series(values, k=k)
        published[OPEN_AT_END] = {"cells": dict(zip(PIPELINE, shown, strict=True)), "total": total}
        basis[OPEN_AT_END] = dict(zip(PIPELINE, values, strict=True))
    if referrals is not None:
        published[REFERRALS], basis[REFERRALS] = _referral_tables(*referrals, k=k)
    first, last = joint.span(period)
    row = StatsRelease(
        period=period,
        kind=kind,
        first_on=first,
        last_on=last,
        created_at=now,
        k=k,
        epsilon=epsilon,
        published=json.dumps(published, sort_keys=True),
        basis=json.dumps(basis, sort_keys=True),
    )
    session.add(row)
    session.flush()
    year[period] = row
    return row


def _referral_tables(
    partners: list[str], counts: dict[str, list[int]], *, k: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A month's referrals made and accepted by partner, each a series with its total, suppressed (K and
    complementary) on its own: analysts only ever get these frozen figures and sums of shown ones."""
    published: dict[str, Any] = {"partners": partners}
    for m in referral_counts.MEASURES:
        shown, total = disclosure.protect_series(counts[m], k=k)
        published[m] = {"cells": shown, "total": total}
    return published, {"partners": partners, **counts}


def _regions(session: Session, counts: dict[str, dict[str, int]], year: dict[str, StatsRelease]) -> list[str]:
    regions = list(crypto.settings_of(session).regions)
    for row in year.values():
        regions += [r for r in json.loads(row.published)["regions"] if r not in regions]
    for m in TABLE_MEASURES:
        regions += sorted(r for r in counts.get(m, {}) if r not in regions)
    return regions


def _charge(session: Session, month: date, epsilon: float, budget: float) -> None:
    row = session.get(StatsBudget, month)
    spent = row.epsilon_spent if row else 0.0
    if spent + epsilon > budget + 1e-12:
        raise Conflict(
            f"the privacy budget of {month_label(month)} is spent "
            f"({spent:g} of {budget:g} used; this release needs {epsilon:g})"
        )
    if row is None:
        session.add(StatsBudget(month=month, epsilon_spent=epsilon))
    else:
        row.epsilon_spent = spent + epsilon
    session.flush()


def release_month(
    session: Session, *, month: date, actor: str, noise: bool | None = None, today: date | None = None
) -> list[StatsRelease]:
    """Freeze a closed month (and its quarter and year once complete); returns the releases written."""
    settings = crypto.settings_of(session)
    today = today or settings.today()
    month = month.replace(day=1)
    if month >= today.replace(day=1):
        raise Invalid.field("month", "only a month that has ended can be released")
    period = month_label(month)
    year = _year_rows(session, month.year)
    if period in year:
        raise Conflict(f"{period} is already released; a release never changes")
    noise = settings.release_noise if noise is None else noise
    counts = read_month(session, month)
    regions = _regions(session, counts, year)
    epsilon = None
    if noise:
        epsilon = settings.dp_epsilon
        _charge(session, month, epsilon, settings.dp_month_budget)
        counts = _noisy(counts, regions, epsilon)
    now = datetime.now(UTC)
    k = settings.suppression_k
    tables = {m: joint.Table(cells={r: counts[m].get(r, 0) for r in regions}) for m in TABLE_MEASURES}
    # Referral counts carry no noise, so a noisy release leaves them out rather than publish them exact.
    referrals = None if noise else referral_counts.month_grid(session, month, c.next_period(c.MONTH, month))
    written = [
        _freeze(
            session,
            period=period,
            kind="month",
            tables=tables,
            regions=regions,
            year=year,
            k=k,
            status=counts[OPEN_AT_END],
            epsilon=epsilon,
            now=now,
            referrals=referrals,
        )
    ]
    q = joint.quarter(month.month)
    longer = [(f"{month.year:04d}-Q{q}", "quarter", [f"{month.year:04d}-{3 * (q - 1) + m:02d}" for m in (1, 2, 3)])]
    longer.append((f"{month.year:04d}", "year", [f"{month.year:04d}-Q{n}" for n in (1, 2, 3, 4)]))
    for label, kind, parts in longer:
        if label in year or any(p not in year for p in parts):
            continue
        summed = {m: joint.Table(cells={r: 0 for r in regions}) for m in TABLE_MEASURES}
        noisy = any(year[p].epsilon is not None for p in parts)
        for p in parts:
            for m, table in _tables_of(year[p]).items():
                for r, v in table.cells.items():
                    summed[m].cells[r] = summed[m].cells.get(r, 0) + v
        # A sum of noisy months is post-processing: it spends nothing, and states the months' epsilon.
        eps = max((year[p].epsilon or 0.0) for p in parts) if noisy else None
        written.append(
            _freeze(
                session,
                period=label,
                kind=kind,
                tables=summed,
                regions=regions,
                year=year,
                k=k,
                status=None,
                epsilon=eps,
                now=now,
            )
        )
    audit.record(
        session, actor=actor, action="stats.release", detail={"periods": [r.period for r in written], "noise": noise}
    )
    return written


def ensure_previous_month(session: Session, *, today: date | None = None) -> None:
    """Release last month if nobody has yet: the first use after a month closes freezes it."""
    today = today or crypto.settings_of(session).today()
    previous = c.period_start(c.MONTH, today.replace(day=1) - timedelta(days=1))
    period = month_label(previous)
    if session.scalar(select(StatsRelease.id).where(StatsRelease.period == period)) is not None:
        return
    try:
        with session.begin_nested():
            release_month(session, month=previous, actor=AUTO_ACTOR, today=today)
    except IntegrityError:
        pass  # another request froze it first: theirs is the release
    except Conflict:
        pass  # the budget is spent: the month stays unreleased until someone releases it deliberately


def list_releases(session: Session) -> list[StatsRelease]:
    """Every release, oldest period first."""
    return list(session.scalars(select(StatsRelease).order_by(StatsRelease.first_on, StatsRelease.last_on)))


def get_release(session: Session, *, period: str) -> StatsRelease:
    """One release by its period (2026-03, 2026-Q1 or 2026); 404 if there is none."""
    row = session.scalar(select(StatsRelease).where(StatsRelease.period == period))
    if row is None:
        raise NotFound("no release for that period")
    return row


def released_months(session: Session, first: date, last: date) -> list[StatsRelease]:
    """The monthly releases whose months fall in [first, last], in order."""
    query = select(StatsRelease).where(
        StatsRelease.kind == "month", StatsRelease.first_on >= first, StatsRelease.first_on <= last
    )
    return list(session.scalars(query.order_by(StatsRelease.first_on)))
