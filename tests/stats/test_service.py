"""The summary's disclosure control on a fixed grid: no small figure, no recoverable one, no differencing."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import Invalid
from app.stats import disclosure
from app.stats.schemas import MEASURES
from app.stats.service import BREAKDOWNS, OPEN_STATUSES, Raw, make_grid, protect

K = 5
TODAY = date(2026, 11, 21)
DOMAINS = {"region": ("chechnya", "dagestan", "moscow"), "channel": ("phone", "signal"), "risk": ("low", "high")}


def _raw(rows: list[dict[tuple[str, str], list[int]]]) -> Raw:
    """Per period, each breakdown's cells; a measure's count is the sum of its first breakdown."""
    n = len(rows)
    breakdowns = {
        (m, d): [dict(zip(DOMAINS[d], rows[i][(m, d)], strict=True)) for i in range(n)]
        for m, dims in BREAKDOWNS.items()
        for d in dims
    }
    series = {m: [0] * n for m in MEASURES}
    for m, dims in BREAKDOWNS.items():
        series[m] = [sum(rows[i][(m, dims[0])]) for i in range(n)]
    return Raw(series=series, breakdowns=breakdowns, days={}, status={}, domains=dict(DOMAINS))


def _grid(n: int):
    return make_grid("month", date(2025, 1, 1), date(2025, n, 1), today=TODAY)


def _row(contacts_by_region, seed=0):
    total = sum(contacts_by_region)
    half = total // 2
    return {
        ("contacts", "region"): list(contacts_by_region),
        ("contacts", "channel"): [half, total - half],
        ("contacts", "risk"): [total - half, half],
        ("cases_opened", "region"): [0, 0, 0],
        ("evacuated", "region"): [0, 0, 0],
    }


def test_small_cells_are_hidden_with_a_complement_and_named() -> None:
    raw = _raw([_row([30, 2, 40]), _row([20, 20, 20])])
    summary = protect(raw, _grid(2), k=K)
    assert summary.series[0].contacts == 72 and summary.series[1].contacts == 60
    assert summary.by_region["contacts"]["dagestan"] is None
    # The complement: with only dagestan hidden it would be 72 - 30 - 40.
    assert sum(v is None for v in summary.by_region["contacts"].values()) >= 2
    assert "by_region.contacts.dagestan" in summary.suppressed
    assert summary.totals.contacts == 132
    assert summary.totals.cases_opened == 0  # zero stays zero
    assert summary.is_suppressed("by_region.contacts.dagestan")


def test_a_small_period_hides_its_cell_and_every_sum_over_it() -> None:
    raw = _raw([_row([30, 10, 40]), _row([1, 1, 1])])
    summary = protect(raw, _grid(2), k=K)
    assert summary.series[1].contacts is None
    assert "series[1].contacts" in summary.suppressed
    assert summary.totals.contacts is None and "totals.contacts" in summary.suppressed
    assert summary.funnel.case_rate is None
    assert all(v is None for v in summary.by_region["contacts"].values())


def test_a_cell_hidden_in_one_period_stays_hidden_in_every_range() -> None:
    rows = [_row([30, 10, 40]), _row([30, 3, 40]), _row([25, 25, 25])]
    whole = protect(_raw(rows), _grid(3), k=K)
    alone = protect(_raw(rows[1:2]), make_grid("month", date(2025, 2, 1), date(2025, 2, 1), today=TODAY), k=K)
    first = protect(_raw(rows[:1]), _grid(1), k=K)
    # Differencing the three-month column against the single months would give February's dagestan: so it is hidden.
    assert whole.by_region["contacts"]["dagestan"] is None
    assert alone.by_region["contacts"]["dagestan"] is None
    assert first.by_region["contacts"]["dagestan"] == 10


def test_open_cases_by_status_are_protected() -> None:
    raw = _raw([_row([30, 10, 40])])
    raw.status = {"new": 12, "verifying": 2, "planning": 9, "closed": 40}
    summary = protect(raw, _grid(1), k=K)
    assert summary.open_by_status["verifying"] is None
    assert sum(v is None for v in summary.open_by_status.values()) >= 2
    assert set(summary.open_by_status) == set(OPEN_STATUSES)
    assert summary.open_cases == 23


def test_quantiles_need_a_shown_count_of_at_least_k() -> None:
    raw = _raw([_row([30, 10, 40])])
    raw.series["evacuated"] = [4]
    raw.days = {3: 2, 10: 2}
    summary = protect(raw, _grid(1), k=K)
    assert summary.median_days_to_evacuation is None and "median_days_to_evacuation" in summary.suppressed
    raw.series["evacuated"] = [10]
    raw.days = {3: 5, 10: 4, 60: 1}
    summary = protect(raw, _grid(1), k=K)
    assert summary.median_days_to_evacuation == 3.0 and summary.p90_days_to_evacuation == 10.0


def test_ranges_snap_to_whole_periods() -> None:
    grid = make_grid("week", date(2026, 3, 4), date(2026, 3, 10), today=TODAY)
    assert grid.first == date(2026, 3, 2) and grid.last_day == date(2026, 3, 15)
    inward = make_grid("month", date(2026, 9, 15), date(2026, 11, 30), today=TODAY, whole_past_only=True)
    assert inward.first == date(2026, 9, 1) and inward.last_day == date(2026, 10, 31)
    with pytest.raises(Invalid):
        make_grid("month", date(2026, 11, 2), None, today=TODAY, whole_past_only=True)
    with pytest.raises(Invalid):
        make_grid("month", date(2026, 5, 1), date(2026, 4, 1), today=TODAY)


cells = st.integers(min_value=0, max_value=12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(cells, cells, cells), min_size=1, max_size=4))
def test_no_released_count_is_small_and_no_period_row_is_recoverable(regions) -> None:
    rows = [_row(r) for r in regions]
    summary = protect(_raw(rows), _grid(len(rows)), k=K)
    figures = [getattr(p, m) for p in summary.series for m in MEASURES]
    figures += [
        v
        for table in (summary.by_region, summary.by_channel, summary.by_risk)
        for t in table.values()
        for v in t.values()
    ]
    figures += list(summary.totals.model_dump().values())
    assert all(v is None or v == 0 or v >= K for v in figures)
    for i, row in enumerate(rows):
        values = row[("contacts", "region")]
        released = disclosure.protect_series(values, k=K) if any(0 < v < K for v in values) else (values, sum(values))
        assert disclosure.find_recoverable_series(released, values) == []
        assert (summary.series[i].contacts is None) == (released[1] is None)
