"""Intake throughput: ``wrk`` POSTing realistic contacts to ``helpline serve`` (one worker) on loopback.

SQLite, at each size of the run: Helpline beside its floors, all served at once and loaded in interleaved
rounds (each round in another order, the median reported), so a busy machine slows every load alike —
the plain app of ``bench/plainapp.py`` (the intake floor: one token query, one ORM insert, no protection),
Helpline with ``HELPLINE_BENCH_DISABLE_CRYPTO`` (the endpoint without encryption and blind indexing) and a
bare ``GET /api/v1/health`` (the HTTP stack). Then one caseworker alone (one connection): the latency a
person at the form sees. PostgreSQL: Helpline beside crypto-off and /health, one after the other.
"""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench import dataset, plainapp, server
from bench.report import Outcome
from tests.support.live_server import free_port

ROOT = Path(__file__).resolve().parent.parent
TARGET_VS_PLAIN = 1.0  # DESIGN.md: at least the plain app's throughput, every protection on
TARGET_CASEWORKER_P99_MS = 10
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
    if ctx.smoke:
        return (1, 1)
    return (1, 4) if ctx.quick else (3, 15)


def _scripts(ctx: Any, install: dataset.Install, tokens: list[str], *, work: Path | None = None) -> dict[str, Any]:
    """The wrk scripts: ``intake`` records each contact as the next caseworker of ``tokens`` in turn,
    ``intake_one`` as the first alone (one caseworker at the form), ``health`` a bare GET."""
    today = date.today()
    dates = ", ".join(f'"{today - timedelta(days=d)}"' for d in range(0, 30))
    work = work or install.root  # one directory per install: the scripts are written to files

    def quoted(some: list[str]) -> str:
        return ", ".join(f'"{t}"' for t in some)

    return {
        "intake": server.render(
            "intake.lua", work / "intake.lua", TOKENS=quoted(tokens), PATH="/api/v1/contacts", DATES=dates
        ),
        "intake_one": server.render(
            "intake.lua", work / "intake-one.lua", TOKENS=quoted(tokens[:1]), PATH="/api/v1/contacts", DATES=dates
        ),
        "health": server.render("get.lua", work / "health.lua", TOKEN="", PATH="/api/v1/health"),
    }


def _load(
    ctx: Any, install: dataset.Install, *, crypto_off: bool, script_name: str, workers: int = 1, connections: int = 4
) -> dict[str, Any]:
    warm, seconds = _durations(ctx)
    env = {"HELPLINE_BENCH_DISABLE_CRYPTO": "true" if crypto_off else "false"}
    with server.serving(install, workers=workers, **env) as live:
        scripts = _scripts(ctx, install, install.issue_tokens(dataset.OFFICE))
        script = scripts[script_name]
        server.wrk(live.base_url, script, seconds=warm, connections=connections)
        assert live.pid is not None
        database = ctx.pg.postmaster_pid() if install.database_url.startswith("postgresql") else None
        pids = [live.pid] + ([database] if database else [])
        before = [server.cpu_seconds(pid) for pid in pids]
        wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = server.wrk(live.base_url, script, seconds=seconds, connections=connections)
        wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        spent = [server.cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True)]
        n = max(result["requests"], 1)
        # CPU per request of the server (all its workers), the database server and wrk itself: with every
        # process on the same cores, cores / their sum bounds what any number of workers can reach here.
        result["server_cpu_ms"] = spent[0] * 1000 / n
        result["database_cpu_ms"] = sum(spent[1:]) * 1000 / n
        result["client_cpu_ms"] = (
            (wrk_after.ru_utime + wrk_after.ru_stime - wrk_before.ru_utime - wrk_before.ru_stime) * 1000 / n
        )
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
    target = None
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


ROUNDS = {True: 2, False: 5}  # quick, full
LOADS = ("plain app", "helpline", "helpline, crypto off", "health")


@contextlib.contextmanager
def _plain_server(db: Path) -> Iterator[tuple[str, int]]:
    """bench/plainapp.py under uvicorn, one worker, on a free loopback port; yields its base URL and pid."""
    port = free_port()
    env = {**os.environ, "HELPLINE_PLAIN_DB": str(db)}
    cmd = [sys.executable, "-m", "uvicorn", "bench.plainapp:create_app", "--factory", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the plain app did not start: {proc.stderr.read()[-800:] if proc.stderr else ''}")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def compare(ctx: Any, outcome: Outcome, size: int, *, label: str) -> dict[str, Any]:
    """Helpline's intake beside the plain app, crypto off and /health, in interleaved rounds; and one caseworker."""
    warm, seconds = _durations(ctx)
    helpline = ctx.sqlite_copy(f"intake-{size}", size)
    off = ctx.sqlite_copy(f"intake-off-{size}", size)
    plain_db = ctx.scratch(f"plain-{size}") / "plain.db"
    plain_token = plainapp.setup(str(plain_db), contacts=size)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in LOADS}
    with (
        server.serving(helpline) as live,
        server.serving(off, HELPLINE_BENCH_DISABLE_CRYPTO="true") as live_off,
        _plain_server(plain_db) as (plain_url, plain_pid),
    ):
        scripts = _scripts(ctx, helpline, helpline.issue_tokens(dataset.OFFICE))
        off_script = _scripts(ctx, off, off.issue_tokens(dataset.OFFICE))["intake"]
        plain_script = _scripts(ctx, off, [plain_token], work=plain_db.parent)["intake"]
        assert live.pid is not None and live_off.pid is not None
        loads = {
            "plain app": (plain_url, plain_script, plain_pid),
            "helpline": (live.base_url, scripts["intake"], live.pid),
            "helpline, crypto off": (live_off.base_url, off_script, live_off.pid),
            "health": (live.base_url, scripts["health"], live.pid),
        }
        for url, script, _pid in loads.values():
            server.wrk(url, script, seconds=warm, connections=4)
        for n in range(ROUNDS[bool(ctx.quick)]):
            # Interleaved, and each round in another order: a noisy neighbour slows every load alike.
            order = LOADS[n % len(LOADS) :] + LOADS[: n % len(LOADS)]
            for name in order:
                url, script, pid = loads[name]
                before, written = server.cpu_seconds(pid), server.written_bytes(pid)
                loop = server.event_loop_seconds(pid)
                result = server.wrk(url, script, seconds=seconds, connections=4)
                # The server's own CPU per request: what a request costs, whatever else the machine runs.
                requests = max(result["requests"], 1)
                result["server_cpu_ms"] = (server.cpu_seconds(pid) - before) * 1000 / requests
                result["server_written_kb"] = (server.written_bytes(pid) - written) / 1024 / requests
                result["event_loop_cpu_ms"] = (server.event_loop_seconds(pid) - loop) * 1000 / requests
                result["threads_cpu_ms"] = result["server_cpu_ms"] - result["event_loop_cpu_ms"]
                rounds[name].append(result)
        # One caseworker at a time: the latency a person at the intake form sees.
        alone = server.wrk(live.base_url, scripts["intake_one"], seconds=seconds, connections=1)
    prefix = f"sqlite{label}"
    rps = {name: _median([r["rps"] for r in rounds[name]]) for name in LOADS}
    mine, plain = rps["helpline"], rps["plain app"]
    outcome.add(f"{prefix}.intake contacts/s (encrypted)", mine, "req/s", floor=plain, note="median of the rounds")
    outcome.add(
        f"{prefix}.intake vs the plain app",
        mine / plain if plain else float("nan"),
        "x",
        target=f">= {TARGET_VS_PLAIN}",
        note="bench/plainapp.py: one token query, one ORM insert, no protection; same run, interleaved",
    )
    for p in ("p50", "p95", "p99"):
        floor = _median([r[f"{p}_ms"] for r in rounds["plain app"]])
        outcome.add(
            f"{prefix}.intake latency {p}", _median([r[f"{p}_ms"] for r in rounds["helpline"]]), "ms", floor=floor
        )
    errors = sum(r["errors"] for name in ("helpline", "helpline, crypto off", "plain app") for r in rounds[name])
    outcome.add(f"{prefix}.intake errors (non-2xx or socket)", errors + alone["errors"], "requests", target="<= 0")
    # What a request costs the server, against the plain app's: less sensitive to the load than contacts/s.
    for key, figure, unit, note in (
        ("server_cpu_ms", "server CPU", "ms", "user + system time of the server process over a load / its requests"),
        (
            "event_loop_cpu_ms",
            "event-loop CPU",
            "ms",
            "the server's main thread: uvicorn, Starlette, FastAPI, the middleware, the answer",
        ),
        (
            "threads_cpu_ms",
            "request-thread CPU",
            "ms",
            "the server's other threads: the route's threadpool call (token, service, commit, SQLite) and the "
            "WAL checkpointer",
        ),
        (
            "server_written_kb",
            "written",
            "KB",
            "bytes the server wrote (WAL, checkpoints, logs) over a load / its requests",
        ),
    ):
        per = {name: _median([r[key] for r in rounds[name]]) for name in ("helpline", "plain app")}
        outcome.add(f"{prefix}.intake {figure} per request", per["helpline"], unit, floor=per["plain app"], note=note)
    outcome.add(f"{prefix}.floor: plain app contacts/s", plain, "req/s")
    outcome.add(f"{prefix}.floor: intake contacts/s, crypto off", rps["helpline, crypto off"], "req/s")
    outcome.add(f"{prefix}.floor: GET /health", rps["health"], "req/s")
    off = rps["helpline, crypto off"]
    outcome.add(
        f"{prefix}.encryption overhead vs floor",
        (off - mine) / off * 100 if off else float("nan"),
        "%",
        target=f"< {TARGET_OVERHEAD_PCT}" if not label else None,
        note="throughput lost against the same endpoint with encryption and blind indexing off",
    )
    for p in ("p50", "p95", "p99"):
        target = f"< {TARGET_CASEWORKER_P99_MS}" if p == "p99" else None
        outcome.add(f"{prefix}.one caseworker {p}", alone[f"{p}_ms"], "ms", target=target, note="wrk, 1 connection")
    return {"rounds": rounds, "one_caseworker": alone, "medians": rps}


def measure_workers(ctx: Any, outcome: Outcome, install: dataset.Install, one: dict[str, Any]) -> dict[str, Any]:
    """The scale-out deployment: 4 workers, 8 connections, every protection and the lock order on."""
    many = _load(ctx, install, crypto_off=False, script_name="intake", workers=4, connections=8)
    one_rps = one["encrypted"]["rps"]
    outcome.add("postgresql.4 workers, 8 connections: intake contacts/s", many["rps"], "req/s", floor=one_rps)
    outcome.add("postgresql.4 workers, 8 connections: intake latency p95", many["p95_ms"], "ms")
    outcome.add(
        "postgresql.4 workers, 8 connections: intake errors (non-2xx or socket)",
        many["errors"],
        "requests",
        target="<= 0",
    )
    outcome.add(
        "postgresql.4 workers vs 1 worker",
        many["rps"] / one_rps if one_rps else float("nan"),
        "x",
        target=">= 2.5",
        note="the machine has 2 cores, shared: the figure is noisy and bounded by the cores, not the locks",
    )
    one_req = one["encrypted"]
    per_request = one_req["server_cpu_ms"] + one_req["database_cpu_ms"] + one_req["client_cpu_ms"]
    outcome.add(
        "postgresql.1 worker: CPU per request (server + PostgreSQL + wrk)",
        per_request,
        "ms",
        note=f"server {one_req['server_cpu_ms']:.2f}, PostgreSQL {one_req['database_cpu_ms']:.2f}, "
        f"wrk {one_req['client_cpu_ms']:.2f}",
    )
    cores = os.cpu_count() or 1
    if per_request > 0 and one_rps:
        outcome.add(
            "postgresql.most any number of workers could reach here vs 1 worker",
            cores * 1000 / per_request / one_rps,
            "x",
            note=f"{cores} cores / the CPU one request costs, against the one-worker figure: the ceiling of the "
            "4-worker ratio on this machine, before any lock is taken",
        )
    return many


def run(ctx: Any, outcome: Outcome) -> None:
    sizes = [s for s in getattr(ctx, "scale_sizes", [])] or [ctx.size]
    for size in sizes:
        label = "" if size == ctx.size else f"@{size}"
        outcome.details[f"sqlite{label}"] = compare(ctx, outcome, size, label=label)
    # Flat with the data: each size against the smallest one measured in the same run.
    smallest = min(sizes)
    base = next(f.value for f in outcome.figures if f.name == _rps_name(smallest, ctx))
    for size in sizes:
        if size != smallest:
            value = next(f.value for f in outcome.figures if f.name == _rps_name(size, ctx))
            outcome.add(
                f"sqlite@{size}.intake vs {smallest:,} contacts",
                value / base if base else float("nan"),
                "x",
                target=">= 0.8",
                note="within 20% as the data grows, no manual step",
            )
    if ctx.use_postgres:
        pg = ctx.postgres_copy("intake_pg")
        outcome.details["postgresql"] = measure_backend(ctx, outcome, pg, "postgresql")
        outcome.details["postgresql.4 workers"] = measure_workers(ctx, outcome, pg, outcome.details["postgresql"])


def _rps_name(size: int, ctx: Any) -> str:
    return f"sqlite{'' if size == ctx.size else f'@{size}'}.intake contacts/s (encrypted)"
