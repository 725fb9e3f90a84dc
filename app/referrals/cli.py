"""``helpline partner …`` and ``helpline referral …`` (``helpline keys public`` prints the verify key).

No command prints a field value: an import prints the codes it created, an answer writes only its file.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from app.cli import CliError, cli_session
from app.config import Settings
from app.referrals import package, receiving
from app.referrals import service as referral_service
from app.referrals.schemas import ANSWERS


def _cmd_partner_add(args: argparse.Namespace, settings: Settings) -> int:
    with cli_session(settings) as session:
        partner = referral_service.add_partner(
            session=session,
            actor="cli",
            name=args.name,
            age_recipient=args.age_recipient,
            verify_key=args.verify_key,
            replace=args.replace,
            inbox_url=args.inbox_url,
        )
    print(f"partner {partner.name} {'keys replaced' if args.replace else 'added'}")
    return 0


def _cmd_partner_list(args: argparse.Namespace, settings: Settings) -> int:
    with cli_session(settings) as session:
        partners = referral_service.list_partners(session=session)
    for p in partners:
        print(f"{p.name}\t{p.age_recipient}\tverify-key {p.verify_key}\tadded {p.added_on.isoformat()}")
    return 0


def _cmd_partner_remove(args: argparse.Namespace, settings: Settings) -> int:
    with cli_session(settings) as session:
        referral_service.remove_partner(session=session, actor="cli", name=args.name)
    print(f"partner {args.name} removed; its past referrals keep naming it")
    return 0


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {what} {path}: {exc.strerror}") from None


def _identity(path: Path) -> object:
    return package.identity_from_file(_read(path, "identity file").decode("utf-8", "replace"))


def _cmd_referral_import(args: argparse.Namespace, settings: Settings) -> int:
    identity = _identity(args.identity)
    data = _read(args.path, "package")
    with cli_session(settings) as session:
        done = receiving.import_referral(session=session, actor="cli", data=data, identity=identity, assign=args.assign)
    print(f"imported referral {done.code} from {done.partner} as case {done.case_code} (contact {done.contact_code})")
    return 0


def _cmd_referral_answer(args: argparse.Namespace, settings: Settings) -> int:
    if args.out.exists():
        raise CliError(f"{args.out} already exists; refusing to overwrite it")
    with cli_session(settings) as session:
        data = receiving.make_answer(
            session=session, actor="cli", code=args.code, status=args.status, partner=args.partner
        )
        # Written inside the unit of work: if the file cannot be written, the answer is not recorded.
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    print(f"answer {args.status} for referral {args.code.upper()} written to {args.out}")
    return 0


def _cmd_referral_import_answer(args: argparse.Namespace, settings: Settings) -> int:
    identity = _identity(args.identity)
    data = _read(args.path, "answer")
    with cli_session(settings) as session:
        code, status = receiving.import_answer(session=session, actor="cli", data=data, identity=identity)
    print(f"referral {code} is now {status}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    partner = sub.add_parser("partner", help="partner organisations referrals go to").add_subparsers(
        dest="partner_command", required=True
    )
    p = partner.add_parser("add", help="add a partner (or, with --replace, replace its keys)")
    p.add_argument("name")
    p.add_argument("--age-recipient", required=True, help="the partner's age public key (age1...)")
    p.add_argument("--verify-key", required=True, help="the partner's verify key (its 'helpline keys public')")
    p.add_argument("--replace", action="store_true", help="replace the keys of an existing partner")
    p.add_argument("--inbox-url", help="the partner's Helpline inbox, for direct delivery (https://…)")
    p.set_defaults(func=_cmd_partner_add)
    partner.add_parser("list", help="the active partners and their keys").set_defaults(func=_cmd_partner_list)
    p = partner.add_parser("remove", help="stop referring to a partner (past referrals keep its name)")
    p.add_argument("name")
    p.set_defaults(func=_cmd_partner_remove)

    referral = sub.add_parser("referral", help="referral packages and status answers").add_subparsers(
        dest="referral_command", required=True
    )
    p = referral.add_parser("import", help="import a partner's referral package as a new contact and case")
    p.add_argument("path", type=Path)
    p.add_argument("--identity", type=Path, required=True, help="this organisation's age identity file")
    p.add_argument("--assign", help="the caseworker who takes the case (default: the only active one)")
    p.set_defaults(func=_cmd_referral_import)
    p = referral.add_parser("answer", help="write a signed, encrypted status answer for a referral received")
    p.add_argument("code")
    p.add_argument("--status", required=True, choices=ANSWERS)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--partner", help="the partner the referral came from, if two used the same code")
    p.set_defaults(func=_cmd_referral_answer)
    p = referral.add_parser("import-answer", help="import a partner's status answer and move the referral on")
    p.add_argument("path", type=Path)
    p.add_argument("--identity", type=Path, required=True, help="this organisation's age identity file")
    p.set_defaults(func=_cmd_referral_import_answer)
