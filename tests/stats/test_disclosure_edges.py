"""Disclosure control at its edges: the threshold itself, inputs that are not counts, and which complement.

The expected patterns are worked out by hand in the comments; the module's own checker is only asked
afterwards, as a second opinion.
"""

from __future__ import annotations

import pytest

from app.stats import disclosure as d


@pytest.mark.parametrize(
    "cells",
    [[[True, 5], [5, 5]], [[5, 5], [5, False]], [[5, 2.0], [5, 5]], [[5, -1], [5, 5]], [[5, "7"], [5, 5]]],
    ids=["true", "false", "float", "negative", "text"],
)
def test_only_non_negative_integers_are_counts(cells) -> None:
    with pytest.raises(d.DisclosureError, match="counts must be non-negative integers"):
        d.protect_table(cells, k=5)
    with pytest.raises(d.DisclosureError, match="counts must be non-negative integers"):
        d.protect_series(cells[0] + cells[1], k=5)


def test_booleans_are_refused_even_by_the_noise_step() -> None:
    with pytest.raises(d.DisclosureError, match="counts must be non-negative integers"):
        d.add_integer_noise([True, 3], epsilon=1.0)


@pytest.mark.parametrize("k", [0, -1])
def test_a_threshold_below_one_is_refused(k: int) -> None:
    with pytest.raises(d.DisclosureError, match="the threshold k must be at least 1"):
        d.protect_table([[1, 2], [3, 4]], k=k)
    with pytest.raises(d.DisclosureError, match="the threshold k must be at least 1"):
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
    with pytest.raises(d.DisclosureError, match="does not match"):
        d.find_recoverable(released, [[9, 9], [9, 8]])


def test_rows_of_different_length_are_refused() -> None:
    with pytest.raises(d.DisclosureError, match="table rows differ in length"):
        d.protect_table([[5, 5], [5]], k=5)
