"""``helpline export aggregate|records``: the same files as the API, written 0600 with a progress bar."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import date
from pathlib import Path

from tqdm import tqdm

from app.config import Settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this domain's subcommands."""
    export = sub.add_parser("export", help="disclosure-controlled exports").add_subparsers(
        dest="export_command", required=True
    )
    p = export.add_parser("aggregate", help="the aggregate report: frozen releases from the ledger")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--from", dest="start", metavar="DATE", help="first month (YYYY-MM-DD, snapped to its month)")
    p.add_argument("--to", dest="end", metavar="DATE", help="last day (snapped back to the last whole past month)")
    p.add_argument("--release", dest="period", metavar="PERIOD", help="one release: 2026-03, 2026-Q1 or 2026")
    p.set_defaults(func=_cmd_aggregate)
    p = export.add_parser("records", help="the anonymised, k-anonymous record-level CSV")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=_cmd_records)


def _day(value: str | None, name: str) -> date | None:
    from app.cli import CliError

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CliError(f"{name} must be a date written as YYYY-MM-DD") from None


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (KeyError, OSError):
        return "cli"


def _write(path: Path, prepared, *, unit: str) -> int:  # type: ignore[no-untyped-def]
    """Write every chunk to ``path`` (created 0600), with a progress bar on stderr; returns rows written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file already existed with looser permissions
    written = 0
    with (
        os.fdopen(fd, "w", encoding="utf-8", newline="") as out,
        # disable=None: silent when stderr is not a terminal (a log file or a pipe gets no bar).
        tqdm(total=prepared.rows, unit=unit, file=sys.stderr, unit_scale=True, leave=False, disable=None) as bar,
    ):
        for chunk in prepared.chunks:
            out.write(chunk)
            step = min(chunk.count("\n"), prepared.rows - written)
            written += step
            bar.update(step)
    return prepared.rows


def _cmd_aggregate(args: argparse.Namespace, settings: Settings) -> int:
    from app.cli import cli_session
    from app.exports import service as export_service

    start, end = _day(args.start, "--from"), _day(args.end, "--to")
    with cli_session(settings) as session:
        prepared = export_service.aggregate_report(session, fmt=args.format, start=start, end=end, period=args.period)
        rows = _write(args.out, prepared, unit="release")
        export_service.record_export(session, actor=actor(), prepared=prepared, rows=rows)
    print(f"aggregate report ({prepared.detail['from']} to {prepared.detail['to']}) written to {args.out}")
    return 0


def _cmd_records(args: argparse.Namespace, settings: Settings) -> int:
    from app.cli import cli_session
    from app.exports import service as export_service

    with cli_session(settings) as session:
        prepared = export_service.records_export(session)
        rows = _write(args.out, prepared, unit="row")
        export_service.record_export(session, actor=actor(), prepared=prepared, rows=rows)
    print(f"{rows} rows written to {args.out}; {prepared.detail['dropped']} dropped to keep every group at k or more")
    return 0
