"""The analysts' summary, written out: which released figures it shows, sums and withholds, and from which release."""

from __future__ import annotations

from datetime import UTC, date

import pytest

from app.config import DEFAULT_REGIONS
from app.errors import Invalid
from app.stats import ledger, published
from app.stats.models import StatsRelease

TODAY = date(2026, 11, 21)
EMPTY_STATUS = {
    "new": 0,
    "verifying": 0,
    "planning": 0,
    "in_transit": 0,
    "evacuated": None,  # escapes and resettlements are flows: never part of the released snapshot
    "resettled": None,
    "paused": 0,
    "lost_contact": 0,
}
REGIONS = DEFAULT_REGIONS  # the regions the test install is configured with, in their order


def _release(session, year: int, months) -> list[StatsRelease]:
    out = []
    for month in months:
        out += ledger.release_month(session, month=date(year, month, 1), actor="t", today=TODAY)
    return out


def _first_quarter_of_2025(session, factory) -> list[StatsRelease]:
    """Moscow's contacts: 6 in January, 7 in February, 3 in March (hidden, and so the quarter's 16 too)."""
    worker = factory.user("caseworker")
    for month, n in ((1, 6), (2, 7), (3, 3)):
        for i in range(n):
            factory.contact(worker, received_on=date(2025, month, 10 + i), region="moscow")
    return _release(session, 2025, (1, 2, 3))


def test_a_quarter_asked_for_exactly_is_read_from_its_own_release(session, factory) -> None:
    rows = {r.period: r for r in _first_quarter_of_2025(session, factory)}
    s = published.summary(session, start=date(2025, 1, 1), end=date(2025, 3, 31), today=TODAY)
    assert (s.view, s.interval, s.from_, s.to, s.k) == ("published", "month", date(2025, 1, 1), date(2025, 3, 31), 5)
    assert [(p.period, p.start, p.end, p.contacts, p.cases_opened, p.flagged) for p in s.series] == [
        ("2025-01", date(2025, 1, 1), date(2025, 1, 31), 6, 0, None),
        ("2025-02", date(2025, 2, 1), date(2025, 2, 28), 7, 0, None),
        ("2025-03", date(2025, 3, 1), date(2025, 3, 31), None, 0, None),
    ]
    assert [p.release.id for p in s.series] == [rows["2025-01"].id, rows["2025-02"].id, rows["2025-03"].id]
    assert (s.totals.contacts, s.totals.cases_opened, s.totals.evacuated, s.totals.flagged) == (None, 0, 0, None)
    assert s.by_region["contacts"] == {**dict.fromkeys(REGIONS, 0), "moscow": None}
    assert s.by_region["evacuated"] == dict.fromkeys(REGIONS, 0)
    assert [r.period for r in s.releases] == ["2025-01", "2025-02", "2025-03", "2025-Q1"]
    assert s.releases[-1].id == rows["2025-Q1"].id
    assert s.open_by_status == EMPTY_STATUS and s.open_cases == 0
    assert s.suppressed == [
        "series[2].contacts",
        "totals.contacts",
        "by_region.contacts.moscow",
        "open_by_status.evacuated",
        "open_by_status.resettled",
    ]
    assert s.funnel.contacts is None and s.funnel.case_rate is None
    assert s.by_channel is None and s.median_days_to_evacuation is None and s.dp is None


def test_a_range_that_is_no_quarter_sums_its_months_and_shows_a_sum_only_if_every_month_is_shown(
    session, factory
) -> None:
    _first_quarter_of_2025(session, factory)
    # From the middle of January: whole released months only, January's first day on.
    s = published.summary(session, start=date(2025, 1, 15), end=date(2025, 2, 10), today=TODAY)
    assert (s.from_, s.to) == (date(2025, 1, 1), date(2025, 2, 28))
    assert s.totals.contacts == 13 and s.by_region["contacts"]["moscow"] == 13
    assert s.funnel.contacts == 13 and s.funnel.case_rate == 0.0
    assert [r.period for r in s.releases] == ["2025-01", "2025-02"]
    assert s.suppressed == ["open_by_status.evacuated", "open_by_status.resettled"]
    later = published.summary(session, start=date(2025, 2, 1), end=date(2025, 3, 31), today=TODAY)
    assert later.totals.contacts is None and later.by_region["contacts"]["moscow"] is None
    assert later.by_region["contacts"]["chechnya"] == 0
    assert [r.period for r in later.releases] == ["2025-02", "2025-03"]
    # Two months inside a released quarter are not the quarter.
    part = published.summary(session, start=date(2025, 1, 1), end=date(2025, 2, 28), today=TODAY)
    assert [r.period for r in part.releases] == ["2025-01", "2025-02"]
    one = published.summary(session, start=date(2025, 2, 1), end=date(2025, 2, 1), today=TODAY)
    assert [p.period for p in one.series] == ["2025-02"] and one.totals.contacts == 7


def test_a_whole_year_is_read_from_the_year_release(session) -> None:
    rows = {r.period: r for r in _release(session, 2024, range(1, 13))}
    s = published.summary(session, start=date(2024, 1, 1), end=date(2024, 12, 31), today=TODAY)
    assert len(s.series) == 12
    assert [r.period for r in s.releases][-1] == "2024"
    assert s.releases[-1].id == rows["2024"].id
    q4 = published.summary(session, start=date(2024, 10, 1), end=date(2024, 12, 31), today=TODAY)
    assert [r.period for r in q4.releases] == ["2024-10", "2024-11", "2024-12", "2024-Q4"]


def test_without_a_start_the_summary_is_the_last_twelve_released_months(session) -> None:
    _release(session, 2024, (12,))
    _release(session, 2025, range(1, 13))
    latest = published.summary(session, today=date(2026, 1, 20))
    assert [p.period for p in latest.series] == [f"2025-{m:02d}" for m in range(1, 13)]
    # ...while a range asked for is given whole, the months up to ``to`` or today.
    asked = published.summary(session, start=date(2024, 12, 1), today=date(2026, 1, 20))
    assert [p.period for p in asked.series][:2] == ["2024-12", "2025-01"] and len(asked.series) == 13
    to = published.summary(session, start=date(2025, 11, 1), end=date(2025, 11, 30), today=date(2026, 1, 20))
    assert [p.period for p in to.series] == ["2025-11"]


def test_what_an_analyst_may_not_ask_is_refused_with_the_field_named(session) -> None:
    _release(session, 2025, (5,))
    with pytest.raises(Invalid) as weekly:
        published.summary(session, interval="week", today=TODAY)
    assert weekly.value.detail == [
        {
            "loc": ["body", "interval"],
            "msg": "published statistics come by whole released month only",
            "type": "value_error",
        }
    ]
    with pytest.raises(Invalid) as backwards:
        published.summary(session, start=date(2025, 5, 2), end=date(2025, 5, 1), today=TODAY)
    assert backwards.value.detail[0]["loc"] == ["body", "from"]
    assert backwards.value.detail[0]["msg"] == "must not be after to"
    with pytest.raises(Invalid) as nothing:
        published.summary(session, start=date(2025, 6, 1), end=date(2025, 8, 31), today=TODAY)
    assert nothing.value.detail[0]["loc"] == ["body", "to"]
    assert nothing.value.detail[0]["msg"] == "no released month in that range"
    same_day = published.summary(session, start=date(2025, 5, 1), end=date(2025, 5, 1), today=TODAY)
    assert [p.period for p in same_day.series] == ["2025-05"]


def test_the_snapshot_and_the_noise_come_from_the_last_month_of_the_range(
    session, factory, monkeypatch, settings
) -> None:
    worker = factory.user("caseworker")
    for i in range(7):
        factory.case(worker, status="verifying", opened_on=date(2025, 2, 3 + i), region="dagestan")
    _release(session, 2025, (1,))
    monkeypatch.setattr(settings, "dp_epsilon", 0.5)
    [feb] = ledger.release_month(session, month=date(2025, 2, 1), actor="t", noise=True, today=TODAY)
    s = published.summary(session, start=date(2025, 1, 1), end=date(2025, 2, 28), today=TODAY)
    frozen = published.release(feb)
    assert frozen.open_at_end is not None
    assert s.open_by_status == {**EMPTY_STATUS, **frozen.open_at_end.cells}
    assert s.open_cases == frozen.open_at_end.total
    assert s.dp is not None and s.dp.epsilon == 0.5
    listed = {i.period: i.epsilon for i in published.list_releases(session, today=TODAY)}
    assert (listed["2025-01"], listed["2025-02"]) == (None, 0.5)
    assert frozen.dp is not None and frozen.dp.model_dump() == {
        "epsilon": 0.5,
        "tables": ["contacts", "cases_opened", "evacuated", "resettled", "open_at_end"],
        "mechanism": "discrete Laplace (OpenDP), counts clamped at zero, threshold applied after noise",
    }


def test_the_listing_names_each_release_with_its_span_and_time(session) -> None:
    rows = _release(session, 2025, (1, 2, 3))
    stamps = {r.period: r.created_at for r in rows}  # as written: aware, in UTC
    session.expire_all()  # read back from the database, where SQLite keeps no zone
    items = published.list_releases(session, today=date(2025, 4, 2))
    assert {i.period: i.created_at for i in items} == stamps
    assert [(i.period, i.kind, i.first_day, i.last_day, i.epsilon) for i in items] == [
        ("2025-01", "month", date(2025, 1, 1), date(2025, 1, 31), None),
        ("2025-Q1", "quarter", date(2025, 1, 1), date(2025, 3, 31), None),
        ("2025-02", "month", date(2025, 2, 1), date(2025, 2, 28), None),
        ("2025-03", "month", date(2025, 3, 1), date(2025, 3, 31), None),
    ]
    assert [i.id for i in items] == [rows[0].id, rows[3].id, rows[1].id, rows[2].id]
    for i, row in zip(items, [rows[0], rows[3], rows[1], rows[2]], strict=True):
        assert i.created_at.tzinfo is not None
        assert i.created_at == (row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC))
    assert published.get_release(session, period="2025-Q1", today=date(2025, 4, 2)).id == rows[3].id


def test_a_small_snapshot_is_hidden_and_named_in_the_release_and_the_summary(session, factory) -> None:
    worker = factory.user("caseworker")
    for i in range(3):
        factory.case(worker, status="verifying", opened_on=date(2025, 6, 3 + i), region="dagestan")
    [row] = _release(session, 2025, (6,))
    release = published.release(row)
    assert release.open_at_end is not None
    assert release.open_at_end.cells == {
        "new": 0,
        "verifying": None,
        "planning": 0,
        "in_transit": 0,
        "paused": 0,
        "lost_contact": 0,
    }
    assert release.open_at_end.total is None
    assert release.suppressed == [
        "contacts.dagestan",
        "cases_opened.dagestan",
        "contacts.total",
        "cases_opened.total",
        "open_at_end.verifying",
        "open_at_end.total",
    ]
    s = published.summary(session, start=date(2025, 6, 1), end=date(2025, 6, 30), today=TODAY)
    assert s.open_by_status == {**EMPTY_STATUS, "verifying": None} and s.open_cases is None
    assert s.suppressed == [
        "series[0].contacts",
        "series[0].cases_opened",
        "totals.contacts",
        "totals.cases_opened",
        "by_region.contacts.dagestan",
        "by_region.cases_opened.dagestan",
        "open_by_status.verifying",
        "open_by_status.evacuated",
        "open_by_status.resettled",
    ]
    # A month hidden before a month shown stays named.
    _release(session, 2025, (7,))
    two = published.summary(session, start=date(2025, 6, 1), end=date(2025, 7, 31), today=TODAY)
    assert [s for s in two.suppressed if s.startswith("series")] == ["series[0].contacts", "series[0].cases_opened"]
    # A quarter's or a year's release has no snapshot of its own.
    rows = _release(session, 2025, (4, 5))
    quarter = published.release(rows[-1])
    assert quarter.period == "2025-Q2" and quarter.open_at_end is None
    assert [s for s in quarter.suppressed if s.startswith("open_at_end")] == []


def test_three_months_across_a_quarter_end_are_not_that_quarter(session) -> None:
    _release(session, 2025, (1, 2, 3, 4))
    s = published.summary(session, start=date(2025, 2, 1), end=date(2025, 4, 30), today=TODAY)
    assert [r.period for r in s.releases] == ["2025-02", "2025-03", "2025-04"]


def test_the_summary_releases_last_month_first_if_nobody_has(session) -> None:
    s = published.summary(session, today=date(2025, 8, 10))
    assert [p.period for p in s.series] == ["2025-07"]
    assert [r.period for r in s.releases] == ["2025-07"]


def test_a_region_configured_after_an_earlier_month_sums_as_zero_there(session, monkeypatch, settings) -> None:
    monkeypatch.setattr(settings, "regions", ("moscow",))
    _release(session, 2023, (1,))
    monkeypatch.setattr(settings, "regions", ("moscow", "chechnya"))
    _release(session, 2023, (2,))
    s = published.summary(session, start=date(2023, 1, 1), end=date(2023, 2, 28), today=TODAY)
    assert s.by_region["contacts"] == {"moscow": 0, "chechnya": 0}
