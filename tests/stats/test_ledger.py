"""The release ledger: closed months only, frozen once, quarters and years jointly, noise once, a budget."""

from __future__ import annotations

import json
from datetime import UTC, date

import pytest
from sqlalchemy import select

from app.cases import service as case_service
from app.config import DEFAULT_REGIONS
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


# --- the frozen content, written out: what a release holds, its boundaries, its order and its audit -------

APRIL = date(2026, 4, 1)
ALL_REGIONS = DEFAULT_REGIONS  # the regions the test install is configured with, in their order


def _zeros(**counts: int) -> dict[str, int]:
    return {r: counts.get(r, 0) for r in ALL_REGIONS}


def _build_april(factory) -> None:
    """April 2026: 5 contacts from Chechnya (one on the 1st), 6 from Dagestan (one on the 30th), one each
    side of the month; 5 Chechen cases escaped on the 20th, 3 of them resettled; 6 Dagestani cases verifying."""
    worker, coordinator = factory.user("caseworker"), factory.user("coordinator")
    factory.contact(worker, received_on=date(2026, 3, 31), region="chechnya")
    factory.contact(worker, received_on=date(2026, 5, 1), region="dagestan")
    chechen = [factory.contact(worker, received_on=date(2026, 4, 1 + i), region="chechnya") for i in range(5)]
    dagestani = [factory.contact(worker, received_on=date(2026, 4, 30 - i), region="dagestan") for i in range(6)]
    for i, contact in enumerate(chechen):
        status = "resettled" if i < 3 else "evacuated"
        factory.case(
            worker,
            contact_id=contact.id,
            status=status,
            opened_on=contact.received_on,
            on=date(2026, 4, 20),
            verifier=coordinator,
        )
    for contact in dagestani:
        factory.case(worker, contact_id=contact.id, status="verifying", opened_on=contact.received_on)


def test_a_release_freezes_exactly_these_figures_and_their_suppression(session, factory) -> None:
    _build_april(factory)
    [row] = ledger.release_month(session, month=date(2026, 4, 17), actor="test", today=TODAY)
    assert row.created_at.tzinfo == UTC  # written as UTC: PostgreSQL would read a naive time as its own zone
    assert (row.period, row.kind, row.first_on, row.last_on, row.k, row.epsilon) == (
        "2026-04",
        "month",
        date(2026, 4, 1),
        date(2026, 4, 30),
        5,
        None,
    )
    pipeline = {"new": 0, "verifying": 6, "planning": 0, "in_transit": 0, "paused": 0, "lost_contact": 0}
    assert json.loads(row.published) == {
        "regions": list(ALL_REGIONS),
        "tables": {
            "contacts": {"cells": _zeros(chechnya=5, dagestan=6), "total": 11},
            "cases_opened": {"cells": _zeros(chechnya=5, dagestan=6), "total": 11},
            "evacuated": {"cells": _zeros(chechnya=5), "total": 5},
            # 3 resettled: the cell and the total that equals it are both hidden; the zeros stay shown.
            "resettled": {"cells": {**_zeros(), "chechnya": None}, "total": None},
        },
        "open_at_end": {"cells": pipeline, "total": 6},
        "referrals": {
            "partners": [],
            "made": {"cells": [], "total": 0},
            "accepted": {"cells": [], "total": 0},
        },
    }
    assert json.loads(row.basis) == {
        "tables": {
            "contacts": _zeros(chechnya=5, dagestan=6),
            "cases_opened": _zeros(chechnya=5, dagestan=6),
            "evacuated": _zeros(chechnya=5),
            "resettled": _zeros(chechnya=3),
        },
        "open_at_end": pipeline,
        "referrals": {"partners": [], "made": [], "accepted": []},
    }
    # As the API gives it: configured order, the suppressed figures named, no noise stated.
    release = published.release(row)
    assert list(release.tables) == ["contacts", "cases_opened", "evacuated", "resettled"]
    assert list(release.tables["contacts"].cells) == list(ALL_REGIONS)
    assert release.open_at_end is not None and list(release.open_at_end.cells) == list(pipeline)
    assert release.suppressed == ["resettled.chechnya", "resettled.total"]
    assert release.dp is None and release.k == 5
    assert release.created_at.tzinfo is not None


def test_a_release_is_audited_with_its_periods_and_whether_it_had_noise(session) -> None:
    from app.audit.models import AuditEntry

    for month in (1, 2, 3):
        ledger.release_month(session, month=date(2025, month, 1), actor="coordinator7", today=TODAY)
    entries = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "stats.release").order_by(AuditEntry.seq)
    ).all()
    assert [(e.actor, json.loads(e.detail)) for e in entries] == [
        ("coordinator7", {"periods": ["2025-01"], "noise": False}),
        ("coordinator7", {"periods": ["2025-02"], "noise": False}),
        ("coordinator7", {"periods": ["2025-03", "2025-Q1"], "noise": False}),
    ]


def test_quarters_and_the_year_come_when_their_last_month_does_in_any_order(session) -> None:
    written = {}
    for month in (2, 3, 1, 5, 6, 4, 7, 8, 9, 10, 11, 12):
        rows = ledger.release_month(session, month=date(2025, month, 1), actor="t", today=TODAY)
        written[month] = [(r.period, r.kind, r.first_on, r.last_on) for r in rows]
    assert written[3] == [("2025-03", "month", date(2025, 3, 1), date(2025, 3, 31))]
    assert written[1] == [
        ("2025-01", "month", date(2025, 1, 1), date(2025, 1, 31)),
        ("2025-Q1", "quarter", date(2025, 1, 1), date(2025, 3, 31)),
    ]
    assert written[4] == [
        ("2025-04", "month", date(2025, 4, 1), date(2025, 4, 30)),
        ("2025-Q2", "quarter", date(2025, 4, 1), date(2025, 6, 30)),
    ]
    assert [p for p, *_ in written[9]] == ["2025-09", "2025-Q3"]
    assert [p for p, *_ in written[11]] == ["2025-11"]
    assert written[12] == [
        ("2025-12", "month", date(2025, 12, 1), date(2025, 12, 31)),
        ("2025-Q4", "quarter", date(2025, 10, 1), date(2025, 12, 31)),
        ("2025", "year", date(2025, 1, 1), date(2025, 12, 31)),
    ]
    # Exact months make exact quarters and years: no epsilon stated.
    assert [ledger.get_release(session, period=p).epsilon for p in ("2025-Q1", "2025")] == [None, None]
    # Oldest first day first; of one first day, the shortest period first.
    assert [r.period for r in ledger.list_releases(session)][:6] == [
        "2025-01",
        "2025-Q1",
        "2025",
        "2025-02",
        "2025-03",
        "2025-04",
    ]
    assert [r.period for r in ledger.released_months(session, date(2025, 1, 1), date(2025, 3, 31))] == [
        "2025-01",
        "2025-02",
        "2025-03",
    ]
    assert [r.period for r in ledger.released_months(session, date(2025, 2, 1), date(2025, 2, 1))] == ["2025-02"]
    assert [r.period for r in ledger.released_months(session, date(2025, 2, 2), date(2025, 4, 1))] == [
        "2025-03",
        "2025-04",
    ]


def test_a_quarter_sums_its_frozen_months_and_hides_what_they_would_give_away(session, factory) -> None:
    worker = factory.user("caseworker")
    for month, n in ((1, 6), (2, 7), (3, 3)):
        for i in range(n):
            factory.contact(worker, received_on=date(2024, month, 10 + i), region="moscow")
    for month in (1, 2, 3):
        rows = ledger.release_month(session, month=date(2024, month, 1), actor="t", today=TODAY)
    quarter = json.loads(rows[-1].published)["tables"]["contacts"]
    assert rows[-1].period == "2024-Q1"
    assert json.loads(rows[-1].basis)["tables"]["contacts"] == _zeros(moscow=16)
    # March's 3 is hidden; January's 6 and February's 7 are shown, so the quarter's 16 would give it away.
    march = json.loads(rows[0].published)["tables"]["contacts"]
    assert march == {"cells": {**_zeros(), "moscow": None}, "total": None}
    assert quarter == {"cells": {**_zeros(), "moscow": None}, "total": None}


def test_a_quarter_of_noisy_months_states_their_epsilon_and_spends_nothing(session, monkeypatch, settings) -> None:
    monkeypatch.setattr(settings, "dp_epsilon", 0.5)
    ledger.release_month(session, month=date(2024, 7, 1), actor="t", noise=True, today=TODAY)
    ledger.release_month(session, month=date(2024, 8, 1), actor="t", noise=False, today=TODAY)
    rows = ledger.release_month(session, month=date(2024, 9, 1), actor="t", noise=False, today=TODAY)
    assert [(r.period, r.epsilon) for r in rows] == [("2024-09", None), ("2024-Q3", 0.5)]
    assert "referrals" not in json.loads(ledger.get_release(session, period="2024-07").published)
    assert "referrals" in json.loads(rows[0].published)
    assert session.get(StatsBudget, date(2024, 7, 1)).epsilon_spent == 0.5
    assert session.get(StatsBudget, date(2024, 9, 1)) is None
    exact = ledger.release_month(session, month=date(2024, 10, 1), actor="t", noise=False, today=TODAY)
    assert [r.epsilon for r in exact] == [None]


def test_the_budget_may_be_spent_to_the_last_bit_and_no_further(session, monkeypatch, settings) -> None:
    monkeypatch.setattr(settings, "dp_epsilon", 0.5)
    monkeypatch.setattr(settings, "dp_month_budget", 1.0)
    session.add(StatsBudget(month=date(2026, 6, 1), epsilon_spent=0.5))
    session.add(StatsBudget(month=date(2026, 7, 1), epsilon_spent=0.75))
    session.flush()
    ledger.release_month(session, month=date(2026, 6, 1), actor="t", noise=True, today=TODAY)
    assert session.get(StatsBudget, date(2026, 6, 1)).epsilon_spent == 1.0
    with pytest.raises(Conflict) as refused:
        ledger.release_month(session, month=date(2026, 7, 1), actor="t", noise=True, today=TODAY)
    assert refused.value.detail == "the privacy budget of 2026-07 is spent (0.75 of 1 used; this release needs 0.5)"
    assert session.get(StatsBudget, date(2026, 7, 1)).epsilon_spent == 0.75
    # Float sums may land a hair above the budget: up to 1e-12 over is rounding, not overspending.
    session.add(StatsBudget(month=date(2026, 5, 1), epsilon_spent=0.500000000001))
    session.flush()
    ledger.release_month(session, month=date(2026, 5, 1), actor="t", noise=True, today=TODAY)
    assert session.get(StatsBudget, date(2026, 5, 1)).epsilon_spent == 1.000000000001


def test_the_noise_setting_decides_when_the_caller_does_not(session, monkeypatch, settings) -> None:
    monkeypatch.setattr(settings, "release_noise", True)
    [noisy] = ledger.release_month(session, month=date(2026, 8, 1), actor="t", today=TODAY)
    assert noisy.epsilon == settings.dp_epsilon
    monkeypatch.setattr(settings, "release_noise", False)
    [exact] = ledger.release_month(session, month=date(2026, 9, 1), actor="t", today=TODAY)
    assert exact.epsilon is None


def test_each_noisy_table_gets_a_fifth_of_epsilon_over_its_whole_domain() -> None:
    regions = [f"r{i}" for i in range(1000)]
    counts = {m: {r: 1000 for r in regions[:900]} for m in ledger.TABLE_MEASURES}
    counts[ledger.OPEN_AT_END] = {s: 1000 for s in ledger.PIPELINE}
    noisy = ledger._noisy(counts, regions, epsilon=5.0)
    assert list(noisy) == [*ledger.TABLE_MEASURES, ledger.OPEN_AT_END]
    assert all(list(noisy[m]) == regions for m in ledger.TABLE_MEASURES)
    assert list(noisy[ledger.OPEN_AT_END]) == list(ledger.PIPELINE)
    # Epsilon 1 per table is discrete Laplace of scale 1: |noise| averages 2/e / (1 - 1/e^2) = 0.851 (over
    # 3600 draws, within 0.1 of it by more than five standard errors). A sixth of epsilon 5 would average
    # 1.07, a third 0.39, all of it 0.01.
    moved = [abs(v - 1000) for m in ledger.TABLE_MEASURES for v in list(noisy[m].values())[:900]]
    assert 0.75 < sum(moved) / len(moved) < 0.95
    # A region with no count is noised as 0 and clamped: it averages 1/e / (1 - 1/e^2) = 0.425 (400 draws,
    # standard error 0.043); noised as 1 it would average 1.157.
    empty = [v for m in ledger.TABLE_MEASURES for v in list(noisy[m].values())[900:]]
    assert min(empty) >= 0 and sum(empty) / len(empty) < 0.7


def test_a_month_is_released_only_after_it_has_ended(session) -> None:
    with pytest.raises(Invalid) as refused:
        ledger.release_month(session, month=date(2026, 11, 1), actor="t", today=date(2026, 11, 1))
    assert refused.value.detail == [
        {"loc": ["body", "month"], "msg": "only a month that has ended can be released", "type": "value_error"}
    ]
    [row] = ledger.release_month(session, month=date(2026, 10, 31), actor="t", today=date(2026, 11, 1))
    assert row.period == "2026-10"
    with pytest.raises(Conflict) as again:
        ledger.release_month(session, month=date(2026, 10, 1), actor="t", today=date(2026, 11, 1))
    assert again.value.detail == "2026-10 is already released; a release never changes"


def test_first_use_in_january_releases_december_and_a_spent_budget_leaves_it_unreleased(
    session, monkeypatch, settings
) -> None:
    ledger.ensure_previous_month(session, today=date(2026, 1, 1))
    assert [r.period for r in ledger.list_releases(session)] == ["2025-12"]
    entries = ledger.list_releases(session)
    ledger.ensure_previous_month(session, today=date(2026, 1, 31))
    assert ledger.list_releases(session) == entries
    monkeypatch.setattr(settings, "release_noise", True)
    session.add(StatsBudget(month=date(2026, 1, 1), epsilon_spent=settings.dp_month_budget))
    session.flush()
    ledger.ensure_previous_month(session, today=date(2026, 2, 10))
    assert [r.period for r in ledger.list_releases(session)] == ["2025-12"]
    monkeypatch.setattr(settings, "release_noise", False)
    ledger.ensure_previous_month(session, today=date(2026, 3, 5))
    assert [r.period for r in ledger.list_releases(session)] == ["2025-12", "2026-02"]
    # The day given decides which month has ended, not the clock of the machine.
    ledger.ensure_previous_month(session, today=date(2999, 2, 10))
    assert [r.period for r in ledger.list_releases(session)][-1] == "2999-01"


def test_an_unknown_period_is_not_found_in_plain_words(session) -> None:
    from app.errors import NotFound

    with pytest.raises(NotFound) as missing:
        ledger.get_release(session, period="2019-01")
    assert missing.value.detail == "no release for that period"


def test_regions_no_longer_configured_stay_on_the_grid_of_their_year(session, factory, monkeypatch, settings) -> None:
    worker = factory.user("caseworker")
    for i in range(5):
        factory.contact(worker, received_on=date(2024, 2, 3 + i), region="unknown")
        factory.contact(worker, received_on=date(2024, 2, 3 + i), region="abroad")
    monkeypatch.setattr(settings, "regions", ("moscow", "chechnya"))
    [feb] = ledger.release_month(session, month=date(2024, 2, 1), actor="t", today=TODAY)
    assert json.loads(feb.published)["regions"] == ["moscow", "chechnya", "abroad", "unknown"]
    monkeypatch.setattr(settings, "regions", ("dagestan", "moscow"))
    [apr] = ledger.release_month(session, month=date(2024, 4, 1), actor="t", today=TODAY)
    assert json.loads(apr.published)["regions"] == ["dagestan", "moscow", "chechnya", "abroad", "unknown"]
    assert json.loads(apr.basis)["tables"]["contacts"] == {
        "dagestan": 0,
        "moscow": 0,
        "chechnya": 0,
        "abroad": 0,
        "unknown": 0,
    }


def test_releases_are_listed_by_first_day_then_shortest_first_whatever_order_they_were_stored_in(session) -> None:
    from datetime import datetime

    for period, kind, last in (
        ("2023", "year", date(2023, 12, 31)),
        ("2023-02", "month", date(2023, 2, 28)),
        ("2023-Q1", "quarter", date(2023, 3, 31)),
        ("2023-01", "month", date(2023, 1, 31)),
    ):
        first = date(2023, 2, 1) if period == "2023-02" else date(2023, 1, 1)
        session.add(
            StatsRelease(
                period=period,
                kind=kind,
                first_on=first,
                last_on=last,
                created_at=datetime(2024, 1, 5, tzinfo=UTC),
                k=5,
                epsilon=None,
                published="{}",
                basis="{}",
            )
        )
    session.flush()
    assert [r.period for r in ledger.list_releases(session)] == ["2023-01", "2023-Q1", "2023", "2023-02"]


def test_referrals_by_partner_are_frozen_as_series_each_suppressed_on_its_own() -> None:
    shown, basis = ledger._referral_tables(["Embassy", "Shelter"], {"made": [3, 8], "accepted": [0, 6]}, k=5)
    # Embassy's 3 goes, and with the total shown Shelter's 8 would give it back: it goes too.
    assert shown == {
        "partners": ["Embassy", "Shelter"],
        "made": {"cells": [None, None], "total": 11},
        "accepted": {"cells": [0, 6], "total": 6},
    }
    assert basis == {"partners": ["Embassy", "Shelter"], "made": [3, 8], "accepted": [0, 6]}
    # At K nothing is hidden; with K one higher the 5 goes with its equal total.
    assert ledger._referral_tables(["Shelter"], {"made": [5], "accepted": [5]}, k=5)[0]["made"] == {
        "cells": [5],
        "total": 5,
    }
    assert ledger._referral_tables(["Shelter"], {"made": [5], "accepted": [5]}, k=6)[0]["accepted"] == {
        "cells": [None],
        "total": None,
    }
