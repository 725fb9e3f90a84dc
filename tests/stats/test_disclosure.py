"""Disclosure control: no published figure is small, and no hidden figure can be worked out.

The recoverability checks here are written from the table's sums directly, not from the module's graph, so
a slip in the module's own checker cannot make these tests pass.
"""

import sys
from collections.abc import Sequence
from fractions import Fraction
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.stats.disclosure import (
    DisclosureError,
    Released,
    add_integer_noise,
    derived,
    find_recoverable,
    find_recoverable_series,
    protect_quantile,
    protect_series,
    protect_table,
    suppress_rate,
)

Position = tuple[int, int]
Row = dict[Position, Fraction]


# --- independent checks -------------------------------------------------------------------------------


def _shown(released: Released) -> dict[Position, int | None]:
    """Every figure of the printed table, totals at (i, n_cols), (n_rows, j) and (n_rows, n_cols)."""
    n_rows, n_cols = len(released.cells), len(released.col_totals)
    figures: dict[Position, int | None] = {(i, j): released.cells[i][j] for i in range(n_rows) for j in range(n_cols)}
    figures.update({(i, n_cols): released.row_totals[i] for i in range(n_rows)})
    figures.update({(n_rows, j): released.col_totals[j] for j in range(n_cols)})
    figures[(n_rows, n_cols)] = released.grand_total
    return figures


def _sums(n_rows: int, n_cols: int) -> list[list[tuple[Position, int]]]:
    """Each published identity as (position, coefficient) terms that add up to zero."""
    sums = [[((i, j), 1) for j in range(n_cols)] + [((i, n_cols), -1)] for i in range(n_rows)]
    sums += [[((i, j), 1) for i in range(n_rows)] + [((n_rows, j), -1)] for j in range(n_cols)]
    sums.append([((i, n_cols), 1) for i in range(n_rows)] + [((n_rows, n_cols), -1)])
    sums.append([((n_rows, j), 1) for j in range(n_cols)] + [((n_rows, n_cols), -1)])
    return sums


def _echelon(rows: Sequence[Row]) -> list[Row]:
    basis: list[tuple[Position, Row]] = []
    for original in rows:
        row = dict(original)
        for pivot, pivot_row in basis:
            factor = row.get(pivot, Fraction(0)) / pivot_row[pivot]
            if factor:
                for key, value in pivot_row.items():
                    row[key] = row.get(key, Fraction(0)) - factor * value
                row = {key: value for key, value in row.items() if value}
        if row:
            basis.append((min(row), row))
    return [row for _, row in basis]


def linearly_recoverable(released: Released) -> set[Position]:
    """Hidden figures whose unit vector is in the row space: rank(A) == rank(A + e_u)."""
    hidden = {p for p, v in _shown(released).items() if v is None}
    n_rows, n_cols = len(released.cells), len(released.col_totals)
    # Shown figures move to the right-hand side, which cannot change which unknowns are determined.
    equations = [{p: Fraction(c) for p, c in terms if p in hidden} for terms in _sums(n_rows, n_cols)]
    basis = _echelon(equations)
    return {u for u in hidden if len(_echelon([*basis, {u: Fraction(1)}])) == len(basis)}


def _may_become(shown: int | None, true: int, step: int) -> bool:
    """A shown total cannot move; a hidden one can, but never to zero (the reader knows zeros are shown)."""
    return step == 0 if shown is not None else true + step >= 1


def pinned_by_integers(released: Released, original: Sequence[Sequence[int]]) -> set[Position]:
    """Hidden figures with no other integer value >= 1 consistent with the release (brute force).

    Alternatives one step away suffice: the sums form a network matrix, so any other solution is reached
    along cycles that change each figure by at most one.
    """
    n_rows, n_cols = len(original), len(original[0])
    shown = _shown(released)
    row_options: list[list[dict[int, int]]] = []
    for i in range(n_rows):
        hidden_cols = [j for j in range(n_cols) if shown[(i, j)] is None]
        options = []
        for steps in product((-1, 0, 1), repeat=len(hidden_cols)):
            if any(original[i][j] + s < 1 for j, s in zip(hidden_cols, steps, strict=True)):
                continue
            if not _may_become(shown[(i, n_cols)], sum(original[i]), sum(steps)):
                continue
            options.append(dict(zip(hidden_cols, steps, strict=True)))
        row_options.append(options)
    col_totals = [sum(row[j] for row in original) for j in range(n_cols)]
    hidden = {p for p, v in shown.items() if v is None}
    moved: set[Position] = set()
    for combo in product(*row_options):
        col_steps = [sum(steps.get(j, 0) for steps in combo) for j in range(n_cols)]
        grand_step = sum(col_steps)
        if not all(_may_become(shown[(n_rows, j)], col_totals[j], col_steps[j]) for j in range(n_cols)):
            continue
        if not _may_become(shown[(n_rows, n_cols)], sum(col_totals), grand_step):
            continue
        moved |= {(i, j) for i, steps in enumerate(combo) for j, s in steps.items() if s}
        moved |= {(i, n_cols) for i, steps in enumerate(combo) if sum(steps.values())}
        moved |= {(n_rows, j) for j in range(n_cols) if col_steps[j]}
        if grand_step:
            moved.add((n_rows, n_cols))
        if hidden <= moved:
            break
    return hidden - moved


def naive(cells: list[list[int]], hide: set[Position]) -> Released:
    """A release hiding exactly the given figures, for showing that the checks can fail."""
    n_rows, n_cols = len(cells), len(cells[0])
    full = {(i, j): cells[i][j] for i in range(n_rows) for j in range(n_cols)}
    full.update({(i, n_cols): sum(cells[i]) for i in range(n_rows)})
    full.update({(n_rows, j): sum(row[j] for row in cells) for j in range(n_cols)})
    full[(n_rows, n_cols)] = sum(map(sum, cells))
    shown = {p: None if p in hide else v for p, v in full.items()}
    return Released(
        cells=[[shown[(i, j)] for j in range(n_cols)] for i in range(n_rows)],
        row_totals=[shown[(i, n_cols)] for i in range(n_rows)],
        col_totals=[shown[(n_rows, j)] for j in range(n_cols)],
        grand_total=shown[(n_rows, n_cols)],
        suppressed=sorted(p for p in hide if p[0] < n_rows and p[1] < n_cols),
        suppressed_rows=sorted(i for i, j in hide if j == n_cols and i < n_rows),
        suppressed_cols=sorted(j for i, j in hide if i == n_rows and j < n_cols),
        grand_total_suppressed=(n_rows, n_cols) in hide,
    )


def assert_sound(released: Released, cells: list[list[int]], k: int) -> None:
    """Every shown figure is true, none is small, zeros are shown, and the bookkeeping lists agree."""
    original = _shown(naive(cells, set()))
    shown = _shown(released)
    assert shown.keys() == original.keys()
    for position, value in shown.items():
        assert value is None or value == original[position], position
        assert value is None or not 0 < value < k, position
        assert original[position] != 0 or value == 0, position
    n_rows, n_cols = len(cells), len(cells[0])
    hidden = {p for p, v in shown.items() if v is None}
    assert set(released.suppressed) == {(i, j) for i, j in hidden if i < n_rows and j < n_cols}
    assert released.suppressed_rows == sorted(i for i, j in hidden if j == n_cols and i < n_rows)
    assert released.suppressed_cols == sorted(j for i, j in hidden if i == n_rows and j < n_cols)
    assert released.grand_total_suppressed == ((n_rows, n_cols) in hidden)


# --- tables -------------------------------------------------------------------------------------------


@st.composite
def tables(draw: st.DrawFn, max_rows: int = 8, max_cols: int = 8) -> tuple[list[list[int]], int]:
    k = draw(st.integers(2, 10))
    count = st.one_of(st.just(0), st.integers(1, k - 1), st.integers(k, 200))
    n_rows, n_cols = draw(st.integers(1, max_rows)), draw(st.integers(1, max_cols))
    cells = draw(st.lists(st.lists(count, min_size=n_cols, max_size=n_cols), min_size=n_rows, max_size=n_rows))
    return cells, k


@settings(max_examples=200, deadline=None)
@given(tables())
def test_protected_table_hides_small_counts_and_cannot_be_solved(table: tuple[list[list[int]], int]) -> None:
    cells, k = table
    released = protect_table(cells, k=k)
    assert_sound(released, cells, k)
    assert find_recoverable(released, cells) == []
    assert linearly_recoverable(released) == set()


@settings(max_examples=100, deadline=None)
@given(tables(max_rows=3, max_cols=3))
def test_protected_table_has_another_answer_for_every_hidden_figure(
    table: tuple[list[list[int]], int],
) -> None:
    cells, k = table
    released = protect_table(cells, k=k)
    assert pinned_by_integers(released, cells) == set()


def test_hiding_only_the_small_cell_is_recoverable_from_the_totals() -> None:
    cells = [[2, 10], [10, 10]]
    hidden_alone = naive(cells, {(0, 0)})
    assert find_recoverable(hidden_alone, cells) == [(0, 0)]
    assert linearly_recoverable(hidden_alone) == {(0, 0)}
    released = protect_table(cells, k=5)
    assert released.suppressed == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert released.row_totals == [12, 20] and released.col_totals == [12, 20] and released.grand_total == 32


def test_knowing_hidden_counts_are_not_zero_is_an_attack_the_checks_catch() -> None:
    # Sums alone leave one degree of freedom, but two hidden cells summing to 2 must both be 1.
    cells = [[1, 1, 10], [5, 6, 10]]
    block = naive(cells, {(0, 0), (0, 1), (1, 0), (1, 1)})
    assert linearly_recoverable(block) == set()
    assert pinned_by_integers(block, cells) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert find_recoverable(block, cells) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    released = protect_table(cells, k=2)
    assert_sound(released, cells, 2)
    assert find_recoverable(released, cells) == []
    assert pinned_by_integers(released, cells) == set()


def test_row_with_one_small_count_hides_its_row_total() -> None:
    cells = [[3, 0, 0], [10, 12, 14], [11, 13, 15]]
    released = protect_table(cells, k=5)
    assert_sound(released, cells, 5)
    assert released.cells[0] == [None, 0, 0]
    assert released.suppressed_rows[0] == 0
    assert find_recoverable(released, cells) == []
    assert linearly_recoverable(released) == set()
    assert pinned_by_integers(released, cells) == set()


def test_all_zero_table_is_shown_in_full() -> None:
    released = protect_table([[0, 0, 0], [0, 0, 0]], k=5)
    assert released.cells == [[0, 0, 0], [0, 0, 0]]
    assert released.row_totals == [0, 0] and released.col_totals == [0, 0, 0] and released.grand_total == 0
    assert released.suppressed == [] and not released.grand_total_suppressed


def test_table_of_large_counts_is_shown_in_full() -> None:
    cells = [[5, 9, 40], [17, 6, 5]]
    released = protect_table(cells, k=5)
    assert released.cells == cells
    assert released.row_totals == [54, 28] and released.col_totals == [22, 15, 45] and released.grand_total == 82
    assert released.suppressed == [] and released.suppressed_rows == [] and released.suppressed_cols == []


def test_headline_totals_survive_when_cells_can_protect_each_other() -> None:
    # Regions by contacts, cases and escapes: 80 / 50 / 40 in all.
    cells = [[40, 25, 20], [30, 22, 17], [7, 2, 3], [3, 1, 0]]
    released = protect_table(cells, k=5)
    assert_sound(released, cells, 5)
    assert released.col_totals == [80, 50, 40] and released.grand_total == 170
    assert {(2, 1), (2, 2), (3, 0), (3, 1)} <= set(released.suppressed)
    assert released.cells[3][2] == 0
    assert released.row_totals[3] is None
    assert find_recoverable(released, cells) == []
    assert linearly_recoverable(released) == set()
    assert pinned_by_integers(released, cells) == set()


def test_single_small_table_hides_everything_and_stays_unsolvable() -> None:
    released = protect_table([[1]], k=5)
    assert released.cells == [[None]] and released.row_totals == [None] and released.grand_total is None
    assert pinned_by_integers(released, [[1]]) == set()


def test_malformed_tables_are_refused() -> None:
    with pytest.raises(DisclosureError, match="differ in length"):
        protect_table([[1, 2], [3]], k=5)
    with pytest.raises(DisclosureError, match="non-negative"):
        protect_table([[1, -2]], k=5)
    with pytest.raises(DisclosureError, match="does not match"):
        find_recoverable(naive([[7, 8]], set()), [[7, 9]])


# --- series -------------------------------------------------------------------------------------------


def pinned_in_series(values: list[int | None], total: int | None, original: list[int]) -> set[int]:
    """Hidden indexes (len(original) = the total) with one possible value, reasoned from the sum alone."""
    hidden = [j for j, v in enumerate(values) if v is None]
    if total is None:
        # Each hidden value can rise together with the total.
        return set()
    left = total - sum(v for v in values if v is not None)
    if len(hidden) == 1 or left == len(hidden):
        return set(hidden)
    return set()


@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 10).flatmap(
        lambda k: st.tuples(
            st.just(k),
            st.lists(st.one_of(st.just(0), st.integers(1, k - 1), st.integers(k, 200)), min_size=0, max_size=20),
        )
    )
)
def test_protected_series_hides_small_counts_and_cannot_be_solved(case: tuple[int, list[int]]) -> None:
    k, original = case
    values, total = protect_series(original, k=k)
    assert len(values) == len(original)
    for shown, true in zip([*values, total], [*original, sum(original)], strict=True):
        assert shown is None or shown == true
        assert shown is None or not 0 < shown < k
        assert true != 0 or shown == 0
    assert pinned_in_series(values, total, original) == set()
    assert find_recoverable_series((values, total), original) == []


def test_series_complement_is_the_smallest_other_count() -> None:
    assert protect_series([2, 12, 10], k=5) == ([None, 12, None], 24)


def test_series_with_one_small_count_hides_the_total() -> None:
    assert protect_series([0, 3, 0], k=5) == ([0, None, 0], None)


def test_series_checker_catches_a_lone_hidden_value() -> None:
    assert find_recoverable_series(([None, 12, 10], 24), [2, 12, 10]) == [0]
    assert pinned_in_series([None, 12, 10], 24, [2, 12, 10]) == {0}


def test_series_of_zeros_and_large_counts_is_shown() -> None:
    assert protect_series([0, 7, 0, 30], k=5) == ([0, 7, 0, 30], 37)


# --- rates and medians --------------------------------------------------------------------------------


def test_rate_is_hidden_with_its_inputs() -> None:
    assert suppress_rate(10, 40, k=5) == 0.25
    assert suppress_rate(0, 40, k=5) == 0.0
    assert suppress_rate(None, 40, k=5) is None
    assert suppress_rate(10, None, k=5) is None
    assert suppress_rate(10, 0, k=5) is None
    # Raw small counts passed by mistake are still refused.
    assert suppress_rate(3, 40, k=5) is None


def test_derived_value_is_hidden_when_any_input_is() -> None:
    assert derived(0.5, 10, 20) == 0.5
    assert derived(0.5, 10, None) is None
    assert derived("12 days", None) is None


def test_quantile_needs_a_shown_count_of_at_least_k() -> None:
    assert protect_quantile(3.5, 5, k=5) == 3.5
    assert protect_quantile(3.5, 4, k=5) is None
    assert protect_quantile(3.5, 1, k=5) is None
    assert protect_quantile(3.5, 0, k=5) is None
    assert protect_quantile(3.5, None, k=5) is None
    assert protect_quantile(None, 50, k=5) is None


# --- differential privacy -----------------------------------------------------------------------------


def test_noise_gives_non_negative_integers_that_differ_from_the_input() -> None:
    noisy = add_integer_noise([0] * 200 + [50] * 200, epsilon=1.0)
    assert len(noisy) == 400
    assert all(type(v) is int for v in noisy)
    assert all(v >= 0 for v in noisy)
    assert any(v > 0 for v in noisy[:200])
    assert any(v != 50 for v in noisy[200:])


def test_noise_scale_is_sensitivity_over_epsilon() -> None:
    # Discrete Laplace with scale 10 has a mean absolute deviation near 10; scale 0.1 would give about 0.
    noisy = add_integer_noise([1000] * 400, epsilon=0.1)
    mean_deviation = sum(abs(v - 1000) for v in noisy) / len(noisy)
    assert 6 < mean_deviation < 15
    wider = add_integer_noise([1000] * 400, epsilon=1.0, sensitivity=10)
    assert 6 < sum(abs(v - 1000) for v in wider) / len(wider) < 15


def test_noise_refuses_bad_parameters() -> None:
    with pytest.raises(DisclosureError, match="epsilon"):
        add_integer_noise([1], epsilon=0.0)
    with pytest.raises(DisclosureError, match="epsilon"):
        add_integer_noise([1], epsilon=1.0, sensitivity=0)
    with pytest.raises(DisclosureError, match="non-negative"):
        add_integer_noise([-1], epsilon=1.0)


def test_missing_dp_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opendp.prelude", None)
    with pytest.raises(DisclosureError, match=r"optional 'dp' extra: pip install 'helpline\[dp\]'"):
        add_integer_noise([5, 6], epsilon=1.0)
