"""``python -m bench``: build or reuse the data set, run each benchmark, print the table, write the results."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import dataset, machine
from bench.report import Outcome, table

QUICK_SIZE = 20_000
FULL_SIZE = 1_000_000
SCALE_SIZES = (10_000, 100_000)  # plus the main size: how costs grow with the data
RESULTS_DIR = Path(__file__).resolve().parent / "results"
RESULTS_SCHEMA = 1

# name -> module with ``run(ctx, outcome)`` and ``requires()`` (what must exist for it to run).
BENCHMARKS: dict[str, str] = {
    "crypto": "bench.crypto_micro",
    "intake": "bench.intake",
    "intake_cost": "bench.intake_cost",
    "stats": "bench.stats",
    "records_sdc": "bench.records_sdc",
    "export": "bench.exports",
    "rotation": "bench.rotation",
    "pages": "bench.pages",
}


class Unavailable(Exception):
    """What a benchmark measures does not exist yet in this tree (reported, not an error)."""


class Context:
    """What benchmarks share: options, the data sets, one PostgreSQL server, a scratch directory."""

    def __init__(self, *, size: int, quick: bool, work: Path, postgres: bool, smoke: bool = False) -> None:
        self.size = size
        self.quick = quick or smoke
        # The harness end to end with the shortest loads: every figure is written, none is worth reading.
        self.smoke = smoke
        self.work = work
        self.use_postgres = postgres
        self._installs: dict[int, dataset.Install] = {}
        self._pg_installs: dict[int, dataset.Install] = {}
        self._pg: Any = None

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def install(self, size: int | None = None) -> dataset.Install:
        """The cached SQLite install of ``size`` contacts (read-only: clone it to write)."""
        size = size or self.size
        if size not in self._installs:
            self._installs[size] = dataset.cached(size, log=self.log)
        return self._installs[size]

    def scratch(self, name: str) -> Path:
        path = self.work / f"{name}-{uuid.uuid4().hex[:6]}"
        path.mkdir(parents=True)
        return path

    def sqlite_copy(self, name: str, size: int | None = None) -> dataset.Install:
        return self.install(size).clone(self.scratch(name))

    @property
    def pg(self) -> Any:
        if self._pg is None:
            from tests.support.pgserver import start_postgres

            self.log("starting a throw-away PostgreSQL server")
            # Durable settings as a real install would run them, not the test suite's fsync=off.
            self._pg = start_postgres(
                self.work / "pg",
                settings={
                    "fsync": "on",
                    "synchronous_commit": "on",
                    "full_page_writes": "on",
                    "shared_buffers": "512MB",
                },
            )
        return self._pg

    def postgres(self, size: int | None = None) -> dataset.Install:
        """The data set loaded into a PostgreSQL database (read-only: use ``postgres_copy`` to write)."""
        size = size or self.size
        if size not in self._pg_installs:
            source = self.install(size)
            self.log(f"loading {size:,} contacts into PostgreSQL")
            url = self.pg.create_database(f"bench_{size}")
            self._pg_installs[size] = dataset.copy_to_postgres(source, url, log=self.log)
        return self._pg_installs[size]

    def postgres_copy(self, name: str, size: int | None = None) -> dataset.Install:
        """A private copy of the PostgreSQL data set (CREATE DATABASE ... TEMPLATE) and its key file."""
        source = self.postgres(size)
        db = f"bench_{name}_{uuid.uuid4().hex[:6]}"
        from psycopg import sql

        with self.pg.connect() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(db), sql.Identifier(f"bench_{source.size}")
                )
            )
        clone = source.clone(self.scratch(name))
        clone.database_url = self.pg.url(db)
        return clone

    def close(self) -> None:
        if self._pg is not None:
            self._pg.stop()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"small data set ({QUICK_SIZE:,}) and short runs")
    parser.add_argument(
        "--size", type=int, help=f"contacts in the data set (default {FULL_SIZE:,}; quick {QUICK_SIZE:,})"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help=f"run only these ({', '.join(BENCHMARKS)}); repeatable or comma-separated",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="as --quick, with one-second loads and single repeats: checks the harness, its figures mean nothing",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where latest.json and the dated copy go")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--no-scale", action="store_true", help="skip the 10k/100k scale points of a full run")
    parser.add_argument("--keep-work", action="store_true", help="keep the scratch directory")
    return parser.parse_args(argv)


def _selected(only: list[str]) -> list[str]:
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    return names or list(BENCHMARKS)


def run_one(name: str, ctx: Context) -> Outcome:
    outcome = Outcome(name)
    started = time.monotonic()
    try:
        module = importlib.import_module(BENCHMARKS[name])
        missing = module.requires()
        if missing:
            raise Unavailable(missing)
        module.run(ctx, outcome)
    except Unavailable as exc:
        outcome.status, outcome.reason = "unavailable", str(exc)
    except Exception as exc:  # a broken benchmark is reported, the others still run
        outcome.status, outcome.reason = "error", f"{type(exc).__name__}: {exc}"[:500]
        outcome.details["traceback"] = traceback.format_exc()[-4000:]
        outcome.figures.clear()
    outcome.seconds = round(time.monotonic() - started, 1)
    return outcome


@contextlib.contextmanager
def _workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="helpline-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"scratch kept at {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def write_results(doc: dict[str, Any], results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = doc["date"].replace(":", "").replace("-", "")[:15]
    kind = "smoke" if doc.get("smoke") else "quick" if doc["quick"] else "full"
    dated = results_dir / f"{stamp}-{kind}-{doc['size']}.json"
    text = json.dumps(doc, indent=1, sort_keys=False) + "\n"
    for path in (dated, results_dir / "latest.json"):
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, "utf-8")
        tmp.replace(path)
    return dated


def main(argv: list[str] | None = None, *, log: Callable[[str], None] | None = None) -> int:
    args = _parse(argv)
    names = _selected(args.only)
    args.quick = args.quick or args.smoke
    size = args.size or (QUICK_SIZE if args.quick else FULL_SIZE)
    started = datetime.now(UTC)
    doc: dict[str, Any] = {
        "schema": RESULTS_SCHEMA,
        "date": started.isoformat(timespec="seconds"),
        "quick": bool(args.quick),
        "smoke": bool(args.smoke),
        "size": size,
        "scale_sizes": [] if (args.quick or args.no_scale) else [s for s in SCALE_SIZES if s < size] + [size],
        **machine.describe(),
        "benchmarks": {},
    }
    outcomes: list[Outcome] = []
    with _workdir(args.keep_work) as work:
        ctx = Context(size=size, quick=args.quick, work=work, postgres=not args.no_postgres, smoke=args.smoke)
        ctx.scale_sizes = doc["scale_sizes"]  # type: ignore[attr-defined]
        try:
            for name in names:
                ctx.log(f"== {name}")
                outcome = run_one(name, ctx)
                outcomes.append(outcome)
                doc["benchmarks"][name] = outcome.to_json()
                if outcome.status == "error":
                    ctx.log(outcome.details.get("traceback", ""))
        finally:
            ctx.close()
    doc["data_set"] = dataset.meta(ctx.install(size)) if size in ctx._installs else {"size": size}
    doc["seconds"] = round((datetime.now(UTC) - started).total_seconds(), 1)
    dated = write_results(doc, args.results_dir)
    print(table(outcomes))
    print(f"\nresults: {args.results_dir / 'latest.json'} (and {dated.name}); {doc['seconds']:.0f} s in all")
    return 1 if any(o.status == "error" for o in outcomes) else 0
