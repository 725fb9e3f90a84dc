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


def measure(n: int, *, k: int = 5) -> dict[str, float]:
    from app.exports import records

    fine = demo_fine(n)
    started = time.perf_counter()
    plan = records.plan(fine, k=k)
    seconds = time.perf_counter() - started
    return {
        "contacts": n,
        "kept_share": plan.rows / n,
        "dropped": plan.dropped,
        "suppressed_values": plan.suppressed_values,
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
                f"k=5; {result['dropped']} rows dropped, {result['suppressed_values']} values blanked, "
                f"information loss {result['information_loss']:.3f}, search {result['seconds']:.2f} s "
                f"({result['generalisation']})"
            ),
        )
        outcome.details[f"records_sdc@{n}"] = result
