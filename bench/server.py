"""A ``helpline serve`` (one worker) on a bench install, and a ``wrk`` load against it."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from bench.dataset import Install
from tests.support.live_server import LiveServer

LUA = Path(__file__).resolve().parent / "lua"


@contextlib.contextmanager
def serving(install: Install, *, workers: int = 1, **env: str) -> Iterator[LiveServer]:
    """The install served on a free loopback port until the block ends (graceful stop)."""
    extra = {k: v for k, v in install.env().items() if k.startswith("HELPLINE_")}
    extra.update(env)
    live = LiveServer(install.root, database_url=install.database_url, env=extra, init=False, workers=workers)
    live.start()
    try:
        yield live
    finally:
        live.close()


def server_rss(live: LiveServer) -> int:
    """Resident memory of the server process and its children, in bytes."""
    assert live.pid is not None
    proc = psutil.Process(live.pid)
    return int(sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its children (a server's workers)."""
    proc = psutil.Process(pid)
    return float(sum(sum(p.cpu_times()[:2]) for p in [proc, *proc.children(recursive=True)]))


def event_loop_seconds(pid: int) -> float:
    """CPU seconds so far of a one-process server's main thread: the event loop (uvicorn, Starlette, the
    middleware, the answer). The rest of the process's time is its other threads: the threadpool's calls
    (threads that have exited included, which a per-thread listing would miss)."""
    return float(sum(t.user_time + t.system_time for t in psutil.Process(pid).threads() if t.id == pid))


def written_bytes(pid: int) -> int:
    """Bytes a process and its children have handed to ``write`` so far (the database's WAL, its
    checkpoints and the logs): what a request costs the disk, however busy the machine is."""
    proc = psutil.Process(pid)
    return int(sum(p.io_counters().write_chars for p in [proc, *proc.children(recursive=True)]))


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def render(script: str, dest: Path, **values: str) -> Path:
    text = (LUA / script).read_text("utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    dest.write_text(text, "utf-8")
    return dest


def wrk(url: str, script: Path, *, seconds: int, connections: int, threads: int = 1) -> dict[str, Any]:
    """Run wrk and return its figures: requests/s, latency percentiles in ms, errors."""
    proc = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-800:]} {proc.stderr[-800:]}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    seconds_run = raw["duration_us"] / 1e6
    socket_errors = raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeout_errors"]
    return {
        "requests": raw["requests"],
        "seconds": seconds_run,
        "rps": raw["requests"] / seconds_run if seconds_run else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": raw["status_errors"] + socket_errors,
        "status_errors": raw["status_errors"],
        "socket_errors": socket_errors,
        "connections": connections,
    }
