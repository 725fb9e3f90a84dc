"""Counters kept by the services' hooks equal a recount from the base tables."""

from __future__ import annotations

from datetime import date, timedelta

from app.contacts import service as contact_service
from app.stats import counters
from app.stats.counters import days_bin, next_period, period_start
from tests.stats.conftest import build_field_month


def _counts(session) -> dict[tuple, int]:
    return counters.stored_counts(session)


def test_incremental_counts_equal_a_recount(session, factory) -> None:
    build_field_month(factory)
    worker = factory.user("caseworker")
    # A month boundary inside one ISO week, outcome changes, a flagged handle, and a case resettled later.
    for day in (date(2026, 3, 30), date(2026, 4, 2)):
        contact = factory.contact(worker, received_on=day, region="moscow", channel="signal")
        contact_service.set_outcome(session=session, actor=worker, contact_id=contact.id, outcome="info_only")
        contact_service.set_outcome(
            session=session, actor=worker, contact_id=contact.id, outcome="suspected_infiltration"
        )
    factory.case(worker, status="resettled", opened_on=date(2026, 4, 1), on=date(2026, 5, 3), region="abroad")
    factory.case(worker, status="declined", opened_on=date(2026, 4, 7), region="dagestan")
    session.flush()
    incremental = _counts(session)
    assert incremental[("month", date(2026, 3, 1), "contacts", "", "")] == 81
    assert incremental[("month", date(2026, 5, 1), "resettled", "", "")] == 1
    assert incremental[("week", date(2026, 3, 30), "outcome", "outcome", "suspected_infiltration")] == 2
    counters.rebuild_counters(session)
    assert _counts(session) == incremental


def test_rebuild_from_nothing_is_empty(session) -> None:
    assert counters.rebuild_counters(session) == 0


def test_the_grid_is_iso_weeks_and_calendar_months() -> None:
    sunday = date(2026, 3, 8)
    assert period_start("week", sunday) == date(2026, 3, 2)
    assert period_start("month", sunday) == date(2026, 3, 1)
    assert next_period("month", date(2026, 12, 1)) == date(2027, 1, 1)
    assert next_period("week", date(2026, 12, 28)) == date(2027, 1, 4)


def test_day_bins_are_exact_early_and_cover_every_wait() -> None:
    assert [days_bin(d) for d in range(56)] == list(range(56))
    assert days_bin(62) == 56 and days_bin(63) == 63
    assert days_bin(-3) == 0 and days_bin(10_000) == 1084
    waits = [days_bin(d) for d in range(2000)]
    assert waits == sorted(waits) and all(days_bin(b) == b for b in set(waits))
    assert timedelta(days=max(waits)).days == 1084
