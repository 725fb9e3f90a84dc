"""Joint suppression of one year's released tables, and the periods they cover (pure: no database).

Per measure, the months, quarters and the year itself form one flow network (see ``disclosure``): a new
table is suppressed with every frozen table of its year fixed. Two tests must both pass: every small hidden
figure stays on a movable cycle, and no run of months, for one region or for all, adds up to a count from
1 to k-1 (solved exactly over month x region unknowns). Where the second fails the new table hides more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from app.errors import Invalid
from app.stats import counters as c
from app.stats import disclosure

# --- periods -----------------------------------------------------------------------------------------


def month_label(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def parse_month(text: str) -> date:
    """A month written YYYY-MM, as its first day (422 otherwise)."""
    try:
        year, month = text.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError
        return date(int(year), int(month), 1)
    except ValueError:
        raise Invalid.field("month", "must be a month written as YYYY-MM") from None


def quarter(month: int) -> int:
    return (month - 1) // 3 + 1


def months_of(period: str) -> list[date]:
    if "-Q" in period:
        year, q = int(period[:4]), int(period[-1])
        return [date(year, 3 * (q - 1) + m, 1) for m in (1, 2, 3)]
    if len(period) == 4:
        return [date(int(period), m, 1) for m in range(1, 13)]
    return [parse_month(period)]


def span(period: str) -> tuple[date, date]:
    months = months_of(period)
    return months[0], c.next_period(c.MONTH, months[-1]) - timedelta(days=1)


# --- joint suppression over a year's tables (pure) -----------------------------------------------------


@dataclass
class Table:
    """One measure's figures in one release: counts by region and the total, and which are hidden."""

    cells: dict[str, int]
    hidden: set[str] | None = None  # region names, "" for the total; None while being decided

    @property
    def total(self) -> int:
        return sum(self.cells.values())


TOTAL = ""


def _node_layout(period: str) -> tuple[str, int]:
    if "-Q" in period:
        return "quarter", int(period[-1])
    if len(period) == 4:
        return "year", 0
    return "month", int(period[5:7])


def suppress_jointly(year: dict[str, Table], *, regions: Sequence[str], k: int) -> set[str]:
    """The figures to hide in the one table of ``year`` not yet decided, given all the frozen ones.

    ``year`` maps a period of one year ("2026-03", "2026-Q1", "2026") to that period's table of one measure.
    Two tests must both pass: every hidden figure stays on a movable cycle (``protect_network``), and no run
    of months, for one region or for all, adds up to a small count (``pinned_sums``). Where the second
    fails, the new table hides the figure that gave it away and the network is protected again.
    """
    new = next(p for p, t in year.items() if t.hidden is None)
    forced: set[str] = set()
    for _ in range(len(regions) + 2):
        hidden = _protect_network(year, new, forced, regions=regions, k=k)
        leaks = _small_runs(year, new, hidden, regions=regions, k=k)
        if not leaks:
            return hidden
        more = {TOTAL if group is None else group for group in leaks} - forced
        if not more:
            break
        forced |= more
    # Hiding every non-zero figure of the new table adds no equation: what was safe before stays safe.
    table = year[new]
    return {r for r, v in table.cells.items() if v} | ({TOTAL} if table.total else set())


def _protect_network(year: dict[str, Table], new: str, forced: set[str], *, regions: Sequence[str], k: int) -> set[str]:
    arcs: list[disclosure.Arc] = []
    names: list[tuple[str, str]] = []
    balanced: set[object] = set()
    for period, table in year.items():
        kind, i = _node_layout(period)
        cell_ends: list[tuple[object, object]]
        total_ends: tuple[object, object]
        if kind == "month":
            q = quarter(i)
            cell_ends = [(("row", i), ("col", q, r)) for r in regions]
            total_ends = (("qtot", q), ("row", i))
            balanced.add(("row", i))
        elif kind == "quarter":
            cell_ends = [(("col", i, r), ("year", r)) for r in regions]
            total_ends = ("tc", ("qtot", i))
            balanced |= {("qtot", i), *(("col", i, r) for r in regions)}
        else:
            cell_ends = [(("year", r), "tr") for r in regions]
            total_ends = ("tr", "tc")
            balanced |= {"tr", "tc", *(("year", r) for r in regions)}
        for name, (tail, head), value in [
            *((r, ends, table.cells.get(r, 0)) for r, ends in zip(regions, cell_ends, strict=True)),
            (TOTAL, total_ends, table.total),
        ]:
            # The new table's figures are decided now (unless forced hidden); the others are frozen.
            fixed: bool | None = name in (table.hidden or set())
            if period == new:
                fixed = True if name in forced and value else None
            arcs.append(disclosure.Arc(value, tail, head, total=name == TOTAL, fixed=fixed))
            names.append((period, name))
    hidden = disclosure.protect_network(arcs, k=k, balanced=balanced)
    return {names[e][1] for e in hidden if names[e][0] == new}


def _small_runs(
    year: dict[str, Table], new: str, new_hidden: set[str], *, regions: Sequence[str], k: int
) -> set[str | None]:
    """Regions (None: all regions) for which some run of months adds up to a count from 1 to k-1."""
    unknown = {(m, r): n for n, (m, r) in enumerate((m, r) for m in range(1, 13) for r in regions)}
    equations: list[tuple[frozenset[int], int]] = []
    for period, table in year.items():
        hidden = new_hidden if period == new else (table.hidden or set())
        months = [d.month for d in months_of(period)]
        for r in regions:
            if r not in hidden:
                equations.append((frozenset(unknown[(m, r)] for m in months), table.cells.get(r, 0)))
        if TOTAL not in hidden:
            equations.append((frozenset(unknown[(m, r)] for m in months for r in regions), table.total))
    groups: list[tuple[str | None, list[str]]] = [(r, [r]) for r in regions] + [(None, list(regions))]
    candidates = {}
    for group, members in groups:
        for a in range(1, 13):
            for b in range(a, 13):
                candidates[frozenset(unknown[(m, r)] for m in range(a, b + 1) for r in members)] = group
    pinned = disclosure.pinned_sums(equations, list(candidates))
    return {candidates[c] for c, value in pinned if 0 < value < k}
