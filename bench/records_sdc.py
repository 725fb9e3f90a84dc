"""The record-level file's disclosure control on demo-like data: rows kept, values blanked, information lost.

Counts are drawn in memory with the demo generator's own proportions (regions, channels, risks, case odds,
where cases end and how long each step takes), so the search itself is measured at 500, 10,000 and
1,000,000 contacts without writing a million rows first. ``helpline export records`` runs the same
``records.plan`` on counts read from the database.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import date, timedelta
from typing import Any

from bench.report import Outcome


def requires() -> str | None:
    return None


SIZES_QUICK = (500, 10_000)
SIZES_FULL = (500, 10_000, 1_000_000)
TODAY = date(2026, 12, 1)


def demo_fine(n: int, *, seed: int = 1, today: date = TODAY) -> Counter[Any]:
    """Month-level quasi-identifier counts of ``n`` contacts drawn like ``helpline demo-data`` draws them."""
    from app import demo

    rng = random.Random(seed)
    regions = tuple(demo.REGION_WEIGHTS)
    gen = demo._Generator(rng, today, regions)
    counts: Counter[Any] = Counter()
    for _ in range(n):
        data = gen.contact()
        status = "no_case"
        if rng.random() < demo.CASE_ODDS[data.risk.value]:
            status, day = "new", data.received_on + timedelta(days=rng.randint(0, 3))
            for step in gen.path():
                day = gen.step_day(step, day)
                if day > today:
                    break
                status = step
        d = data.received_on
        counts[((d.year, d.month), data.region, data.channel.value, data.risk.value, status)] += 1
    return counts


MEASURES = ("contacts", "cases_opened")


def month_cells(fine: Counter[Any]) -> dict[str, dict[tuple[int, int], Counter[str]]]:
    """Contacts and cases by received month and region (a case counted in its contact's month)."""
    cells: dict[str, dict[tuple[int, int], Counter[str]]] = {m: {} for m in MEASURES}
    for (month, region, _, _, status), n in fine.items():
        cells["contacts"].setdefault(month, Counter())[region] += n
        if status != "no_case":
            cells["cases_opened"].setdefault(month, Counter())[region] += n
    return cells


def released(fine: Counter[Any], *, today: date = TODAY, k: int = 5, regions: tuple[str, ...] = ()) -> dict[str, Any]:
    """The tables the ledger would have frozen for every closed month from the first with data.

    Per measure and year, months in order, each quarter after its third month and the year after December,
    each suppressed jointly with the year's frozen tables (``app.stats.joint``, as ``ledger.release_month``
    does). Returns {period: {measure: joint.Table}}.
    """
    from app.stats import joint

    cells = month_cells(fine)
    names = sorted({r for by in cells["contacts"].values() for r in by} | set(regions))
    months = sorted(cells["contacts"])
    if not months:
        return {}
    out: dict[str, dict[str, Any]] = {}
    year_tables: dict[str, dict[str, Any]] = {m: {} for m in MEASURES}
    y, mo = months[0]
    while date(y, mo, 1) < today.replace(day=1):
        if mo == 1:
            year_tables = {m: {} for m in MEASURES}
        label = f"{y:04d}-{mo:02d}"
        order = [(label, [label])]
        if mo % 3 == 0:
            order.append((f"{y:04d}-Q{mo // 3}", [f"{y:04d}-{mo - i:02d}" for i in (2, 1, 0)]))
        if mo == 12:
            order.append((f"{y:04d}", [f"{y:04d}-Q{q}" for q in (1, 2, 3, 4)]))
        for period, parts in order:
            for m in MEASURES:
                year = year_tables[m]
                if period == label:
                    by = cells[m].get((y, mo), Counter())
                    table = joint.Table(cells={r: by.get(r, 0) for r in names})
                elif all(p in year for p in parts):
                    table = joint.Table(cells={r: sum(year[p].cells[r] for p in parts) for r in names})
                else:
                    continue
                year[period] = table
                table.hidden = joint.suppress_jointly(year, regions=names, k=k)
                out.setdefault(period, {})[m] = table
        y, mo = (y + 1, 1) if mo == 12 else (y, mo + 1)
    return out


def published_of(tables: dict[str, Any]) -> Any:
    """``records.Published`` from simulated releases: what they show, as the ledger would publish it."""
    from app.exports import records
    from app.stats import joint

    figures = {}
    for period, by_measure in tables.items():
        figures[period] = [
            (
                {r: None if r in (t.hidden or ()) else v for r, v in t.cells.items()},
                None if joint.TOTAL in (t.hidden or ()) else t.total,
            )
            for t in (by_measure[m] for m in MEASURES)
        ]
    return records.Published.of(figures)


def measure(n: int, *, k: int = 5) -> dict[str, float]:
    from app import demo
    from app.exports import records

    fine = demo_fine(n)
    started = time.perf_counter()
    published = published_of(released(fine, k=k, regions=tuple(demo.REGION_WEIGHTS)))
    releases_seconds = time.perf_counter() - started
    started = time.perf_counter()
    plan = records.plan(fine, k=k, published=published)
    seconds = time.perf_counter() - started
    return {
        "contacts": n,
        "kept_share": plan.rows / n,
        "dropped": plan.dropped,
        "left_out": plan.left_out,
        "suppressed_values": plan.suppressed_values,
        "withheld_values": plan.withheld_values,
        "releases_seconds": releases_seconds,
        "information_loss": plan.information_loss,
        "seconds": seconds,
        "generalisation": plan.name,  # type: ignore[dict-item]
    }


def run(ctx: Any, outcome: Outcome) -> None:
    for n in SIZES_QUICK if ctx.quick else SIZES_FULL:
        result = measure(n)
        target = {500: ">= 0.80", 10_000: ">= 0.95"}.get(n)
        outcome.add(
            f"records.kept share @{n:,}",
            result["kept_share"],
            "share of rows",
            target=target,
            note=(
                f"k=5, beside the releases of every closed month; {result['dropped']} rows dropped, "
                f"{result['left_out']} left out (unreleased months, hidden period totals), "
                f"{result['suppressed_values']} values blanked, {result['withheld_values']} regions withheld, "
                f"information loss {result['information_loss']:.3f}, search {result['seconds']:.2f} s "
                f"({result['generalisation']})"
            ),
        )
        outcome.details[f"records_sdc@{n}"] = result
