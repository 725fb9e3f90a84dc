"""Disclosure control at its edges: the threshold itself, inputs that are not counts, and which complement.

The expected patterns are worked out by hand in the comments; the module's own checker is only asked
afterwards, as a second opinion.
"""

from __future__ import annotations

import random
import subprocess
import sys
from fractions import Fraction

import pytest

from app.stats import disclosure as d


@pytest.mark.parametrize(
    "cells",
    [[[True, 5], [5, 5]], [[5, 5], [5, False]], [[5, 2.0], [5, 5]], [[5, -1], [5, 5]], [[5, "7"], [5, 5]]],
    ids=["true", "false", "float", "negative", "text"],
)
def test_only_non_negative_integers_are_counts(cells) -> None:
    with pytest.raises(d.DisclosureError, match="^counts must be non-negative integers$"):
        d.protect_table(cells, k=5)
    with pytest.raises(d.DisclosureError, match="^counts must be non-negative integers$"):
        d.protect_series(cells[0] + cells[1], k=5)


def test_booleans_are_refused_even_by_the_noise_step() -> None:
    with pytest.raises(d.DisclosureError, match="^counts must be non-negative integers$"):
        d.add_integer_noise([True, 3], epsilon=1.0)


@pytest.mark.parametrize("k", [0, -1])
def test_a_threshold_below_one_is_refused(k: int) -> None:
    with pytest.raises(d.DisclosureError, match="^the threshold k must be at least 1$"):
        d.protect_table([[1, 2], [3, 4]], k=k)
    with pytest.raises(d.DisclosureError, match="^the threshold k must be at least 1$"):
        d.protect_series([1, 2, 3], k=k)


def test_k_of_one_hides_nothing() -> None:
    released = d.protect_table([[1, 2], [3, 0]], k=1)
    assert released.cells == [[1, 2], [3, 0]] and released.suppressed == []
    assert released.grand_total == 6


@pytest.mark.parametrize(("count", "hidden"), [(4, True), (5, False), (1, True), (0, False)])
def test_the_table_threshold_is_exactly_k(count: int, hidden: bool) -> None:
    released = d.protect_table([[count, 9], [9, 9]], k=5)
    assert (released.cells[0][0] is None) is hidden


@pytest.mark.parametrize(
    ("numerator", "denominator", "rate"),
    [
        (5, 10, 0.5),  # both exactly K: shown
        (10, 5, 2.0),
        (4, 10, None),  # one below K
        (10, 4, None),
        (0, 10, 0.0),  # a zero numerator is a shown zero, not a small count
        (10, 0, None),  # no rate of nothing
        (None, 10, None),
        (10, None, None),
        (1, 10, None),
    ],
)
def test_the_rate_rule_at_exactly_k(numerator, denominator, rate) -> None:
    assert d.suppress_rate(numerator, denominator, k=5) == rate


@pytest.mark.parametrize(
    ("value", "n", "shown"),
    [(3.5, 5, 3.5), (3.5, 4, None), (3.5, 0, None), (3.5, None, None), (None, 9, None), (0.0, 6, 0.0)],
)
def test_a_quantile_needs_at_least_k_observations(value, n, shown) -> None:
    assert d.protect_quantile(value, n, k=5) == shown


def test_derived_values_follow_their_inputs() -> None:
    assert d.derived(7, 1, 2) == 7
    assert d.derived(7, 1, None) is None
    assert d.derived(0, 0) == 0


def test_complements_stay_inside_the_table_when_that_keeps_every_total() -> None:
    """[[8,0],[15,6],[3,20]]: the 3 needs a cycle. Zeros are public, so row 0 cannot carry one; rows 1 and 2
    can (3, 20, 6, 15 hidden), and then every row, column and the grand total stay shown."""
    released = d.protect_table([[8, 0], [15, 6], [3, 20]], k=5)
    assert released.cells == [[8, 0], [None, None], [None, None]]
    assert released.row_totals == [8, 21, 23]
    assert released.col_totals == [26, 26]
    assert released.grand_total == 52
    assert released.suppressed_rows == [] and released.suppressed_cols == []
    assert released.grand_total_suppressed is False
    assert d.find_recoverable(released, [[8, 0], [15, 6], [3, 20]]) == []


def test_two_small_cells_share_one_cycle() -> None:
    """[[15,20,2],[1,10,6]]: the 2 and the 1 sit in opposite corners of columns 0 and 2, so hiding 15 and 6
    with them makes one four-cell cycle. Protecting each on its own would hide six cells."""
    released = d.protect_table([[15, 20, 2], [1, 10, 6]], k=5)
    assert released.suppressed == [(0, 0), (0, 2), (1, 0), (1, 2)]
    assert released.cells == [[None, 20, None], [None, 10, None]]
    assert released.row_totals == [37, 17] and released.col_totals == [16, 30, 8] and released.grand_total == 54
    assert d.find_recoverable(released, [[15, 20, 2], [1, 10, 6]]) == []


def test_a_series_complement_is_the_smallest_other_count() -> None:
    """[0,3,7,9]: the 3 must be hidden; with the total shown, one more hidden value (the 7, smallest) hides it."""
    assert d.protect_series([0, 3, 7, 9], k=5) == ([0, None, None, 9], 19)


def test_a_lone_hidden_one_in_a_series_is_recoverable_even_with_another_hidden() -> None:
    """A reader knows a hidden count is at least 1: [1, 9] with both hidden and total 10 still allows 1+9, 2+8..."""
    assert d.find_recoverable_series(([None, None], 10), [1, 9]) == []
    # ...but with only the 1 hidden, the total gives it away.
    assert d.find_recoverable_series(([None, 9], 10), [1, 9]) == [0]


def test_a_hidden_one_can_only_rise() -> None:
    """[[1,1],[9,9]] with all four cells hidden and every total shown: the sums alone leave one free move
    (+t, -t, -t, +t), but a reader knows a hidden count is not 0, and either direction takes one of the
    1s to 0, so every cell is pinned."""
    hidden = [[None, None], [None, None]]
    suppressed = [(0, 0), (0, 1), (1, 0), (1, 1)]
    released = d.Released(hidden, [2, 18], [10, 10], 20, suppressed, [], [], False)
    assert d.find_recoverable(released, [[1, 1], [9, 9]]) == suppressed
    # With a 2 beside the 1, the 1 can rise and the 2 fall to 1: nothing is pinned.
    released = d.Released(hidden, [3, 18], [10, 11], 21, suppressed, [], [], False)
    assert d.find_recoverable(released, [[1, 2], [9, 9]]) == []


def test_a_release_that_does_not_match_its_table_is_refused() -> None:
    released = d.protect_table([[9, 9], [9, 9]], k=5)
    with pytest.raises(d.DisclosureError, match="^the release does not match the original table$"):
        d.find_recoverable(released, [[9, 9], [9, 8]])


def test_rows_of_different_length_are_refused() -> None:
    with pytest.raises(d.DisclosureError, match="^table rows differ in length$"):
        d.protect_table([[5, 5], [5]], k=5)


# --- the linear check, against an independent rank computation ---------------------------------------------


def _rank(rows: list[list[Fraction]]) -> int:
    rows = [list(r) for r in rows]
    rank, width = 0, len(rows[0]) if rows else 0
    for col in range(width):
        pivot = next((i for i in range(rank, len(rows)) if rows[i][col] != 0), None)
        if pivot is None:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        for i in range(len(rows)):
            if i != rank and rows[i][col] != 0:
                f = rows[i][col] / rows[rank][col]
                rows[i] = [a - f * b for a, b in zip(rows[i], rows[rank], strict=True)]
        rank += 1
    return rank


def _table_equations(n: int, m: int) -> list[dict[tuple[int, int], int]]:
    """Every sum a reader of the table knows, written from the table's meaning: rows, columns, totals."""
    eqs = [{**{(i, j): 1 for j in range(m)}, (i, m): -1} for i in range(n)]
    eqs += [{**{(i, j): 1 for i in range(n)}, (n, j): -1} for j in range(m)]
    eqs.append({**{(i, m): 1 for i in range(n)}, (n, m): -1})
    eqs.append({**{(n, j): 1 for j in range(m)}, (n, m): -1})
    return eqs


def _fixed_by_the_sums(eqs: list[dict[tuple[int, int], int]], hidden: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """A hidden figure is fixed exactly when its unit vector lies in the row space of the hidden columns."""
    matrix = [[Fraction(eq.get(p, 0)) for p in hidden] for eq in eqs]
    base = _rank(matrix)
    fixed = set()
    for k, p in enumerate(hidden):
        unit = [Fraction(int(i == k)) for i in range(len(hidden))]
        if _rank([*matrix, unit]) == base:
            fixed.add(p)
    return fixed


def test_the_linear_check_agrees_with_an_independent_rank_computation() -> None:
    rng = random.Random(20)
    for _ in range(300):
        n, m = rng.randint(1, 4), rng.randint(1, 4)
        table = [[rng.randint(0, 12) for _ in range(m)] for _ in range(n)]
        layout = d._table_layout(table)
        hidden = {e for e in range(len(layout.values)) if rng.random() < 0.45}
        expected = _fixed_by_the_sums(_table_equations(n, m), [layout.positions[e] for e in sorted(hidden)])
        assert {layout.positions[e] for e in d._determined(layout, hidden)} == expected, (table, hidden)


def test_the_linear_check_of_a_series() -> None:
    layout = d._series_layout([3, 9, 4])
    assert d._determined(layout, {0}) == {0}  # the total and the other values give it
    assert d._determined(layout, {0, 3}) == set()  # value and total hidden together: one sum, two unknowns
    assert d._determined(layout, {0, 1}) == set()
    assert d._determined(layout, {0, 1, 2, 3}) == set()


@pytest.mark.parametrize(
    ("hidden", "fixed"),
    [
        ({(0, 0)}, {(0, 0)}),
        ({(0, 0), (0, 1), (1, 0), (1, 1)}, set()),
        ({(0, 2), (2, 2)}, {(0, 2), (2, 2)}),  # a row total and the grand total: the column totals give both
        ({(0, 0), (0, 2)}, {(0, 0), (0, 2)}),
        ({(0, 0), (0, 1), (0, 2)}, {(0, 0), (0, 1), (0, 2)}),  # a whole row and its total: columns pin them
    ],
)
def test_the_linear_check_by_hand(hidden, fixed) -> None:
    """On [[3,9],[9,9]] with totals at (i,2), (2,j) and (2,2)."""
    layout = d._table_layout([[3, 9], [9, 9]])
    index = {p: e for e, p in enumerate(layout.positions)}
    found = {layout.positions[e] for e in d._determined(layout, {index[p] for p in hidden})}
    assert found == fixed


# --- which complements, on tables worked by hand ------------------------------------------------------------


def test_one_extra_cell_closes_a_rectangle_around_three_small_ones() -> None:
    """[[3,0,2],[1,20,7],[15,12,5]]: 3, 2 and 1 sit in three corners of rows 0-1 x columns 0 and 2 (row 0's
    other cell is a public 0). Hiding the 7 in the fourth corner protects all three; no total is needed."""
    released = d.protect_table([[3, 0, 2], [1, 20, 7], [15, 12, 5]], k=5)
    assert released.cells == [[None, 0, None], [None, 20, None], [15, 12, 5]]
    assert released.row_totals == [5, 28, 32] and released.col_totals == [19, 32, 14] and released.grand_total == 65


def test_equal_costs_prefer_fewer_cells() -> None:
    """[[2,3,3,2],[3,12,12,6],[6,0,6,0]]: row 0 and the 3 below it are small. Row 1's 12, 12 and 6 pair every
    column with row 0; the 2 in column 2 could take row 1's 12 or row 2's 6 and 6 (also 12, but two cells),
    so rows 0 and 1 are hidden whole and row 2 and every total stay shown."""
    released = d.protect_table([[2, 3, 3, 2], [3, 12, 12, 6], [6, 0, 6, 0]], k=5)
    assert released.cells == [[None] * 4, [None] * 4, [6, 0, 6, 0]]
    assert released.row_totals == [10, 33, 12] and released.col_totals == [11, 15, 21, 8]
    assert released.grand_total == 55


def test_hidden_ones_get_a_cycle_along_which_they_rise() -> None:
    """[[1,9,1],[15,5,2]]: two 1s in row 0 can only rise, so the 9 beside them must fall; with row 1 hidden
    too, (1 up, 9 down, 5 up, 15 down) and (1 up, 9 down, 5 up, 2 down) are both possible. The row totals and
    the grand total need not be hidden; hiding every figure instead would publish nothing."""
    released = d.protect_table([[1, 9, 1], [15, 5, 2]], k=5)
    assert released.cells == [[None] * 3, [None] * 3]
    assert released.row_totals == [11, 22] and released.grand_total == 33


def test_a_search_that_revisits_a_node_still_finds_the_cheap_cycle() -> None:
    """[[7,0,15,1],[9,1,6,7],[1,20,0,15]]: the 1s at (0,3) and (2,0) rise on (0,3) (0,0) (2,0) (2,3); the 1 at
    (1,1) on (1,1) (1,3) (2,3) (2,1). Every total can stay shown."""
    released = d.protect_table([[7, 0, 15, 1], [9, 1, 6, 7], [1, 20, 0, 15]], k=5)
    assert released.row_totals == [23, 23, 36] and released.col_totals == [17, 21, 21, 23]
    assert released.grand_total == 82
    assert released.cells[0][2] == 15 and released.cells[1][0] == 9 and released.cells[1][2] == 6


def test_a_small_two_may_fall_while_a_hidden_one_beside_it_rises() -> None:
    """[[2,1,20],[20,20,20],[20,20,20]]: the 2 and the 1 in row 0 are small. For the 2, the cheapest cycle lets
    it fall by one while the 1 rises: (0,0) down, (0,1) up, (1,1) down, (1,0) up costs 20 + 20. Letting the 2
    rise instead needs the 1 to fall, which a reader knows it cannot, so that way round goes by column 2:
    (1,0), (1,2) and (0,2) cost 60. The four cells of rows 0-1 x columns 0-1 are hidden; column 2 and every
    total stay shown."""
    released = d.protect_table([[2, 1, 20], [20, 20, 20], [20, 20, 20]], k=5)
    assert released.cells == [[None, None, 20], [None, None, 20], [20, 20, 20]]
    assert released.row_totals == [23, 60, 60] and released.col_totals == [42, 41, 60]
    assert released.grand_total == 143


def test_a_hidden_two_may_fall_to_let_a_small_one_rise() -> None:
    """[[1,2,20],[20,20,20],[20,20,20]]: the 1 can only rise. Its cheapest cycle takes the hidden 2 beside it
    down by one: (0,0) up, (1,0) down, (1,1) up, (0,1) down costs 20 + 20, against 60 for (1,0), (1,2) and
    (0,2) if the 2 could not fall. The same four cells are hidden and every total stays shown."""
    released = d.protect_table([[1, 2, 20], [20, 20, 20], [20, 20, 20]], k=5)
    assert released.cells == [[None, None, 20], [None, None, 20], [20, 20, 20]]
    assert released.row_totals == [23, 60, 60] and released.col_totals == [41, 42, 60]
    assert released.grand_total == 143


def test_an_empty_table_releases_only_a_zero_total() -> None:
    released = d.protect_table([], k=5)
    assert released.cells == [] and released.row_totals == [] and released.col_totals == []
    assert released.grand_total == 0 and released.suppressed == []
    assert d.find_recoverable(released, []) == []


# --- the safety net behind the complement search ------------------------------------------------------------


def test_a_complement_search_that_leaves_a_figure_recoverable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the search ever returned too little, the release must fail rather than publish a solvable table."""
    monkeypatch.setattr(d, "_add_complements", lambda layout, primary: set(primary))
    with pytest.raises(d.DisclosureError, match=r"^suppression left recoverable figures at \[\(0, 0\)\]$"):
        d.protect_table([[3, 9], [9, 9]], k=5)


def test_a_complement_search_that_gives_up_hides_every_non_zero_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(d, "_add_complements", lambda layout, primary: None)
    released = d.protect_table([[1, 0], [9, 9]], k=5)
    assert released.cells == [[None, 0], [None, None]]
    assert released.row_totals == [None, None] and released.col_totals == [None, None]
    assert released.grand_total is None


# --- noise --------------------------------------------------------------------------------------------------


def test_noise_at_an_epsilon_whose_first_scale_overshoots() -> None:
    """At epsilon 0.7 the scale 1/0.7 proves a loss a hair above 0.7; the scale is widened, not refused."""
    noisy = d.add_integer_noise([10] * 50, epsilon=0.7)
    assert len(noisy) == 50 and all(isinstance(v, int) and v >= 0 for v in noisy)
    assert noisy != [10] * 50


def test_noise_is_clamped_at_zero_not_above() -> None:
    noisy = d.add_integer_noise([0] * 200, epsilon=0.5)
    assert min(noisy) == 0 and 0 < noisy.count(0) < 200


def test_noise_works_in_a_fresh_process() -> None:
    """OpenDP's features are enabled by the call itself, not by whichever test ran first."""
    code = "from app.stats.disclosure import add_integer_noise as n; v = n([7, 8], epsilon=1.0); print(len(v))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "2"


def test_noise_turns_on_the_opendp_features_it_needs_itself() -> None:
    """The same promise in this process: whatever an earlier caller left switched off."""
    dp = pytest.importorskip("opendp.prelude")
    dp.disable_features("contrib")
    try:
        noisy = d.add_integer_noise([7, 8], epsilon=1.0)
    finally:
        dp.enable_features("contrib")
    assert len(noisy) == 2 and all(isinstance(v, int) and v >= 0 for v in noisy)


@pytest.mark.parametrize(("k", "n"), [(0, 0), (1, 0)])
def test_a_quantile_of_no_observations_is_never_shown(k: int, n: int) -> None:
    assert d.protect_quantile(1.5, n, k=k) is None


def test_a_quantile_of_one_observation_is_shown_when_k_is_one() -> None:
    assert d.protect_quantile(1.5, 1, k=1) == 1.5


@pytest.mark.parametrize(("epsilon", "sensitivity"), [(0.0, 1), (float("inf"), 1), (float("nan"), 1), (1.0, 0)])
def test_noise_refuses_parameters_with_one_clear_message(epsilon: float, sensitivity: int) -> None:
    with pytest.raises(d.DisclosureError, match="^epsilon must be positive and finite and sensitivity at least 1$"):
        d.add_integer_noise([5], epsilon=epsilon, sensitivity=sensitivity)


# --- the network form used for a year's releases ------------------------------------------------------------


def test_a_network_needs_a_threshold_of_at_least_one() -> None:
    with pytest.raises(d.DisclosureError, match="^the threshold k must be at least 1$"):
        d.protect_network([d.Arc(3, "a", "x")], k=0, balanced={"x"})
    assert d.protect_network([d.Arc(3, "a", "x"), d.Arc(3, "x", "b")], k=1, balanced={"x"}) == set()


def test_a_new_small_figure_beside_a_frozen_shown_sum_takes_its_complement() -> None:
    # x balances: 3 + 9 in, the frozen 12 out. The 3 goes; with 12 shown the 9 would give it back: it goes too.
    arcs = [d.Arc(3, "a", "x"), d.Arc(9, "a", "x"), d.Arc(12, "x", "b", fixed=False)]
    assert d.protect_network(arcs, k=5, balanced={"x"}) == {0, 1}
    # Unbalanced (its other figures unpublished), x gives nothing away: only the 3 goes.
    assert d.protect_network(arcs, k=5, balanced=set()) == {0}


def test_a_frozen_hidden_figure_already_recoverable_is_refused_by_count() -> None:
    # A 3 frozen hidden whose node balances against a shown 3: published before, it can be worked out now.
    arcs = [d.Arc(3, "a", "x", fixed=True), d.Arc(3, "x", "b", fixed=False), d.Arc(8, "c", "y")]
    with pytest.raises(d.DisclosureError, match="^figures already published leave 1 recoverable$"):
        d.protect_network(arcs, k=5, balanced={"x"})


def test_pinned_sums_solves_with_pivots_other_than_one() -> None:
    # a + b = 4, a + c = 3, b + c = 5: eliminating leaves 2c = 4, so a = 1, b = 3, c = 2; d is never named.
    equations = [(frozenset({0, 1}), 4), (frozenset({0, 2}), 3), (frozenset({1, 2}), 5)]
    candidates = [
        frozenset({0}),
        frozenset({1}),
        frozenset({2}),
        frozenset({0, 1, 2}),
        frozenset({3}),
        frozenset({2, 3}),
    ]
    assert d.pinned_sums(equations, candidates) == [
        (frozenset({0}), Fraction(1)),
        (frozenset({1}), Fraction(3)),
        (frozenset({2}), Fraction(2)),
        (frozenset({0, 1, 2}), Fraction(6)),
    ]


def test_a_new_small_figure_that_a_frozen_shown_one_equals_cannot_be_hidden_safely() -> None:
    # x balances a new 3 in against a 3 already shown out: no complement can help, and hiding the 3 anyway
    # leaves it recoverable, so the release is refused rather than made.
    arcs = [d.Arc(3, "a", "x"), d.Arc(3, "x", "b", fixed=False), d.Arc(8, "c", "y")]
    with pytest.raises(d.DisclosureError, match="^figures already published leave 1 recoverable$"):
        d.protect_network(arcs, k=5, balanced={"x"})


def test_the_last_resort_hides_every_new_non_zero_figure_and_nothing_else() -> None:
    """x balances a new 3 and a shown 7 in against a new 10 out; y balances that 10 against a shown 10 and a 0
    an earlier release hid. The 3 needs the 10 hidden and the hidden 0 to rise, which the complement search
    cannot use (it never takes a zero), so it gives up; the last resort hides the new 3 and 10, and the new 1
    and 0 between unpublished nodes: the 1 goes, the 0 stays shown. A reader then has 3 = z + 3 with z >= 0."""
    arcs = [
        d.Arc(3, "a", "x"),
        d.Arc(7, "a", "x", fixed=False),
        d.Arc(10, "x", "y"),
        d.Arc(10, "y", "b", fixed=False),
        d.Arc(0, "y", "b", fixed=True),
        d.Arc(1, "c", "d"),
        d.Arc(0, "c", "d"),
    ]
    assert d.protect_network(arcs, k=5, balanced={"x", "y"}) == {0, 2, 4, 5}
