"""Joint suppression and the periods of the release ledger, against answers worked out by hand (no database)."""

from __future__ import annotations

from datetime import date

import pytest

from app.errors import Invalid
from app.stats import joint


def test_months_are_written_and_read_as_yyyy_mm() -> None:
    assert joint.month_label(date(987, 3, 14)) == "0987-03"
    assert joint.month_label(date(2026, 11, 1)) == "2026-11"
    assert joint.parse_month("2026-03") == date(2026, 3, 1)
    assert joint.parse_month("0999-12") == date(999, 12, 1)


@pytest.mark.parametrize("text", ["2026-3", "202-03", "20266-03", "2026-003", "2026-13", "2026/03", "2026-03-01", ""])
def test_anything_else_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(Invalid) as refused:
        joint.parse_month(text)
    assert refused.value.detail == [
        {"loc": ["body", "month"], "msg": "must be a month written as YYYY-MM", "type": "value_error"}
    ]


def test_quarters_months_and_spans_of_each_kind_of_period() -> None:
    assert [joint.quarter(m) for m in range(1, 13)] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert joint.months_of("2026-Q3") == [date(2026, 7, 1), date(2026, 8, 1), date(2026, 9, 1)]
    assert joint.months_of("2026-Q1") == [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
    assert joint.months_of("2026") == [date(2026, m, 1) for m in range(1, 13)]
    assert joint.months_of("2026-02") == [date(2026, 2, 1)]
    assert joint.span("2024-02") == (date(2024, 2, 1), date(2024, 2, 29))
    assert joint.span("2024-Q4") == (date(2024, 10, 1), date(2024, 12, 31))
    assert joint.span("2025") == (date(2025, 1, 1), date(2025, 12, 31))
    assert joint.Table(cells={"a": 3, "b": 0, "c": 9}).total == 12


def _alone(cells: dict[str, int], k: int = 5) -> set[str]:
    return joint.suppress_jointly({"2025-05": joint.Table(cells=cells)}, regions=list(cells), k=k)


def test_a_month_alone_hides_its_small_figures_at_exactly_k() -> None:
    assert _alone({"a": 7, "b": 6, "c": 0}) == set()
    assert _alone({"a": 0, "b": 0, "c": 0}) == set()
    # A single small cell is the total too: both go.
    assert _alone({"a": 3, "b": 0, "c": 0}) == {"a", joint.TOTAL}
    assert _alone({"a": 0, "b": 1, "c": 0}) == {"b", joint.TOTAL}
    # At K a figure is shown, below it hidden.
    assert _alone({"a": 5, "b": 0}) == set()
    assert _alone({"a": 4, "b": 0}) == {"a", joint.TOTAL}
    assert _alone({"a": 4, "b": 0}, k=4) == set()
    assert _alone({"a": 3, "b": 0}, k=4) == {"a", joint.TOTAL}


def _decide(year: dict[str, dict[str, int]], regions=("m", "n"), k: int = 5) -> dict[str, set[str]]:
    """Release the periods in order, each suppressed jointly with the ones before it, as the ledger does."""
    released: dict[str, joint.Table] = {}
    for period, cells in year.items():
        released[period] = joint.Table(cells={r: cells.get(r, 0) for r in regions})
        released[period].hidden = joint.suppress_jointly(released, regions=list(regions), k=k)
    return {p: t.hidden or set() for p, t in released.items()}


def test_a_quarter_that_would_give_away_a_hidden_month_is_hidden_too() -> None:
    hidden = _decide({"2025-01": {"m": 6}, "2025-02": {"m": 7}, "2025-03": {"m": 3}, "2025-Q1": {"m": 16}})
    assert hidden == {"2025-01": set(), "2025-02": set(), "2025-03": {"m", ""}, "2025-Q1": {"m", ""}}


def test_a_quarter_of_shown_months_is_shown() -> None:
    hidden = _decide(
        {"2025-04": {"m": 6}, "2025-05": {"m": 7, "n": 5}, "2025-06": {"m": 8}, "2025-Q2": {"m": 21, "n": 5}}
    )
    assert hidden == {p: set() for p in ("2025-04", "2025-05", "2025-06", "2025-Q2")}


def test_a_later_quarter_or_the_year_never_gives_away_a_small_month() -> None:
    months = {f"2025-{m:02d}": {"m": 9, "n": 0} for m in range(1, 13)}
    months["2025-08"] = {"m": 9, "n": 2}
    year: dict[str, dict[str, int]] = {}
    for m in range(1, 13):
        year[f"2025-{m:02d}"] = months[f"2025-{m:02d}"]
        if m % 3 == 0:
            parts = [months[f"2025-{p:02d}"] for p in (m - 2, m - 1, m)]
            year[f"2025-Q{m // 3}"] = {r: sum(p[r] for p in parts) for r in ("m", "n")}
    year["2025"] = {"m": 108, "n": 2}
    hidden = _decide(year)
    # August's 2 goes with its 9 (its total, 11, is known from the quarter's anyway). The quarter's 27 less
    # July's and September's 9 would give August's 9 and so the 2: it goes with its 2; the year's 108 less
    # the other quarters' would give the quarter's 27: likewise. Every total is shown; nothing else hidden.
    assert {p: h for p, h in hidden.items() if h} == {"2025-08": {"m", "n"}, "2025-Q3": {"m", "n"}, "2025": {"m", "n"}}


def test_a_quarter_hides_just_what_its_months_would_give_away_in_one_region() -> None:
    hidden = _decide(
        {
            "2025-01": {"m": 6, "n": 9},
            "2025-02": {"m": 1, "n": 2},
            "2025-03": {"m": 4, "n": 1},
            "2025-Q1": {"m": 11, "n": 12},
        }
    )
    # The quarter's 12 for n less January's 9 would leave February's and March's n together: 3. So n goes,
    # and with it the total (23 - 11 would give n back); hiding m instead of the total would leave the
    # total, and 23 less January's 15 and March's 5 is February's 3. m's 11 stays shown.
    assert hidden["2025-Q1"] == {"n", ""}


def test_a_quarter_hides_its_total_where_only_the_total_would_give_a_run_away() -> None:
    hidden = _decide(
        {
            "2025-01": {"m": 7, "n": 3},
            "2025-02": {"m": 1, "n": 1},
            "2025-03": {"m": 2, "n": 0},
            "2025-Q1": {"m": 10, "n": 4},
        }
    )
    # n's 4 is small; the total's 14 less January's 10 would give February and March together: 4.
    # Those two must go, and nothing else: m's 10 stays shown.
    assert hidden["2025-Q1"] == {"n", ""}


def test_a_quarter_that_leaks_one_region_after_another_hides_each_and_keeps_its_known_total() -> None:
    hidden = _decide(
        {
            "2025-01": {"m": 6, "n": 6, "o": 0},
            "2025-02": {"m": 2, "n": 1, "o": 7},
            "2025-03": {"m": 2, "n": 3, "o": 4},
            "2025-Q1": {"m": 10, "n": 10, "o": 11},
        },
        regions=("m", "n", "o"),
    )
    assert hidden["2025-01"] == set()
    # Less January's 6, the quarter's m and n would give February's and March's together, 4 each; its o
    # less January's 0 and February's 7 would give March's 4. All three go. Its total, 31, is January's
    # 12 + February's 10 + March's 9, all shown: it says nothing new and stays.
    assert hidden["2025-Q1"] == {"m", "n", "o"}


def test_where_forcing_cannot_settle_it_every_non_zero_figure_of_the_new_table_goes() -> None:
    hidden = _decide(
        {
            "2025-01": {"m": 9, "n": 6},
            "2025-02": {"m": 1, "n": 5},
            "2025-03": {"m": 2, "n": 5},
            "2025-Q1": {"m": 12, "n": 16},
        }
    )
    # The quarter's 12 less January's 9 gives February's and March's m together (3); hiding m leaves the
    # total less n. The last resort hides every non-zero figure, the total too: that adds no equation, so
    # it cannot undo what the months already protect.
    assert hidden["2025-Q1"] == {"m", "n", ""}


def _year_of(months: dict[int, dict[str, int]], regions=("m", "n")) -> dict[str, dict[str, int]]:
    """Twelve months (missing ones zero), each quarter after its third month, the year last."""
    full = {m: {r: months.get(m, {}).get(r, 0) for r in regions} for m in range(1, 13)}
    year: dict[str, dict[str, int]] = {}
    for m, cells in full.items():
        year[f"2025-{m:02d}"] = cells
        if m % 3 == 0:
            year[f"2025-Q{m // 3}"] = {r: sum(full[p][r] for p in (m - 2, m - 1, m)) for r in regions}
    year["2025"] = {r: sum(c[r] for c in full.values()) for r in regions}
    return year


def test_the_year_hides_its_total_where_hidden_figures_known_to_be_non_zero_would_be_pinned() -> None:
    year = _year_of(
        {2: {"m": 9, "n": 9}, 3: {"n": 9}, 4: {"m": 9}, 6: {"m": 1}, 8: {"n": 9}, 9: {"m": 1, "n": 1}, 12: {"m": 8}}
    )
    hidden = _decide(year)
    # June's 1 goes with its total; September's 1s and their 2 all go. The second quarter's m, 10, is April's 9
    # and June's 1, so it goes with its total; the third quarter's 1, and its 10 (with August's 9, September's
    # 1) and its 11 all go. The year's m, 28, would give June to September's m (2) and its n, 28, September's
    # n (1). Its total, 56, less the shown quarters' 27 and 8, would give June's and September's totals
    # together, 3, over three hidden figures a reader knows are not zero: each would be 1. All three go.
    assert {p: h for p, h in hidden.items() if h} == {
        "2025-06": {"m", ""},
        "2025-09": {"m", "n", ""},
        "2025-Q2": {"m", ""},
        "2025-Q3": {"m", "n", ""},
        "2025": {"m", "n", ""},
    }


def test_a_year_of_scattered_small_months_is_released_whole_and_gives_nothing_small_away() -> None:
    from tests.stats.solver import Reader

    year = _year_of(
        {
            1: {"m": 2},
            2: {"n": 9},
            3: {"n": 2},
            5: {"n": 1},
            6: {"n": 9},
            8: {"m": 9},
            11: {"n": 8},
            12: {"m": 9, "n": 9},
        }
    )
    hidden = _decide(year)
    reader = Reader()
    for period, cells in year.items():
        months = [d.month for d in joint.months_of(period)]
        for r in ("m", "n"):
            if r not in hidden[period]:
                reader.learn([(m, r) for m in months], cells[r])
        if "" not in hidden[period]:
            reader.learn([(m, r) for m in months for r in ("m", "n")], sum(cells.values()))
    for group in (["m"], ["n"], ["m", "n"]):
        for a in range(1, 13):
            for b in range(a, 13):
                value = reader.determined([(m, r) for m in range(a, b + 1) for r in group])
                assert value is None or not 0 < value < 5, (group, a, b, value)
    assert reader.figures > 30  # the reader did learn most of the year


def test_a_region_added_during_the_year_counts_as_zero_in_the_months_before_it() -> None:
    january = joint.Table(cells={"m": 9}, hidden=set())  # frozen before region n was configured
    february = joint.Table(cells={"m": 9, "n": 9})
    assert joint.suppress_jointly({"2025-01": january, "2025-02": february}, regions=["m", "n"], k=5) == set()
    february.hidden = set()
    march = joint.Table(cells={"m": 0, "n": 2})
    year = {"2025-01": january, "2025-02": february, "2025-03": march}
    assert joint.suppress_jointly(year, regions=["m", "n"], k=5) == {"n", ""}
    march.hidden = {"n", ""}
    # The quarter's n, 11, less February's 9 (and January's none) would give March's 2, and its total, 29,
    # less January's 9 and February's 18, March's total 2. Its m, 18, says nothing new.
    quarter = joint.Table(cells={"m": 18, "n": 11})
    year["2025-Q1"] = quarter
    assert joint.suppress_jointly(year, regions=["m", "n"], k=5) == {"n", ""}
