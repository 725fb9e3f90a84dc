"""The research file's disclosure control: k holds, blanks cannot be filled in, and enough rows are kept."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.exports import records
from bench.records_sdc import demo_fine

K = 5


def _domain(column: int, level: int, years: set[str]) -> set[str]:
    """Every value column ``column`` can take at ``level``: what a reader knows without the file."""
    if column == 0:
        suffixes = ([f"-{m:02d}" for m in range(1, 13)], ["-Q1", "-Q2", "-Q3", "-Q4"], ["-H1", "-H2"], [""])[level]
        return {y + s for y in years for s in suffixes}
    groups = (records.REGION_GROUPS, records.CHANNEL_GROUPS, records.RISK_GROUPS, records.STATUS_GROUPS)[column - 1]
    return set(groups) if level == 0 else set(groups.values())


def _fillings(plan: records.Plan, key: tuple[str, ...], years: set[str]) -> list[tuple[str, ...]]:
    """The full combinations a blanked row could have been, given the file: not one the file shows whole.

    A row is blanked only when its combination was smaller than k, and such a combination is never written
    whole; so a reader who knows the method rules out every combination the file does show.
    """
    blanks = [c for c, v in enumerate(key) if v == records.BLANK]
    options = []
    for values in itertools.product(*(sorted(_domain(c, plan.levels[c], years)) for c in blanks)):
        filled = list(key)
        for c, v in zip(blanks, values, strict=True):
            filled[c] = v
        if tuple(filled) not in plan.classes:
            options.append(tuple(filled))
    return options


def _check(plan: records.Plan, fine: Counter, *, k: int) -> None:
    total = sum(fine.values())
    assert plan.rows + plan.dropped == total
    assert sum(plan.classes.values()) == plan.rows
    assert min(plan.classes.values(), default=k) >= k
    assert plan.suppressed_values == sum(n * key.count(records.BLANK) for key, n in plan.classes.items())
    assert 0.0 <= plan.information_loss <= 1.0
    years = {f"{y:04d}" for (y, _), *_ in fine}
    truth: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for f in fine:
        coarse = records.recode(f, plan.levels)
        for key in plan.classes:
            if records.BLANK in key and all(a in (b, records.BLANK) for a, b in zip(key, coarse, strict=True)):
                truth.setdefault(key, set()).add(coarse)
    for key in plan.classes:
        if records.BLANK not in key:
            continue
        options = _fillings(plan, key, years)
        assert len(options) >= 2, (key, options)  # the blank cannot be filled in from the rest of the file
        assert len(truth[key]) >= 2, key  # and the rows behind it did differ


@pytest.mark.parametrize("n, floor", [(500, 0.80), (10_000, 0.95)])
def test_kept_share_and_information_loss_on_demo_like_data(n: int, floor: float) -> None:
    fine = demo_fine(n)
    plan = records.plan(fine, k=K)
    _check(plan, fine, k=K)
    assert plan.rows / n >= floor
    assert plan.information_loss < (0.95 if n == 500 else 0.4)
    assert plan.suppressed_values > 0  # local suppression is doing the work that dropping rows used to


def test_a_bigger_file_keeps_more_detail() -> None:
    small, large = records.plan(demo_fine(500), k=K), records.plan(demo_fine(10_000, seed=2), k=K)
    assert large.information_loss < small.information_loss


def test_a_lone_record_is_dropped_not_blanked_into_a_group_of_one_value() -> None:
    fine = Counter(
        {((2026, 1), "chechnya", "phone", "high", "new"): 9, ((2026, 1), "chechnya", "phone", "high", "closed"): 1}
    )
    plan = records.plan(fine, k=K)
    _check(plan, fine, k=K)
    # Blanking the lone row's status would make a "group" whose blank anyone could fill in: it is dropped.
    assert (plan.rows, plan.dropped, plan.suppressed_values) == (9, 1, 0)


combos = st.tuples(
    st.tuples(st.sampled_from([2025, 2026]), st.integers(min_value=1, max_value=12)),
    st.sampled_from(["chechnya", "dagestan", "moscow", "abroad"]),
    st.sampled_from(["phone", "telegram", "signal", "email"]),
    st.sampled_from(["low", "high", "immediate"]),
    st.sampled_from(["no_case", "new", "evacuated", "declined"]),
)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(combos, st.integers(min_value=1, max_value=6), min_size=1, max_size=60), st.integers(2, 6))
def test_every_plan_is_k_anonymous_and_no_blank_can_be_filled_in(counts, k) -> None:
    fine = Counter(counts)
    plan = records.plan(fine, k=k)
    _check(plan, fine, k=k)
