"""The ``helpline`` command. Errors are one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.config import ConfigError, Settings, get_settings
from app.crypto import service as crypto
from app.crypto.errors import CryptoError
from app.crypto.keyring import get_keyring
from app.db import get_engine, unit_of_work
from app.errors import HelplineError

# Each module adds its subcommands with ``register(subparsers)``; kept apart so domains own them.
COMMAND_MODULES = (
    "app.auth.cli",
    "app.contacts.cli",
    "app.exports.cli",
    "app.lifecycle.cli",
    "app.stats.cli",
    "app.referrals.cli",
)


class CliError(Exception):
    """A failure to report as one line with exit code ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@contextmanager
def cli_session(settings: Settings) -> Iterator[Session]:
    """The CLI's unit of work: commits if the command succeeds, rolls back if it fails."""
    with unit_of_work(get_engine(settings)) as session:
        crypto.bind(session, settings=settings, keyring=get_keyring(settings))
        yield session


def confirm(prompt: str, *, assume_yes: bool) -> None:
    """Ask before destroying anything; refuses when there is no terminal to ask on."""
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise CliError("refusing without confirmation: run it in a terminal or pass --yes")
    answer = input(f"{prompt} Type 'yes' to go on: ")
    if answer.strip().lower() != "yes":
        raise CliError("cancelled; nothing was changed")


def _cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    from app import bootstrap as setup

    for line in setup.init(settings):
        print(line)
    return 0


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from app import bootstrap as setup

    setup.migrate(settings)
    print("database is at the latest schema")
    return 0


def _cmd_setup(args: argparse.Namespace, settings: Settings) -> int:
    from app import bootstrap as setup

    if settings.key_provider == "file" and not settings.key_path.exists():
        for line in setup.init(settings):
            print(line)
    else:
        setup.migrate(settings)
    account = setup.ensure_first_admin(settings)
    if account is not None:
        print("First admin account created. This is shown once; write it down now.")
        print("  username: admin")
        print(f"  password: {account.password}")
        print("  add this to your authenticator app (TOTP):")
        print(f"  {account.otpauth_uri}")
    return 0


def _cmd_create_user(args: argparse.Namespace, settings: Settings) -> int:
    from app.auth import service as auth_service

    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("no password on standard input")
    with cli_session(settings) as session:
        account = auth_service.create_user(session, actor="cli", username=args.name, role=args.role, password=password)
    if password is None:
        print(f"password: {account.password}")
    print(account.otpauth_uri)
    return 0


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from app.logs import configure_logging, uvicorn_log_config
    from app.main import create_app
    from app.web.flow import HeaderDeadlineProtocol

    configure_logging()
    create_app(settings)  # fail fast, with one clear line, before uvicorn starts workers
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,  # uvicorn's access log records client addresses; ours does not
        log_config=uvicorn_log_config(),
        proxy_headers=False,
        server_header=False,
        http=HeaderDeadlineProtocol,  # slow headers answer 408 (bodies: app/web/flow.py)
        timeout_keep_alive=5,
    )
    return 0


def _cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from app.audit import service as audit

    with cli_session(settings) as session:
        checked, broken = audit.verify(session)
    if broken is not None:
        raise CliError(f"audit chain broken at entry {broken.seq}: {broken.reason}")
    print(f"audit chain intact: {checked} entries")
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line too, with a pointer to --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="helpline", description="Helpline secure-intake case tracker")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    sub.add_parser("init", help="create the data directory, a new key file and the database").set_defaults(
        func=_cmd_init
    )
    sub.add_parser("migrate", help="upgrade the database to the latest schema").set_defaults(func=_cmd_migrate)
    sub.add_parser(
        "setup", help="init if absent, migrate, and create a first admin if none exists (used by make run)"
    ).set_defaults(func=_cmd_setup)

    p = sub.add_parser("create-user", help="create a staff account")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=["caseworker", "coordinator", "analyst", "admin"])
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(func=_cmd_create_user)

    p = sub.add_parser("serve", help="serve the web UI and the API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=_cmd_serve)

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(
        dest="audit_command", required=True, parser_class=_Parser
    )
    audit.add_parser("verify", help="walk the hash chain; exit 1 at the first broken entry").set_defaults(
        func=_cmd_audit_verify
    )

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def run(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = get_settings()
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    return func(args, settings)


def main(argv: list[str] | None = None) -> int:
    # Files the command creates (database, exports, backups) are private to the service's user.
    os.umask(0o077)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(argv)
    except CliError as exc:
        print(f"helpline: {exc}", file=sys.stderr)
        return exc.code
    except (HelplineError, CryptoError, ConfigError) as exc:
        print(f"helpline: {_one_line(exc)}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(
            f"helpline: database error: {type(exc).__name__}: {_one_line(getattr(exc, 'orig', None) or exc)}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("helpline: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"helpline: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1


def _one_line(exc: object) -> str:
    detail = getattr(exc, "detail", None)
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        return f"{first.get('loc', ['?'])[-1]}: {first.get('msg')}"
    return str(detail if detail is not None else exc).splitlines()[0] if str(exc) else type(exc).__name__
