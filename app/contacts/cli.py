"""Subcommands of ``helpline`` for this domain: ``demo-data``."""

from __future__ import annotations

import argparse
import sys
from functools import partial

from app.config import Settings

MAX_DEMO_CONTACTS = 2_000_000


def _cmd_demo_data(args: argparse.Namespace, settings: Settings) -> int:
    from app import demo
    from app.cli import CliError, cli_session

    if not 1 <= args.contacts <= MAX_DEMO_CONTACTS:
        raise CliError(f"--contacts must be between 1 and {MAX_DEMO_CONTACTS}")
    if not 1 <= args.batch <= 10_000:
        raise CliError("--batch must be between 1 and 10000")
    report = demo.generate(
        partial(cli_session, settings),
        contacts=args.contacts,
        seed=args.seed,
        batch=args.batch,
        progress=not args.quiet,
    )
    # Entries written at the width this load wanted; a column that already held entries may now be out
    # of its band: widen it now, as the server's widener would, rather than on the next start.
    from app.crypto.keyring import get_keyring
    from app.db import get_engine
    from app.lifecycle import reindex

    widened = reindex.reindex(
        engine=get_engine(settings), settings=settings, keyring=get_keyring(settings), auto=True, actor="demo-data"
    )
    if report.new_accounts:
        print("Demo accounts created. This is shown once; write it down now.")
        for line in demo.iter_accounts(report):
            print(line)
    print(
        f"wrote {report.contacts} demo contacts, {report.cases} cases ({report.evacuated} evacuated) "
        f"in {report.seconds:.1f} s ({report.rate:.0f} contacts/s)"
    )
    if widened is not None:
        print(f"blind index rebuilt at epoch {widened.epoch} for the new size ({widened.indexed} entries)")
    sys.stdout.flush()
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this domain's subcommands."""
    p = sub.add_parser(
        "demo-data",
        help="write synthetic contacts, cases and histories, sealed, indexed, audited and counted (for demos)",
    )
    p.add_argument("--contacts", type=int, required=True, metavar="N", help="how many contacts to write")
    p.add_argument("--seed", type=int, default=None, help="the same seed gives the same data")
    p.add_argument("--batch", type=int, default=1000, help="contacts per transaction (default 1000)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_demo_data)
