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


def release_all(session: Any, *, today: date, through: date | None = None) -> int:
    """Release every closed month from January of the data's first year through ``through`` (or last month)."""
    from app.stats import ledger

    month = (today - timedelta(days=dataset.DAYS)).replace(month=1, day=1)
    last = through or (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    released = {r.period for r in ledger.list_releases(session)}
    n = 0
    while month <= last:
        if f"{month.year:04d}-{month.month:02d}" not in released:
            ledger.release_month(session, month=month, actor="bench", today=today)
            n += 1
        month = (month + timedelta(days=32)).replace(day=1)
    return n


def release_install(install: dataset.Install) -> int:
    """Release every closed month of a (writable) install, as its analysts' first uses would have."""
    from app.crypto import service as crypto
    from app.crypto.keyring import forget_keyrings, get_keyring
    from app.db import make_engine, unit_of_work

    settings = install.settings()
    engine = make_engine(settings)
    try:
        with unit_of_work(engine) as session:
            crypto.bind(session, settings=settings, keyring=get_keyring(settings))
            return release_all(session, today=date.today())
    finally:
        engine.dispose()
        forget_keyrings()


def _time_joint(install: dataset.Install, *, repeats: int) -> dict[str, float]:
    """A quarter's last month (month + quarter table) and December (month + Q4 + the year), suppressed jointly.

    Every earlier month is released first (untimed); each timed release is rolled back to a savepoint.
    Then the analysts' summary over the last twelve released months, read from the ledger.
    """
    from app.crypto import service as crypto
    from app.crypto.keyring import forget_keyrings, get_keyring
    from app.db import make_engine, session_factory
    from app.stats import ledger, published

    settings = install.settings()
    engine = make_engine(settings)
    keyring = get_keyring(settings)
    make = session_factory(engine)
    today = date.today()
    first_year = (today - timedelta(days=dataset.DAYS)).year
    december = date(first_year, 12, 1)
    closed = today.month - 1  # the last quarter of this year that has ended
    quarter_end = date(today.year, closed // 3 * 3, 1) if closed >= 3 else None
    timings: dict[str, list[float]] = {"quarter": [], "year": [], "summary": []}
    try:
        with make() as session:
            crypto.bind(session, settings=settings, keyring=keyring)
            session.execute(ledger.StatsRelease.__table__.delete())
            release_all(session, today=today, through=december - timedelta(days=1))
            for _ in range(repeats):
                with session.begin_nested() as nested:
                    started = time.perf_counter()
                    written = ledger.release_month(session, month=december, actor="bench", today=today)
                    timings["year"].append((time.perf_counter() - started) * 1000)
                    assert [r.kind for r in written] == ["month", "quarter", "year"]
                    nested.rollback()
            if quarter_end is not None:
                release_all(session, today=today, through=quarter_end - timedelta(days=1))
                for _ in range(repeats):
                    with session.begin_nested() as nested:
                        started = time.perf_counter()
                        written = ledger.release_month(session, month=quarter_end, actor="bench", today=today)
                        timings["quarter"].append((time.perf_counter() - started) * 1000)
                        assert [r.kind for r in written] == ["month", "quarter"]
                        nested.rollback()
            release_all(session, today=today)
            last = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
            start = (last - timedelta(days=330)).replace(day=1)
            for _ in range(repeats):
                started = time.perf_counter()
                summary = published.summary(session, start=start, end=today, today=today)
                timings["summary"].append((time.perf_counter() - started) * 1000)
            months = len(summary.series)
            session.rollback()
    finally:
        engine.dispose()
        forget_keyrings()
    out = {name: statistics.median(values) for name, values in timings.items() if values}
    out["summary_months"] = months
    return out


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
    joint = _time_joint(install, repeats=repeats)
    figures = [
        ("quarter", "quarter's last month released", "< 5000", "once a quarter: the month and its quarter's table"),
        ("year", "December released with Q4 and the year", "< 10000", "once a year: the month, Q4 and the year"),
        ("summary", f"published summary, last {joint['summary_months']} released months", "< 50", "the ledger only"),
    ]
    for key, name, target, note in figures:
        if key in joint:  # no quarter has ended yet in January, February and March
            outcome.add(f"{backend}.{name} (median)", joint[key], "ms", target=target, note=note)
    outcome.details[f"{backend}.joint"] = joint


def run(ctx: Any, outcome: Outcome) -> None:
    _measure(ctx, outcome, ctx.install(), "sqlite")
    _measure_published(ctx, outcome, ctx.install(), "sqlite")
    if ctx.use_postgres:
        _measure(ctx, outcome, ctx.postgres(), "postgresql")
        _measure_published(ctx, outcome, ctx.postgres(), "postgresql")
    for size in getattr(ctx, "scale_sizes", []):
        if size != ctx.size:
            _measure(ctx, outcome, ctx.install(size), "sqlite", label=f"@{size}", targets=False)
