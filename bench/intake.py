"""Intake throughput: ``wrk`` POSTing realistic contacts to ``helpline serve`` (one worker) on loopback.

For each backend, in the same run and on the same copy of the data set: a bare ``GET /api/v1/health``
(the floor of the HTTP stack), ``POST /api/v1/contacts`` with encryption and blind indexing switched off
by the benchmark-only ``HELPLINE_BENCH_DISABLE_CRYPTO`` (the floor of the endpoint), and the real thing.
The encryption overhead is the real endpoint's throughput lost against its floor.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from bench import dataset, server
from bench.report import Outcome

TARGET_RPS = 1000
TARGET_OVERHEAD_PCT = 10


def requires() -> str | None:
    if not server.have_wrk():
        return "wrk is not installed (scripts/ensure-system-deps installs it)"
    from app.contacts import api

    if not any(
        getattr(r, "path", "") == "/contacts" and "POST" in getattr(r, "methods", ()) for r in api.router.routes
    ):
        return "POST /api/v1/contacts is not in app/contacts/api.py yet"
    return None


def _durations(ctx: Any) -> tuple[int, int]:
    """(warm-up, measured) seconds per load."""
    return (1, 4) if ctx.quick else (3, 15)


def _scripts(ctx: Any, install: dataset.Install, token: str) -> dict[str, Any]:
    today = date.today()
    dates = ", ".join(f'"{today - timedelta(days=d)}"' for d in range(0, 30))
    work = install.root
    return {
        "intake": server.render("intake.lua", work / "intake.lua", TOKEN=token, PATH="/api/v1/contacts", DATES=dates),
        "health": server.render("get.lua", work / "health.lua", TOKEN="", PATH="/api/v1/health"),
    }


def _load(ctx: Any, install: dataset.Install, *, crypto_off: bool, script_name: str) -> dict[str, Any]:
    warm, seconds = _durations(ctx)
    env = {"HELPLINE_BENCH_DISABLE_CRYPTO": "true" if crypto_off else "false"}
    with server.serving(install, **env) as live:
        token = install.issue_token(dataset.CASEWORKER)
        scripts = _scripts(ctx, install, token)
        script = scripts[script_name]
        server.wrk(live.base_url, script, seconds=warm, connections=4)
        result = server.wrk(live.base_url, script, seconds=seconds, connections=4)
        result["server_rss_mb"] = server.server_rss(live) / 2**20
    return result


def measure_backend(
    ctx: Any, outcome: Outcome, install: dataset.Install, backend: str, *, with_floors: bool = True, label: str = ""
) -> dict[str, Any]:
    """Health, floor and encrypted loads on one install; figures named ``{backend}{label}.…``."""
    prefix = f"{backend}{label}"
    results: dict[str, Any] = {}
    if with_floors:
        results["health"] = _load(ctx, install, crypto_off=False, script_name="health")
        results["floor"] = _load(ctx, install, crypto_off=True, script_name="intake")
    results["encrypted"] = _load(ctx, install, crypto_off=False, script_name="intake")
    enc = results["encrypted"]
    target = f">= {TARGET_RPS}" if backend == "sqlite" and not label else None
    floor_rps = results["floor"]["rps"] if with_floors else None
    outcome.add(f"{prefix}.intake contacts/s (encrypted)", enc["rps"], "req/s", target=target, floor=floor_rps)
    for p in ("p50", "p95", "p99"):
        floor = results["floor"][f"{p}_ms"] if with_floors else None
        outcome.add(f"{prefix}.intake latency {p}", enc[f"{p}_ms"], "ms", floor=floor)
    outcome.add(f"{prefix}.intake errors (non-2xx or socket)", enc["errors"], "requests", target="<= 0")
    if with_floors:
        floor = results["floor"]
        overhead = (floor["rps"] - enc["rps"]) / floor["rps"] * 100 if floor["rps"] else float("nan")
        outcome.add(f"{prefix}.floor: intake contacts/s, crypto off", floor["rps"], "req/s")
        outcome.add(f"{prefix}.floor: intake errors", floor["errors"], "requests", target="<= 0")
        outcome.add(f"{prefix}.floor: GET /health", results["health"]["rps"], "req/s")
        outcome.add(f"{prefix}.floor: GET /health p95", results["health"]["p95_ms"], "ms")
        outcome.add(
            f"{prefix}.encryption overhead vs floor",
            overhead,
            "%",
            target=f"< {TARGET_OVERHEAD_PCT}" if backend == "sqlite" else None,
            note="throughput lost against the same endpoint with encryption and blind indexing off",
        )
    return results


def run(ctx: Any, outcome: Outcome) -> None:
    copy = ctx.sqlite_copy("intake-sqlite")
    outcome.details["sqlite"] = measure_backend(ctx, outcome, copy, "sqlite")
    if ctx.use_postgres:
        pg = ctx.postgres_copy("intake_pg")
        outcome.details["postgresql"] = measure_backend(ctx, outcome, pg, "postgresql")
    # How intake cost grows with the data: the encrypted endpoint at the smaller scale points.
    for size in getattr(ctx, "scale_sizes", []):
        if size == ctx.size:
            continue
        small = ctx.sqlite_copy(f"intake-{size}", size)
        outcome.details[f"sqlite@{size}"] = measure_backend(
            ctx, outcome, small, "sqlite", with_floors=False, label=f"@{size}"
        )
