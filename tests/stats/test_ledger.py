"""The release ledger: closed months only, frozen once, quarters and years jointly, noise once, a budget."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import select

from app.cases import service as case_service
from app.contacts.models import Contact
from app.errors import Conflict, Invalid
from app.stats import ledger, published
from app.stats import service as stats_service
from app.stats.models import StatsBudget, StatsRelease
from tests.stats.conftest import build_field_month

TODAY = date(2026, 11, 21)
MARCH = date(2026, 3, 1)


def test_the_field_month_reads_80_and_40_on_the_dashboard_and_in_its_release(session, factory) -> None:
    build_field_month(factory)
    exact = stats_service.summary(session, start=MARCH, end=date(2026, 3, 31), today=TODAY)
    assert (exact.totals.contacts, exact.totals.evacuated) == (80, 40)
    [row] = ledger.release_month(session, month=MARCH, actor="test", today=TODAY)
    release = published.release(row)
    assert release.period == "2026-03" and release.kind == "month"
    assert release.tables["contacts"].total == 80 and release.tables["evacuated"].total == 40
    assert release.tables["cases_opened"].total == 50
    assert release.tables["contacts"].cells["chechnya"] == 20


def test_only_a_closed_month_is_released_and_only_once(session) -> None:
    with pytest.raises(Invalid):
        ledger.release_month(session, month=date(2026, 11, 1), actor="test", today=TODAY)
    ledger.release_month(session, month=date(2026, 10, 1), actor="test", today=TODAY)
    with pytest.raises(Conflict):
        ledger.release_month(session, month=date(2026, 10, 1), actor="test", today=TODAY)


def test_a_release_is_frozen_against_later_corrections_and_shreds(session, factory) -> None:
    build_field_month(factory)
    [row] = ledger.release_month(session, month=MARCH, actor="test", today=TODAY)
    before = (row.published, row.basis)
    worker = factory.user("caseworker")
    for _ in range(6):
        factory.contact(worker, received_on=date(2026, 3, 30), region="moscow")  # entered late
    contact = session.scalars(select(Contact).where(Contact.received_on == MARCH)).first()
    contact.region = "abroad"  # a correction of an old record
    session.flush()
    again = published.get_release(session, period="2026-03", today=TODAY)
    assert again.tables["contacts"].total == 80
    session.refresh(row)
    assert (row.published, row.basis) == before


def test_last_month_is_released_on_first_use(session, factory) -> None:
    worker = factory.user("caseworker")
    for _ in range(7):
        factory.contact(worker, received_on=date(2026, 10, 9))
    assert session.scalars(select(StatsRelease)).first() is None
    items = published.list_releases(session, today=TODAY)
    assert [i.period for i in items] == ["2026-10"]
    assert published.get_release(session, period="2026-10", today=TODAY).tables["contacts"].total == 7
    published.list_releases(session, today=TODAY)
    assert len(session.scalars(select(StatsRelease)).all()) == 1


def test_a_quarter_and_a_year_are_frozen_when_their_months_are(session, factory) -> None:
    worker = factory.user("caseworker")
    # Small months whose quarter is large: the quarter must not give away a hidden month.
    for month, n in ((1, 3), (2, 9), (3, 2)):
        for i in range(n):
            factory.contact(worker, received_on=date(2025, month, 1 + i), region="ingushetia")
        for i in range(8):
            factory.contact(worker, received_on=date(2025, month, 1 + i), region="chechnya")
    periods = []
    for month in range(1, 13):
        periods += [r.period for r in ledger.release_month(session, month=date(2025, month, 1), actor="t", today=TODAY)]
    assert "2025-Q1" in periods and "2025-Q4" in periods and "2025" in periods
    jan = published.get_release(session, period="2025-01", today=TODAY).tables["contacts"]
    q1 = published.get_release(session, period="2025-Q1", today=TODAY).tables["contacts"]
    year = published.get_release(session, period="2025", today=TODAY).tables["contacts"]
    assert jan.cells["ingushetia"] is None
    # 3 + 9 + 2 = 14 would be safe alone, but with February's 9 shown it gives January and March together (5),
    # and with any one of them known the other; whatever is published, nothing small can be worked out.
    shown = [v for t in (jan, q1, year) for v in [*t.cells.values(), t.total] if v is not None]
    assert not [v for v in shown if 0 < v < 5]


def test_noise_is_drawn_once_stated_and_charged_to_the_month(session, factory, settings) -> None:
    build_field_month(factory)
    [row] = ledger.release_month(session, month=MARCH, actor="t", noise=True, today=TODAY)
    first = published.get_release(session, period="2026-03", today=TODAY)
    assert first.dp is not None and first.dp.epsilon == settings.dp_epsilon
    for _ in range(3):
        assert published.get_release(session, period="2026-03", today=TODAY) == first
    assert session.get(StatsBudget, MARCH).epsilon_spent == pytest.approx(settings.dp_epsilon)
    noisy = json.loads(row.basis)["tables"]["contacts"]
    assert all(isinstance(v, int) and v >= 0 for v in noisy.values())


def test_a_spent_budget_is_refused(session, factory, settings) -> None:
    session.add(StatsBudget(month=date(2026, 4, 1), epsilon_spent=settings.dp_month_budget))
    session.flush()
    with pytest.raises(Conflict, match="budget"):
        ledger.release_month(session, month=date(2026, 4, 1), actor="t", noise=True, today=TODAY)
    assert session.scalars(select(StatsRelease).where(StatsRelease.period == "2026-04")).first() is None
    assert session.get(StatsBudget, date(2026, 4, 1)).epsilon_spent == settings.dp_month_budget


def test_the_open_cases_snapshot_is_the_pipeline_at_month_end(session, factory) -> None:
    worker, coordinator = factory.user("caseworker"), factory.user("coordinator")
    for i in range(12):
        factory.case(worker, status="verifying", opened_on=date(2026, 5, 3 + i), region="dagestan")
    case = factory.case(worker, status="verifying", opened_on=date(2026, 5, 20), region="dagestan")
    case_service.transition(session=session, actor=coordinator, case_id=case.id, to="declined", on=date(2026, 6, 2))
    [row] = ledger.release_month(session, month=date(2026, 5, 1), actor="t", today=TODAY)
    release = published.release(row)
    assert release.open_at_end is not None
    assert release.open_at_end.cells["verifying"] == 13 and release.open_at_end.total == 13
    assert "evacuated" not in release.open_at_end.cells
    assert release.last_day == date(2026, 5, 31) and release.first_day == date(2026, 5, 1)
