"""The ``helpline`` command. Errors are one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

from sqlalchemy import select
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


def _cmd_start(args: argparse.Namespace, settings: Settings) -> int:
    """The container's start: keys explained, a key file only where that is the provider, migrate, serve."""
    from app import bootstrap as setup
    from app.auth.models import Role, User
    from app.crypto.keyring import describe_source

    print(describe_source(settings), flush=True)
    if settings.key_provider == "file" and not settings.key_path.exists():
        for line in setup.init(settings):
            print(line, flush=True)
    else:
        setup.migrate(settings)
    with cli_session(settings) as session:
        has_admin = session.scalar(select(User.id).where(User.role == Role.admin).limit(1)) is not None
    if not has_admin:
        print("no admin account yet: run 'helpline create-user NAME --role admin' (its password is shown once)")
    return _cmd_serve(args, settings)


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


def _port_free(host: str, port: int) -> None:
    """One clear line instead of uvicorn's six when the port is taken (or the address is not ours)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise CliError(f"cannot serve on {host}: no such address") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as exc:
            reason = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or "refused")
            raise CliError(f"cannot serve on {host}:{port}: {reason}") from None


def _log_head(settings: Settings) -> None:
    """The chain's head at start goes to the server log too: an anchor even before the first new entry."""
    from app.audit import service as audit

    with cli_session(settings) as session:
        last = audit.head(session)
    if last is not None:
        audit.log_checkpoint(*last)


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from app.crypto.keyring import describe_source
    from app.logs import configure_logging, uvicorn_log_config
    from app.main import create_app
    from app.web.flow import HeaderDeadlineProtocol

    configure_logging()
    _port_free(args.host, args.port)
    create_app(settings)  # fail fast, with one clear line, before uvicorn starts workers
    logging.getLogger("helpline").info(describe_source(settings))
    _log_head(settings)
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


def _checkpoint(value: str) -> tuple[int, str]:
    from app.audit import service as audit

    try:
        return audit.parse_checkpoint(value)
    except (ValueError, OSError) as exc:
        raise CliError(f"--checkpoint {value!r}: {exc}", code=2) from None


def _cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from app.audit import seals
    from app.audit import service as audit

    checkpoint = _checkpoint(args.checkpoint) if args.checkpoint else None
    with cli_session(settings) as session:
        checked, broken = audit.verify(session)
        missed = audit.check_checkpoint(session, seq=checkpoint[0], mac=checkpoint[1]) if checkpoint else None
        refused = list(seals.broken_rows(session, get_keyring(settings)))
    for row in refused:
        print(f"helpline: {row}: security columns fail their seal (changed outside Helpline; refused)", file=sys.stderr)
    if broken is not None:
        raise CliError(f"audit chain broken at entry {broken.seq}: {broken.reason}")
    if missed is not None:
        raise CliError(f"audit checkpoint not met: {missed}")
    if refused:
        raise CliError(f"{len(refused)} sealed rows fail their seal (listed above)")
    print(f"audit chain intact: {checked} entries" + (f", checkpoint {checkpoint[0]} reached" if checkpoint else ""))
    return 0


def _cmd_audit_head(args: argparse.Namespace, settings: Settings) -> int:
    from app.audit import service as audit

    with cli_session(settings) as session:
        last = audit.head(session)
    if last is None:
        raise CliError("the audit chain is empty: there is no head to keep yet")
    print(f"audit head at entry {last[0]}; keep this checkpoint outside the database: {audit.checkpoint_value(*last)}")
    return 0


def _positive(what: str, most: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number") from None
        if not 1 <= value <= most:
            raise argparse.ArgumentTypeError(f"{what} must be between 1 and {most}")
        return value

    return parse


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

    for name, func, text in (
        ("serve", _cmd_serve, "serve the web UI and the API"),
        ("start", _cmd_start, "what the container runs: key file if absent (file provider), migrate, then serve"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=_positive("port", 65535), default=8000)
        p.add_argument("--workers", type=_positive("workers", 64), default=1, help="uvicorn worker processes")
        p.set_defaults(func=func)

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(
        dest="audit_command", required=True, parser_class=_Parser
    )
    p = audit.add_parser(
        "verify", help="walk the keyed chain and the seals; exit 1 at a broken entry, a missed checkpoint or a bad seal"
    )
    p.add_argument("--checkpoint", metavar="VALUE|FILE", help="a checkpoint from 'audit head' or the server log")
    p.set_defaults(func=_cmd_audit_verify)
    audit.add_parser("head", help="print the chain's head as a checkpoint to keep outside the database").set_defaults(
        func=_cmd_audit_head
    )

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def run(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = get_settings()
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    existed = settings.data_dir.exists()
    try:
        return func(args, settings)
    except BaseException:
        # A command that failed (say, 'keys status' with no key file) leaves no empty data directory behind.
        if not existed and settings.data_dir.is_dir() and not any(settings.data_dir.iterdir()):
            settings.data_dir.rmdir()
        raise


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
