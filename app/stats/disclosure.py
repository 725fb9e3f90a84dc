"""Disclosure control: every published count, rate or median goes through here first.

A reader knows three things about a hidden count: the published figures around it, the sums that tie them
together, and that it is not zero (zeros are shown). Hiding is only safe if, with all three, the hidden
value still has more than one possible answer.

Internally a table is a set of *entries* (cells and totals), each an arc between two balance nodes (a row,
a column, the totals row, the totals column): raising an entry by one pushes one unit from its tail to its
head, and every node's inflow equals its outflow. A reader can move hidden values only along cycles of
hidden arcs, so a hidden entry is safe exactly when it lies on such a cycle; a hidden 1 may only rise,
because the reader knows it cannot fall to zero. Because this constraint matrix is totally unimodular,
a cycle is also an integer alternative, so the test is exact.

Nested tables are a network too. A year's months, quarters and year itself, for one measure, are arcs
between a node per month (its cells out, its total in), per quarter and region (months' cells in, the
quarter's cell out), per region (quarters in, the year's cell out), per quarter's total, and the two total
nodes: every published sum is one node's balance. ``protect_network`` takes such arcs, some of them already
frozen as shown or hidden by an earlier release, and hides new ones until every hidden figure, old and new,
still lies on a movable cycle. A node whose figures are not all published yet has no equation; those nodes
act as one free node, which is what a reader faces before the quarter or year is out.
"""

import heapq
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

T = TypeVar("T")

# (i, j) in the table as printed with its totals: (i, n_cols) is row total i, (n_rows, j) column total j,
# (n_rows, n_cols) the grand total.
Position = tuple[int, int]

DP_EXTRA_MESSAGE = "differential privacy needs the optional 'dp' extra: pip install 'helpline[dp]'"


class DisclosureError(Exception):
    """A figure could not be released safely, or the input makes no sense as counts."""


@dataclass(frozen=True)
class Released:
    """A disclosure-controlled table; None marks a suppressed figure. Render every None alike."""

    cells: list[list[int | None]]
    row_totals: list[int | None]
    col_totals: list[int | None]
    grand_total: int | None
    suppressed: list[Position]
    suppressed_rows: list[int]
    suppressed_cols: list[int]
    grand_total_suppressed: bool


@dataclass(frozen=True)
class _Layout:
    values: tuple[int, ...]
    tails: tuple[int, ...]
    heads: tuple[int, ...]
    positions: tuple[Position, ...]
    margins: frozenset[int]
    # A series' cells appear in one sum only; their other end is a ground node with no balance equation.
    balanced: tuple[int, ...]


def _table_layout(cells: Sequence[Sequence[int]]) -> _Layout:
    n_rows = len(cells)
    n_cols = len(cells[0]) if cells else 0
    if any(len(row) != n_cols for row in cells):
        raise DisclosureError("table rows differ in length")
    flat = [value for row in cells for value in row]
    _check_counts(flat)
    totals_row, totals_col = n_rows, n_rows + 1 + n_cols
    row_sums = [sum(row) for row in cells]
    col_sums = [sum(row[j] for row in cells) for j in range(n_cols)]
    arcs: list[tuple[int, int, int, Position]] = [
        (cells[i][j], i, n_rows + 1 + j, (i, j)) for i in range(n_rows) for j in range(n_cols)
    ]
    arcs += [(row_sums[i], totals_col, i, (i, n_cols)) for i in range(n_rows)]
    arcs += [(col_sums[j], n_rows + 1 + j, totals_row, (n_rows, j)) for j in range(n_cols)]
    arcs.append((sum(flat), totals_row, totals_col, (n_rows, n_cols)))
    return _layout(arcs, margins=range(n_rows * n_cols, len(arcs)), balanced=range(n_rows + n_cols + 2))


def _series_layout(values: Sequence[int]) -> _Layout:
    _check_counts(values)
    total, ground = 0, 1
    arcs = [(value, total, ground, (0, j)) for j, value in enumerate(values)]
    arcs.append((sum(values), ground, total, (0, len(values))))
    return _layout(arcs, margins=[len(values)], balanced=[total])


def _layout(arcs: list[tuple[int, int, int, Position]], *, margins: Sequence[int], balanced: Sequence[int]) -> _Layout:
    values, tails, heads, positions = zip(*arcs, strict=True)
    return _Layout(values, tails, heads, positions, frozenset(margins), tuple(balanced))


def _check_counts(values: Sequence[int]) -> None:
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
        raise DisclosureError("counts must be non-negative integers")


def _moves(layout: _Layout, hidden: set[int], skip: int) -> dict[int, list[int]]:
    """Node adjacency along which a reader can shift hidden values without breaking any sum."""
    adjacency: dict[int, list[int]] = {}
    for e in hidden:
        if e == skip:
            continue
        adjacency.setdefault(layout.tails[e], []).append(layout.heads[e])
        if layout.values[e] > 1:
            adjacency.setdefault(layout.heads[e], []).append(layout.tails[e])
    return adjacency


def _reaches(adjacency: dict[int, list[int]], start: int, goal: int) -> bool:
    seen, queue = {start}, deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            return True
        for nxt in adjacency.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return False


def _can_move(layout: _Layout, hidden: set[int], e: int) -> bool:
    adjacency = _moves(layout, hidden, skip=e)
    tail, head = layout.tails[e], layout.heads[e]
    return _reaches(adjacency, head, tail) or (layout.values[e] > 1 and _reaches(adjacency, tail, head))


def _determined(layout: _Layout, hidden: set[int]) -> set[int]:
    """Hidden entries fixed by the sums alone: exact Gauss-Jordan over the balance equations."""
    equations: dict[int, dict[int, Fraction]] = {node: {} for node in layout.balanced}
    for e in hidden:
        for node, sign in ((layout.tails[e], 1), (layout.heads[e], -1)):
            if node in equations:
                equations[node][e] = equations[node].get(e, Fraction(0)) + sign
    pivots: dict[int, dict[int, Fraction]] = {}
    for equation in equations.values():
        row = {c: v for c, v in equation.items() if v}
        for p, pivot_row in pivots.items():
            _eliminate(row, pivot_row, p)
        if not row:
            continue
        p = min(row)
        scale = 1 / row[p]
        row = {c: v * scale for c, v in row.items()}
        for pivot_row in pivots.values():
            _eliminate(pivot_row, row, p)
        pivots[p] = row
    # In reduced row echelon form a unit vector lies in the row space only as a pivot row of length one.
    return {p for p, row in pivots.items() if len(row) == 1}


def _eliminate(row: dict[int, Fraction], pivot_row: dict[int, Fraction], p: int) -> None:
    factor = row.get(p)
    if not factor:
        return
    for c, v in pivot_row.items():
        value = row.get(c, Fraction(0)) - factor * v
        if value:
            row[c] = value
        else:
            row.pop(c, None)


def _recoverable(layout: _Layout, hidden: set[int]) -> set[int]:
    # The cycle test already covers the linear one; both run so a slip in either shows up as a leak here.
    pinned = {e for e in hidden if not _can_move(layout, hidden, e)}
    return pinned | _determined(layout, hidden)


def _cheapest_cycle(layout: _Layout, hidden: set[int], e: int, locked: frozenset[int]) -> set[int] | None:
    """Fewest totals, then smallest counts, to hide so that hidden entry e lies on a movable cycle."""
    arcs: dict[int, list[tuple[int, int, tuple[int, int, int]]]] = {}
    for f, value in enumerate(layout.values):
        # A locked entry is already published: it cannot be taken back to serve as a complement.
        if f == e or value == 0 or f in locked:
            continue
        # Already hidden entries are free, which steers complements into rows and columns that share them.
        cost = (0, 0, 0) if f in hidden else (int(f in layout.margins), value, 1)
        arcs.setdefault(layout.tails[f], []).append((layout.heads[f], f, cost))
        if value > 1 or f not in hidden:
            arcs.setdefault(layout.heads[f], []).append((layout.tails[f], f, cost))
    tail, head = layout.tails[e], layout.heads[e]
    ends = [(head, tail)] + ([(tail, head)] if layout.values[e] > 1 else [])
    found = [path for start, goal in ends if (path := _dijkstra(arcs, start, goal)) is not None]
    if not found:
        return None
    return min(found, key=lambda path: path[0])[1] - hidden


def _dijkstra(
    arcs: dict[int, list[tuple[int, int, tuple[int, int, int]]]], start: int, goal: int
) -> tuple[tuple[int, int, int], set[int]] | None:
    best: dict[int, tuple[int, int, int]] = {start: (0, 0, 0)}
    via: dict[int, tuple[int, int]] = {}
    heap = [((0, 0, 0), start)]
    while heap:
        cost, node = heapq.heappop(heap)
        if node == goal:
            used, at = set(), goal
            while at != start:
                at, entry = via[at]
                used.add(entry)
            return cost, used
        if cost > best[node]:
            continue
        for nxt, entry, step in arcs.get(node, ()):
            total = (cost[0] + step[0], cost[1] + step[1], cost[2] + step[2])
            if nxt not in best or total < best[nxt]:
                best[nxt], via[nxt] = total, (node, entry)
                heapq.heappush(heap, (total, nxt))
    return None


def _protect(layout: _Layout, k: int) -> set[int]:
    if k < 1:
        raise DisclosureError("the threshold k must be at least 1")
    hidden = _add_complements(layout, {e for e, value in enumerate(layout.values) if 0 < value < k})
    if hidden is None:
        # Unreachable if the cycle argument holds; hiding every non-zero figure is always safe, since the
        # table itself is a positive flow around cycles of its non-zero entries.
        hidden = {e for e, value in enumerate(layout.values) if value > 0}
    leaked = _recoverable(layout, hidden)
    if leaked:
        positions = sorted(layout.positions[e] for e in leaked)
        raise DisclosureError(f"suppression left recoverable figures at {positions}")
    return hidden


def _add_complements(
    layout: _Layout, primary: set[int], locked: frozenset[int] = frozenset(), only: set[int] | None = None
) -> set[int] | None:
    hidden = set(primary)
    while exposed := [e for e in sorted(hidden) if (only is None or e in only) and not _can_move(layout, hidden, e)]:
        for e in exposed:
            # An earlier complement in this pass may already have put e on a cycle.
            if _can_move(layout, hidden, e):
                continue
            extra = _cheapest_cycle(layout, hidden, e, locked)
            if not extra:
                return None
            hidden |= extra
    return hidden


def protect_table(cells: Sequence[Sequence[int]], *, k: int) -> Released:
    """Release a table with totals so that no count from 1 to k-1 is shown or can be worked out."""
    layout = _table_layout(cells)
    hidden = _protect(layout, k)
    n_rows, n_cols = len(cells), len(cells[0]) if cells else 0
    shown = [None if e in hidden else value for e, value in enumerate(layout.values)]
    margins = n_rows * n_cols
    return Released(
        cells=[shown[i * n_cols : (i + 1) * n_cols] for i in range(n_rows)],
        row_totals=shown[margins : margins + n_rows],
        col_totals=shown[margins + n_rows : margins + n_rows + n_cols],
        grand_total=shown[-1],
        suppressed=sorted(layout.positions[e] for e in hidden if e < margins),
        suppressed_rows=[i for i in range(n_rows) if margins + i in hidden],
        suppressed_cols=[j for j in range(n_cols) if margins + n_rows + j in hidden],
        grand_total_suppressed=len(shown) - 1 in hidden,
    )


def protect_series(values: Sequence[int], *, k: int) -> tuple[list[int | None], int | None]:
    """Release a series and its total so that no count from 1 to k-1 is shown or can be worked out."""
    layout = _series_layout(values)
    hidden = _protect(layout, k)
    shown = [None if e in hidden else value for e, value in enumerate(layout.values)]
    return shown[:-1], shown[-1]


@dataclass(frozen=True)
class Arc:
    """One published figure as an arc of a flow network: ``value`` flows from ``tail`` to ``head``.

    ``fixed`` is None for a figure being decided now, True for one already published as hidden and False
    for one already published as shown (frozen figures keep their pattern; new ones must fit around it).
    """

    value: int
    tail: object
    head: object
    total: bool = False
    fixed: bool | None = None


def protect_network(arcs: Sequence[Arc], *, k: int, balanced: set[object]) -> set[int]:
    """Indices of the arcs to hide so that, with the frozen ones, no count from 1 to k-1 can be worked out.

    Nodes outside ``balanced`` carry no equation (their other figures are not published): they are merged
    into one free node, which is exactly what a reader who cannot see those figures faces.
    """
    free = object()
    names: dict[object, int] = {}

    def node(n: object) -> int:
        return names.setdefault(n if n in balanced else free, len(names))

    values = tuple(a.value for a in arcs)
    _check_counts(values)
    tails = tuple(node(a.tail) for a in arcs)
    heads = tuple(node(a.head) for a in arcs)
    layout = _Layout(
        values=values,
        tails=tails,
        heads=heads,
        positions=tuple((0, i) for i in range(len(arcs))),
        margins=frozenset(i for i, a in enumerate(arcs) if a.total),
        balanced=tuple(names[n] for n in balanced if n in names),
    )
    if k < 1:
        raise DisclosureError("the threshold k must be at least 1")
    frozen_hidden = {i for i, a in enumerate(arcs) if a.fixed is True}
    locked = frozenset(i for i, a in enumerate(arcs) if a.fixed is False)
    fresh = [i for i, a in enumerate(arcs) if a.fixed is None]
    # Only small figures need to stay unknown: a hidden large figure a reader can work out (a quarter's
    # total hidden once, that its months' totals add up to) gives nothing away.
    sensitive = {i for i, v in enumerate(values) if 0 < v < k}
    primary = frozen_hidden | (sensitive & set(fresh))
    hidden = _add_complements(layout, primary, locked, only=sensitive)
    if hidden is None or _recoverable(layout, hidden) & sensitive:
        # Hiding every new non-zero figure adds no equation a reader did not already have.
        hidden = frozen_hidden | {i for i in fresh if values[i] > 0}
    leaked = _recoverable(layout, hidden) & sensitive
    if leaked:
        raise DisclosureError(f"figures already published leave {len(leaked)} recoverable")
    small_shown = [i for i in fresh if 0 < values[i] < k and i not in hidden]
    if small_shown:  # pragma: no cover - the primary set is always hidden
        raise DisclosureError("a small figure would be shown")
    return hidden


def pinned_sums(
    equations: Sequence[tuple[frozenset[int], int]], candidates: Sequence[frozenset[int]]
) -> list[tuple[frozenset[int], Fraction]]:
    """Which candidate sums of unknowns the published equations (each "these unknowns sum to v") determine.

    Exact Gauss-Jordan over the rationals. The cycle test protects each hidden figure on its own; this
    catches a *sum* of hidden figures pinned down by two nested tables (a year less its shown quarters).
    """
    pivots: dict[int, tuple[dict[int, Fraction], Fraction]] = {}
    for unknowns, value in equations:
        row, acc = _reduce({u: Fraction(1) for u in unknowns}, Fraction(value), pivots)
        if not row:
            continue
        p = min(row)
        scale = 1 / row[p]
        row, acc = {u: v * scale for u, v in row.items()}, acc * scale
        for q, (other, val) in list(pivots.items()):
            factor = other.get(p)
            if factor:
                _eliminate(other, row, p)
                pivots[q] = (other, val - factor * acc)
        pivots[p] = (row, acc)
    found = []
    for candidate in candidates:
        row, acc = _reduce({u: Fraction(1) for u in candidate}, Fraction(0), pivots)
        if not row:
            found.append((candidate, -acc))
    return found


def _reduce(
    row: dict[int, Fraction], acc: Fraction, pivots: dict[int, tuple[dict[int, Fraction], Fraction]]
) -> tuple[dict[int, Fraction], Fraction]:
    for p in [u for u in row if u in pivots]:
        factor = row.get(p)
        if factor:
            other, val = pivots[p]
            _eliminate(row, other, p)
            acc -= factor * val
    return row, acc


def find_recoverable(released: Released, original: Sequence[Sequence[int]]) -> list[Position]:
    """List every suppressed cell or total that a reader can work out exactly from the release."""
    layout = _table_layout(original)
    shown = [value for row in released.cells for value in row]
    shown += [*released.row_totals, *released.col_totals, released.grand_total]
    return _recoverable_positions(layout, shown)


def find_recoverable_series(released: tuple[Sequence[int | None], int | None], original: Sequence[int]) -> list[int]:
    """List every suppressed value (index len(original) is the total) a reader can work out exactly."""
    layout = _series_layout(original)
    shown = [*released[0], released[1]]
    return [j for _, j in _recoverable_positions(layout, shown)]


def _recoverable_positions(layout: _Layout, shown: Sequence[int | None]) -> list[Position]:
    if len(shown) != len(layout.values) or any(
        s is not None and s != v for s, v in zip(shown, layout.values, strict=True)
    ):
        raise DisclosureError("the release does not match the original table")
    hidden = {e for e, s in enumerate(shown) if s is None}
    return sorted(layout.positions[e] for e in _recoverable(layout, hidden))


def derived(value: T, *inputs: object) -> T | None:
    """Return value, or None when any released figure it was computed from is suppressed."""
    return None if any(i is None for i in inputs) else value


def suppress_rate(numerator: int | None, denominator: int | None, *, k: int) -> float | None:
    """Return numerator/denominator from released counts, or None if either is hidden, small or zero."""
    # Re-checking the threshold catches a caller who passed raw counts instead of released ones.
    if numerator is None or denominator is None or denominator == 0 or 0 < min(numerator, denominator) < k:
        return None
    return numerator / denominator


def protect_quantile(value: float | None, n: int | None, *, k: int) -> float | None:
    """Return a median or quantile over n observations, or None if n is suppressed, zero or below k."""
    # n is the released count of the cell the quantile describes: a quantile of a hidden cell is hidden.
    if value is None or n is None or n == 0 or n < k:
        return None
    return value


def add_integer_noise(values: Sequence[int], *, epsilon: float, sensitivity: int = 1) -> list[int]:
    """Add discrete Laplace noise (scale sensitivity/epsilon) to counts and clamp the results at zero.

    Order matters: noise first, then the clamp, then the k threshold, which the caller applies by passing
    the noisy counts to protect_table or protect_series (so suppression decisions see only noisy values).
    Derive totals from the noisy cells rather than noising them separately: that is free post-processing.
    OpenDP's sampler cannot be seeded; store the release so asking again returns the same numbers.
    """
    if not (math.isfinite(epsilon) and epsilon > 0) or sensitivity < 1:
        raise DisclosureError("epsilon must be positive and finite and sensitivity at least 1")
    _check_counts(values)
    try:
        import opendp.prelude as dp
    except ImportError as exc:
        raise DisclosureError(DP_EXTRA_MESSAGE) from exc
    dp.enable_features("contrib")
    space = dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64")
    scale = sensitivity / epsilon
    # Float rounding can put the proven loss a hair above epsilon; widen the noise a few ulps until it is not.
    for _ in range(64):
        measurement = dp.m.make_laplace(*space, scale=scale)
        if measurement.map(sensitivity) <= epsilon:
            return [max(0, int(v)) for v in measurement(list(values))]
        scale = math.nextafter(scale, math.inf)
    raise DisclosureError(f"no noise scale near {sensitivity / epsilon} keeps the loss within epsilon {epsilon}")
