"""The operational view: exact counts that equal what a coordinator can count from the rows themselves."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from app.cases.models import Case
from app.contacts.models import Contact
from app.errors import Invalid
from app.stats import service as stats_service
from app.stats.service import make_grid
from tests.stats.conftest import REGIONS, build_field_month

TODAY = date(2026, 11, 21)


def _mixed(factory, n: int = 60, seed: int = 3) -> None:
    """Small, uneven counts over days that cross week and month boundaries."""
    rnd = random.Random(seed)
    worker, coordinator = factory.user("caseworker"), factory.user("coordinator")
    for i in range(n):
        day = date(2026, 2, 20) + timedelta(days=rnd.randrange(50))
        contact = factory.contact(worker, received_on=day, region=rnd.choice(REGIONS))
        if i % 3 == 0:
            status = rnd.choice(["evacuated", "resettled", "verifying", "planning", "new"])
            factory.case(
                worker,
                contact_id=contact.id,
                status=status,
                opened_on=day,
                on=day + timedelta(days=rnd.randrange(20)),
                verifier=coordinator,
            )


@pytest.mark.parametrize("interval", ["day", "week", "month"])
def test_every_exact_figure_equals_a_count_of_the_rows(session, factory, interval) -> None:
    _mixed(factory)
    summary = stats_service.summary(
        session, start=date(2026, 2, 1), end=date(2026, 5, 31), interval=interval, today=TODAY
    )
    assert summary.view == "operational" and summary.suppressed == []
    received = session.execute(select(Contact.received_on, Contact.region)).all()
    cases = session.execute(select(Case.opened_on, Case.evacuated_on, Case.resettled_on, Case.region)).all()
    for p in summary.series:

        def inside(d: date | None, p=p) -> bool:
            return d is not None and p.start <= d <= p.end

        assert p.contacts == sum(inside(d) for d, _ in received), p.period
        assert p.cases_opened == sum(inside(o) for o, _, _, _ in cases), p.period
        assert p.evacuated == sum(inside(e) for _, e, _, _ in cases), p.period
        assert p.resettled == sum(inside(r) for _, _, r, _ in cases), p.period
    first, last = summary.from_, summary.to
    by_region = Counter(r for d, r in received if first <= d <= last)
    assert {r: n for r, n in summary.by_region["contacts"].items() if n} == dict(by_region)
    escapes = Counter(r for _, e, _, r in cases if e is not None and first <= e <= last)
    assert {r: n for r, n in summary.by_region["evacuated"].items() if n} == dict(escapes)
    assert summary.totals.contacts == sum(first <= d <= last for d, _ in received)
    # Small counts are shown as they are: nothing is hidden from the people who run the work.
    assert any(0 < (p.contacts or 0) < 5 for p in summary.series) or interval == "month"


def test_open_cases_now_equal_the_rows(session, factory) -> None:
    _mixed(factory)
    now = stats_service.status_at(session, date(2027, 1, 1))
    rows = Counter(session.execute(select(Case.status)).scalars().all())
    assert {s: n for s, n in now.items() if n} == dict(rows)
    # The same snapshot from the rows' own history, on a day inside a month.
    summary = stats_service.summary(session, start=date(2026, 3, 1), end=date(2026, 3, 17), interval="day", today=TODAY)
    assert sum(v or 0 for v in summary.open_by_status.values()) == summary.open_cases


def test_the_field_month_reads_80_and_40(session, factory) -> None:
    build_field_month(factory)
    for interval in ("day", "week", "month"):
        summary = stats_service.summary(
            session, start=date(2026, 3, 1), end=date(2026, 3, 31), interval=interval, today=TODAY
        )
        assert summary.totals.contacts == 80 and summary.totals.evacuated == 40, interval
        assert summary.totals.cases_opened == 50


def test_the_current_period_is_marked_partial(session) -> None:
    summary = stats_service.summary(session, interval="month", today=TODAY)
    assert summary.series[-1].period == "2026-11" and summary.series[-1].partial
    assert not any(p.partial for p in summary.series[:-1])
    assert len(summary.series) == 12 and summary.series[0].period == "2025-12"  # eleven full, one under way


def test_ranges_snap_to_whole_periods() -> None:
    grid = make_grid("week", date(2026, 3, 4), date(2026, 3, 10), today=TODAY)
    assert grid.first == date(2026, 3, 2) and grid.last_day == date(2026, 3, 15)
    grid = make_grid("day", date(2026, 3, 4), date(2026, 3, 10), today=TODAY)
    assert len(grid.starts) == 7
    with pytest.raises(Invalid):
        make_grid("month", date(2026, 5, 1), date(2026, 4, 1), today=TODAY)
    with pytest.raises(Invalid):
        make_grid("year", None, None, today=TODAY)
    with pytest.raises(Invalid):  # a start in the future with no end: found by fuzzing
        make_grid("month", date(5728, 4, 19), None, today=TODAY)
