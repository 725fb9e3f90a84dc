"""Subcommands of ``helpline`` for accounts: ``user unlock|reset-password|set-duress`` and ``sessions end|end-all``.

The CLI acts as "cli" in the audit log: whoever can run it already holds the server and its keys.
"""

from __future__ import annotations

import argparse
import sys

from app.config import Settings


def _cmd_unlock(args: argparse.Namespace, settings: Settings) -> int:
    from app.auth import service as auth_service
    from app.cli import cli_session

    with cli_session(settings) as session:
        user = auth_service.get_user(session, username=args.name)
        auth_service.unlock(session, actor="cli", user=user)
    print(f"{args.name}: unlocked; recent sign-in failures forgotten")
    return 0


def _cmd_reset_password(args: argparse.Namespace, settings: Settings) -> int:
    from app.auth import service as auth_service
    from app.cli import cli_session

    with cli_session(settings) as session:
        user = auth_service.get_user(session, username=args.name)
        password = auth_service.reset_password(session, actor="cli", user=user)
    print(f"password: {password}")
    print("one-time: they must choose their own at the next sign-in; every session and token of theirs has ended")
    return 0


def _cmd_set_duress(args: argparse.Namespace, settings: Settings) -> int:
    from app.auth import service as auth_service
    from app.cli import CliError, cli_session

    if not args.password_stdin:
        raise CliError("give the duress password on standard input with --password-stdin (never as an argument)")
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CliError("no duress password on standard input")
    with cli_session(settings) as session:
        user = auth_service.get_user(session, username=args.name)
        auth_service.set_duress(session, actor="cli", user=user, password=password)
    print(f"{args.name}: duress password set")
    return 0


def _cmd_sessions_end(args: argparse.Namespace, settings: Settings) -> int:
    from app.auth import service as auth_service
    from app.cli import cli_session

    with cli_session(settings) as session:
        user = auth_service.get_user(session, username=args.name)
        auth_service.end_sessions(session, actor="cli", user=user)
    print(f"{args.name}: every session and token ended")
    return 0


def _cmd_sessions_end_all(args: argparse.Namespace, settings: Settings) -> int:
    from app.auth import service as auth_service
    from app.auth.models import Role
    from app.cli import cli_session

    # Whoever runs the CLI is an administrator: "me" is the admin accounts.
    with cli_session(settings) as session:
        ended = auth_service.end_all_sessions(
            session, actor="cli", keep_role=Role.admin.value if args.except_me else None
        )
    kept = " (admins' sessions kept)" if args.except_me else ""
    print(f"every session and token ended for {ended} accounts{kept}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    user = sub.add_parser("user", help="account recovery").add_subparsers(dest="user_command", required=True)
    p = user.add_parser("unlock", help="lift a lock (wrong codes or a duress sign-in)")
    p.add_argument("name")
    p.set_defaults(func=_cmd_unlock)
    p = user.add_parser("reset-password", help="a new one-time password; its holder must change it")
    p.add_argument("name")
    p.set_defaults(func=_cmd_reset_password)
    p = user.add_parser("set-duress", help="set the duress password (read from standard input)")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true", help="read the duress password from standard input")
    p.set_defaults(func=_cmd_set_duress)

    sessions = sub.add_parser("sessions", help="end sessions and tokens at once").add_subparsers(
        dest="sessions_command", required=True
    )
    p = sessions.add_parser("end", help="end every session and token of one person (a lost phone or laptop)")
    p.add_argument("name")
    p.set_defaults(func=_cmd_sessions_end)
    p = sessions.add_parser("end-all", help="end every session and token of everyone (a seizure in progress)")
    p.add_argument("--except-me", action="store_true", help="keep the sessions of admin accounts")
    p.set_defaults(func=_cmd_sessions_end_all)
