"""The statistics summary over the whole data set and over the last three months, SQLite and PostgreSQL.

Calls ``app.stats.service.summary`` in-process (the work behind ``GET /api/v1/stats/summary`` for a
coordinator: exact, from the counters), each call in a fresh session, and reports the median of repeated
runs after a warm-up. Then the published side: the time to freeze last month's release (read from the
rows, suppressed jointly with its year, written), and the analysts' summary read back from the ledger; the
release is rolled back afterwards so the data set stays as it was.
"""

from __future__ import annotations

import statistics
import time
from datetime import date, timedelta
from typing import Any

from bench import dataset
from bench.report import Outcome

TARGET_FULL_MS = 50
TARGET_RECENT_MS = 10


def requires() -> str | None:
    try:
        from app.stats import service
    except ImportError:
        return "app/stats/service.py is not there yet"
    return None if hasattr(service, "summary") else "app.stats.service.summary is not there yet"


def _time_summary(install: dataset.Install, *, start: date, end: date, interval: str, repeats: int) -> dict[str, float]:
    from app.crypto import service as crypto
    from app.crypto.keyring import forget_keyrings, get_keyring
    from app.db import make_engine, session_factory
    from app.stats import service as stats_service

    settings = install.settings()
    engine = make_engine(settings)
    keyring = get_keyring(settings)
    make = session_factory(engine)
    timings = []
    periods = 0
    try:
        for i in range(repeats + 3):  # three warm-up calls fill the caches a running server would have
            with make() as session:
                crypto.bind(session, settings=settings, keyring=keyring)
                started = time.perf_counter()
                result = stats_service.summary(session, start=start, end=end, interval=interval)
                elapsed = time.perf_counter() - started
                session.rollback()
            if i >= 3:
                timings.append(elapsed * 1000)
            periods = len(result.series)
    finally:
        engine.dispose()
        forget_keyrings()
    return {
        "median_ms": statistics.median(timings),
        "p95_ms": sorted(timings)[int(len(timings) * 0.95) - 1],
        "periods": periods,
    }


def _measure(
    ctx: Any, outcome: Outcome, install: dataset.Install, backend: str, *, label: str = "", targets: bool = True
) -> None:
    today = date.today()
    repeats = 15 if ctx.quick else 50
    cases = [
        ("full range, by month", today - timedelta(days=dataset.DAYS), "month", TARGET_FULL_MS),
        ("full range, by week", today - timedelta(days=dataset.DAYS), "week", TARGET_FULL_MS),
        ("last 3 months, by month", today - timedelta(days=91), "month", TARGET_RECENT_MS),
        ("last 3 months, by week", today - timedelta(days=91), "week", TARGET_RECENT_MS),
    ]
    for name, start, interval, target in cases:
        result = _time_summary(install, start=start, end=today, interval=interval, repeats=repeats)
        outcome.add(
            f"{backend}{label}.summary {name} (median)",
            result["median_ms"],
            "ms",
            target=f"< {target}" if targets else None,
            note=f"{result['periods']} periods; p95 {result['p95_ms']:.1f} ms over {repeats} runs",
        )
        outcome.details[f"{backend}{label}.{name}"] = result


def _time_release(install: dataset.Install, *, repeats: int) -> dict[str, float]:
    from app.crypto import service as crypto
    from app.crypto.keyring import forget_keyrings, get_keyring
    from app.db import make_engine, session_factory
    from app.stats import ledger, published

    settings = install.settings()
    engine = make_engine(settings)
    keyring = get_keyring(settings)
    make = session_factory(engine)
    today = date.today()
    month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    builds, reads = [], []
    try:
        for _ in range(repeats):
            with make() as session:
                crypto.bind(session, settings=settings, keyring=keyring)
                session.execute(ledger.StatsRelease.__table__.delete())
                started = time.perf_counter()
                ledger.release_month(session, month=month, actor="bench", today=today)
                builds.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                published.summary(session, start=month, end=today, today=today)
                reads.append((time.perf_counter() - started) * 1000)
                session.rollback()
    finally:
        engine.dispose()
        forget_keyrings()
    return {"release_ms": statistics.median(builds), "published_summary_ms": statistics.median(reads)}


def _measure_published(ctx: Any, outcome: Outcome, install: dataset.Install, backend: str) -> None:
    repeats = 3 if ctx.quick else 7
    result = _time_release(install, repeats=repeats)
    outcome.add(
        f"{backend}.monthly release built (median)",
        result["release_ms"],
        "ms",
        target="< 1000",
        note=f"last month, read from the rows, suppressed jointly with its year; {repeats} runs",
    )
    outcome.add(
        f"{backend}.published summary from the ledger (median)",
        result["published_summary_ms"],
        "ms",
        target="< 20",
        note="the analysts' view of last month (the ledger's JSON, no record or counter read)",
    )
    outcome.details[f"{backend}.published"] = result


def run(ctx: Any, outcome: Outcome) -> None:
    _measure(ctx, outcome, ctx.install(), "sqlite")
    _measure_published(ctx, outcome, ctx.install(), "sqlite")
    if ctx.use_postgres:
        _measure(ctx, outcome, ctx.postgres(), "postgresql")
        _measure_published(ctx, outcome, ctx.postgres(), "postgresql")
    for size in getattr(ctx, "scale_sizes", []):
        if size != ctx.size:
            _measure(ctx, outcome, ctx.install(size), "sqlite", label=f"@{size}", targets=False)
