"""``helpline keys``, ``case shred``, ``contact shred``, ``purge``, ``backup`` and ``restore``.

Key material and decrypted values never reach stdout or stderr; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from app.cli import CliError, cli_session, confirm
from app.config import Settings
from app.crypto.keyring import get_keyring
from app.db import get_engine


@contextmanager
def _bar(what: str) -> Iterator[Callable[[int, int], None]]:
    from tqdm import tqdm

    bar = tqdm(total=0, unit=" keys", desc=what, file=sys.stderr, disable=None, leave=True)

    def update(done: int, total: int) -> None:
        bar.total = max(total, done)
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def _cmd_keys_status(args: argparse.Namespace, settings: Settings) -> int:
    from app.lifecycle import service

    status = service.key_status(engine=get_engine(settings), settings=settings)
    print(f"key provider: {status.provider}")
    for kek in status.keks:
        mark = " (primary)" if kek.primary else ""
        missing = "" if kek.held else "  MISSING from the provider: these records cannot be read"
        print(f"kek {kek.kek_id}{mark}: {kek.data_keys} data keys, {kek.index_keys} index keys{missing}")
    for run in status.unfinished:
        print(
            f"unfinished {run}: run 'helpline keys rotate{' --reencrypt' if run == 'reencrypt' else ''}' to finish it"
        )
    return 0


def _cmd_keys_public(args: argparse.Namespace, settings: Settings) -> int:
    from app.crypto import signing

    print(f"verify-key {signing.public_key(get_keyring(settings))}")
    return 0


def _index_bits(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if not 4 <= value <= 24:
        raise argparse.ArgumentTypeError("must be between 4 and 24")
    return value


def _cmd_keys_reindex(args: argparse.Namespace, settings: Settings) -> int:
    from app.lifecycle import reindex

    with _bar("re-indexing") as progress:
        result = reindex.reindex(
            engine=get_engine(settings),
            settings=settings,
            keyring=get_keyring(settings),
            bits=args.bits,
            progress=progress,
        )
    if result is None:  # only a widener asked to stop returns nothing; by hand the rebuild runs to its end
        raise CliError("the rebuild was stopped before it finished; run it again to carry on")
    retired = ", ".join(str(e) for e in result.retired_epochs) or "none"
    widths = ", ".join(f"{c} {b}" for c, b in sorted(result.widths.items()))
    print(
        f"blind indexes rebuilt under epoch {result.epoch}, widths in bits {widths}: "
        f"{result.indexed} handles indexed, {result.skipped} unreadable skipped; retired epochs: {retired}"
    )
    return 0


def _cmd_keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from app.lifecycle import rotation

    engine = get_engine(settings)
    keyring = get_keyring(settings)
    if args.reencrypt:
        with _bar("re-encrypting") as progress:
            enc = rotation.reencrypt(
                engine=engine, settings=settings, batch_size=args.batch_size or 200, progress=progress, keyring=keyring
            )
        verb = "resumed and finished" if enc.resumed else "finished"
        print(f"re-encryption {verb}: {enc.subjects} subjects, {enc.fields} fields under new data keys")
        return 0
    with _bar("re-wrapping") as progress:
        result = rotation.rotate(
            engine=engine,
            settings=settings,
            batch_size=args.batch_size or rotation.DEFAULT_BATCH,
            progress=progress,
            keyring=keyring,
        )
    if result.resumed:
        print(f"finished an interrupted rotation: primary key-encryption key is {result.new_kek_id}")
    else:
        print(f"new primary key-encryption key {result.new_kek_id}")
    print(f"re-wrapped {result.rewrapped} keys")
    for kek_id in result.retired:
        print(
            f"retired key-encryption key {kek_id}: no record uses it; it is gone from the {keyring.provider.name} provider"
        )
    for kek_id, why in result.kept:
        print(f"kept key-encryption key {kek_id}: {why}")
    return 0


def _cmd_shred(args: argparse.Namespace, settings: Settings) -> int:
    from app.lifecycle import service

    kind = args.kind
    extra = ""
    if kind == "case" and args.with_contact:
        extra = " and the contact it came from"
    if kind == "contact" and args.with_cases:
        extra = " and every case opened from it"
    confirm(
        f"This destroys the data key of {kind} {args.code}{extra}: its protected fields can never be read again.",
        assume_yes=args.yes,
    )
    with cli_session(settings) as session:
        if kind == "case":
            done = service.shred_case(session=session, actor="cli", code=args.code, with_contact=args.with_contact)
        else:
            done = service.shred_contact(session=session, actor="cli", code=args.code, with_cases=args.with_cases)
    service.scrub_storage(get_engine(settings))
    for code in done:
        print(f"shredded {code}")
    return 0


def _cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    from app.idempotency.service import forget_expired
    from app.lifecycle import retention, shred

    forgotten = 0
    with cli_session(settings) as session:
        plan = retention.plan_purge(session=session, settings=settings)
        if not args.dry_run:
            forgotten = forget_expired(session)
        if not args.dry_run and not plan.empty:
            # A person at a terminal is asked first; a scheduled run (no terminal) applies the policy it was
            # set up to apply.
            if sys.stdin.isatty():
                confirm(
                    f"This shreds {len(plan.case_codes)} cases and {len(plan.contact_codes)} contacts for good "
                    "(see --dry-run for the codes).",
                    assume_yes=args.yes,
                )
            retention.purge(session=session, actor="retention", plan=plan)
    if not args.dry_run and not plan.empty:
        shred.scrub_storage(get_engine(settings))
    verb = "would shred" if args.dry_run else "shredded"
    print(
        f"retention: contacts after {settings.retention_contact_days} days without activity and no open case, "
        f"cases {settings.retention_closed_case_days} days after closing, declining or rejection"
    )
    for code in plan.case_codes:
        print(f"{verb} case {code}")
    for code in plan.contact_codes:
        print(f"{verb} contact {code}")
    print(f"{verb} {len(plan.case_codes)} cases and {len(plan.contact_codes)} contacts")
    if not args.dry_run:
        print(f"forgot {forgotten} expired Idempotency-Key answers and form tokens")
    return 0


def _cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from app.lifecycle import backup as backups

    manifest = backups.backup(settings=settings, out=Path(args.out), recipient=args.recipient)
    print(f"encrypted backup written to {args.out} ({manifest['backend']}, schema {manifest['revision']})")
    print(f"signed by this installation's key {manifest['signed_by']}")
    print("it holds no key-encryption key: keep the key file's offline copy to restore it")
    return 0


def _cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from app.lifecycle import backup as backups

    manifest = backups.restore(
        settings=settings,
        path=Path(args.path),
        identity_file=Path(args.identity),
        assume_yes=args.yes,
        trust_unsigned=args.trust_unsigned,
    )
    if manifest["trusted_unsigned"]:
        print(f"warning: restored although {manifest['trusted_unsigned']} (--trust-unsigned)", file=sys.stderr)
    print(f"restored a {manifest['backend']} backup of {manifest['created_on']} (schema {manifest['revision']})")
    missing = backups.missing_keks(settings, manifest)
    if missing:
        print(
            "warning: the configured keys lack key-encryption keys "
            + ", ".join(str(k) for k in missing)
            + " that this backup's records are wrapped under",
            file=sys.stderr,
        )
    print("run 'helpline migrate' if this backup is from an older version")
    return 0


def _batch_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the key, shredding, retention and backup subcommands."""
    keys = sub.add_parser("keys", help="key-encryption keys: status and rotation").add_subparsers(
        dest="keys_command", required=True
    )
    keys.add_parser("status", help="key ids, which is primary, and how many keys each wraps").set_defaults(
        func=_cmd_keys_status
    )
    keys.add_parser(
        "public", help="this organisation's public keys, for partners and for checking its signed backups"
    ).set_defaults(func=_cmd_keys_public)
    p = keys.add_parser("reindex", help="rebuild the blind indexes under a new index key (resumable)")
    p.add_argument("--bits", type=_index_bits, default=None, help="bucket width of the new index (4-24)")
    p.set_defaults(func=_cmd_keys_reindex)
    p = keys.add_parser("rotate", help="new primary key-encryption key; every data key re-wrapped (resumable)")
    p.add_argument("--reencrypt", action="store_true", help="instead: re-encrypt fields under new data keys")
    p.add_argument("--batch-size", type=_batch_size, default=None, help="keys per transaction")
    p.set_defaults(func=_cmd_keys_rotate)

    for kind in ("case", "contact"):
        group = sub.add_parser(kind, help=f"{kind} records").add_subparsers(dest=f"{kind}_command", required=True)
        p = group.add_parser("shred", help=f"crypto-shred one {kind}: its protected fields become unreadable")
        p.add_argument("code")
        p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        if kind == "case":
            p.add_argument("--with-contact", action="store_true", help="also shred the contact the case came from")
        else:
            p.add_argument("--with-cases", action="store_true", help="also shred every case opened from it")
        p.set_defaults(func=_cmd_shred, kind=kind)

    p = sub.add_parser("purge", help="apply the retention policy (shreds what is past it)")
    p.add_argument("--dry-run", action="store_true", help="list the codes that would be shredded; change nothing")
    p.add_argument("--yes", action="store_true", help="do not ask at a terminal (scheduled runs never ask)")
    p.set_defaults(func=_cmd_purge)

    p = sub.add_parser("backup", help="an encrypted, consistent snapshot of the database (never the keys)")
    p.add_argument("--out", required=True)
    p.add_argument("--recipient", required=True, help="age public key (age1...) of the offline backup identity")
    p.set_defaults(func=_cmd_backup)

    p = sub.add_parser("restore", help="restore an encrypted backup into the configured database")
    p.add_argument("path")
    p.add_argument("--identity", required=True, help="file holding the age identity (AGE-SECRET-KEY-1...)")
    p.add_argument("--yes", action="store_true", help="overwrite a database that already holds records")
    p.add_argument(
        "--trust-unsigned",
        action="store_true",
        help="restore a backup that is unsigned or not signed by this installation's key (know where it came from)",
    )
    p.set_defaults(func=_cmd_restore)
