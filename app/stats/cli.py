"""``helpline stats release --month YYYY-MM`` and ``helpline stats releases``: the release ledger;
``helpline stats check [--repair]``: the counters against a recount of the rows."""

from __future__ import annotations

import argparse
import sys

from app.config import Settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this domain's subcommands."""
    stats = sub.add_parser("stats", help="statistics and the release ledger").add_subparsers(
        dest="stats_command", required=True
    )
    p = stats.add_parser("release", help="freeze a closed month's published tables into the ledger")
    p.add_argument("--month", required=True, metavar="YYYY-MM")
    p.add_argument("--noise", action="store_true", help="add differential-privacy noise (drawn once, stored)")
    p.set_defaults(func=_cmd_release)
    stats.add_parser("releases", help="list the frozen releases").set_defaults(func=_cmd_releases)
    p = stats.add_parser("check", help="recount every counter from the rows; exit 1 naming any drift")
    p.add_argument("--repair", action="store_true", help="rebuild the counters from the rows")
    p.set_defaults(func=_cmd_check)


def _cmd_release(args: argparse.Namespace, settings: Settings) -> int:
    from app.cli import cli_session
    from app.exports.cli import actor
    from app.stats import ledger

    month = ledger.parse_month(args.month)
    with cli_session(settings) as session:
        written = ledger.release_month(session, month=month, actor=actor(), noise=args.noise or None)
        lines = [f"released {row.period} ({row.kind}) as {row.id}" for row in written]
    print("\n".join(lines))
    return 0


def _cmd_releases(args: argparse.Namespace, settings: Settings) -> int:
    from app.cli import cli_session
    from app.stats import published

    with cli_session(settings) as session:
        items = published.list_releases(session)
    if not items:
        print("no releases yet")
    for it in items:
        noise = f"epsilon {it.epsilon:g}" if it.epsilon is not None else "exact"
        print(
            f"{it.period:<8} {it.kind:<8} {it.first_day} to {it.last_day}  {noise:<12} {it.created_at:%Y-%m-%d %H:%M} {it.id}"
        )
    return 0


def _cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from app.audit import service as audit
    from app.cli import cli_session
    from app.stats import counters

    with cli_session(settings) as session:
        drifted = counters.drift(session)
        if drifted and args.repair:
            counters.rebuild_counters(session)
            audit.record(session, actor=audit.SYSTEM, action="stats.repair", detail={"drifted": len(drifted)})
    out = sys.stdout if args.repair else sys.stderr
    for item in drifted[:50]:
        print(f"drift: {item.describe()}", file=out)
    if len(drifted) > 50:
        print(f"drift: ... and {len(drifted) - 50} more", file=out)
    if drifted and not args.repair:
        print(
            f"helpline: {len(drifted)} counter(s) differ from the rows; helpline stats check --repair rebuilds them",
            file=sys.stderr,
        )
        return 1
    print(f"repaired: {len(drifted)} counter(s) rebuilt from the rows" if drifted else "counters agree with the rows")
    return 0
