"""The record-level export end to end: through the CLI (a subprocess) and through the API (streamed).

CLI: ``helpline export records --out FILE``; rows/s over the whole command and its peak RSS from
``wait4``. API: ``GET /api/v1/exports/records.csv`` streamed with httpx from a live server; rows/s and the
server's peak RSS (sampled) against its RSS before the download.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import psutil

from bench import dataset, server
from bench.report import Outcome

TARGET_ROWS_PER_S = 300_000
TARGET_RSS_MB = 100


def requires() -> str | None:
    try:
        from app.exports import api, service
    except ImportError:
        return "app/exports/service.py is not there yet"
    if not hasattr(service, "records_export"):
        return "app.exports.service.records_export is not there yet"
    if not any(getattr(r, "path", "").endswith("/records.csv") for r in api.router.routes):
        return "GET /api/v1/exports/records.csv is not there yet"
    return None


def _data_rows(path: Any) -> int:
    rows = -1  # the CSV header line
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith("#"):
                rows += 1
    return max(rows, 0)


# Peak RSS is read by a small go-between: a child forked straight from this (large) benchmark process
# starts its high-water mark at our size, and Linux keeps that mark across exec, so wait4 on it would
# report our memory, not the command's. The go-between is small once it has exec'd python, and the
# command it forks inherits only that.
_PEAK_RSS_WRAPPER = """
import os, sys
out, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.execv(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
with open(out, "w") as fh:
    fh.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _command(install: dataset.Install, *args: str) -> tuple[float, float]:
    """Run ``helpline ARGS``; (wall seconds, peak RSS in MB) of that one process, from wait4."""
    log = install.root / "cli-stderr.log"  # a file, not a pipe: the progress bar must never block on it
    peak_file = install.root / "cli-peak-rss.txt"
    with log.open("ab") as err:
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _PEAK_RSS_WRAPPER, str(peak_file), sys.executable, "-m", "app", *args],
            env=install.env(),
            cwd=install.root,
            stdout=subprocess.DEVNULL,
            stderr=err,
            check=False,
        )
        seconds = time.perf_counter() - started
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-500:]
        raise RuntimeError(f"helpline {' '.join(args)} exited {proc.returncode}: {tail}")
    return seconds, int(peak_file.read_text()) / 1024


def _cli(ctx: Any, outcome: Outcome, install: dataset.Install) -> None:
    out = install.root / "records.csv"
    # The floor: a command that only starts up (imports, settings, key file) and runs one small query.
    base_seconds, base_rss = _command(install, "keys", "status")
    seconds, rss = _command(install, "export", "records", "--out", str(out))
    rows = _data_rows(out)
    net = max(seconds - base_seconds, 1e-6)
    outcome.add("cli.rows exported", rows, "rows")
    outcome.add("cli.rows/s (whole command)", rows / seconds, "rows/s", target=f">= {TARGET_ROWS_PER_S}")
    outcome.add(
        "cli.rows/s (after start-up)", rows / net, "rows/s", note="wall time minus that of `helpline keys status`"
    )
    outcome.add(
        "cli.peak RSS", rss, "MB", target=f"< {TARGET_RSS_MB}", floor=base_rss, note="floor: `helpline keys status`"
    )
    outcome.add("cli.wall time", seconds, "s", floor=base_seconds)


class _RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        self.peak = 0
        self.stop = threading.Event()

    def sample(self) -> int:
        return sum(p.memory_info().rss for p in self.procs)

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.sample())
            time.sleep(0.02)


def _api(ctx: Any, outcome: Outcome, install: dataset.Install) -> None:
    with server.serving(install) as live:
        token = install.issue_token("bench-analyst")
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=live.base_url, headers=headers, timeout=600) as http:
            http.get("/api/v1/health")
            assert live.pid is not None
            sampler = _RssSampler(live.pid)
            before = sampler.sample()
            sampler.start()
            rows = size = 0
            started = time.perf_counter()
            with http.stream("GET", "/api/v1/exports/records.csv") as response:
                if response.status_code != 200:
                    raise RuntimeError(f"records.csv answered {response.status_code}: {response.read()[:300]!r}")
                for line in response.iter_lines():
                    size += len(line)
                    if not line.startswith("#"):
                        rows += 1
            seconds = time.perf_counter() - started
            sampler.stop.set()
            sampler.join()
    rows -= 1  # the CSV header line
    outcome.add("api.rows streamed", rows, "rows")
    outcome.add("api.rows/s", rows / seconds, "rows/s", target=f">= {TARGET_ROWS_PER_S}")
    outcome.add(
        "api.server peak RSS", sampler.peak / 2**20, "MB", target=f"< {TARGET_RSS_MB}", note="whole server process"
    )
    outcome.add("api.server RSS growth during download", (sampler.peak - before) / 2**20, "MB")
    outcome.add("api.MB/s", size / seconds / 2**20, "MB/s")


def run(ctx: Any, outcome: Outcome) -> None:
    from bench.stats import release_install

    copy = ctx.sqlite_copy("export")  # exports write an audit entry
    # The research file covers released months only: release them all, as a year of use would have.
    outcome.details["months released first"] = release_install(copy)
    _cli(ctx, outcome, copy)
    _api(ctx, outcome, copy)
