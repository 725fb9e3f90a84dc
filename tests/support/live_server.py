"""A real ``helpline serve`` in a subprocess, for tests that need the whole thing running.

``LiveServer(base_dir)`` makes a throw-away install under ``base_dir`` (its own data directory,
key file and SQLite database, or the PostgreSQL URL you pass), runs ``helpline init`` and
``helpline serve`` on a free 127.0.0.1 port, and waits for ``/api/v1/health``. Everything the
server and every CLI command print goes to files under ``base_dir/logs`` so a test can search
them (the canary sweep does). The server can be killed with SIGKILL and started again on the
same data: ``kill()`` then ``start()``, or ``crash_and_restart()``.

    with LiveServer(tmp_path) as live:
        worker = live.create_user("alice", "caseworker")
        token = live.sign_in(worker)                # password + TOTP through the API
        with live.client(token) as http:
            http.post("/api/v1/contacts", json={...})
        live.cli("audit", "verify")                 # helpline CLI on the same install

Users are created with ``helpline create-user NAME --role R --password-stdin`` and their TOTP
secret is read from the printed ``otpauth://`` line. ``sign_in`` walks the TOTP steps the server
accepts (one step of drift either side, never a step already used), so up to two sign-ins per
user per 30 s work; ``issue_token`` mints more through the service layer directly when a test
needs many.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyotp

__all__ = ["LiveAccount", "LiveServer", "LiveServerError", "free_port", "unique_name"]

HOST = "127.0.0.1"
START_TIMEOUT = 60.0
DEFAULT_PASSWORD = "live server passphrase 1"
TOTP_STEP = 30


class LiveServerError(RuntimeError):
    """The live server could not be set up, started or used."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class LiveAccount:
    """A staff account on a live server, with what is needed to sign in as it."""

    username: str
    role: str
    password: str
    totp_secret: str
    # The highest TOTP step this harness has spent for the account; the server refuses a replay.
    last_step: int = 0
    tokens: list[str] = field(default_factory=list)

    def totp(self) -> pyotp.TOTP:
        return pyotp.TOTP(self.totp_secret, interval=TOTP_STEP)

    def next_code(self) -> str | None:
        """A code for a step the server will still take, or None if both usable ones are spent."""
        current = int(time.time() // TOTP_STEP)
        # The current step first: should the server's clock cross a step boundary before it checks,
        # the code is still within its one step of drift (an earlier step would fall out of it).
        for step in (current, current + 1):
            if step > self.last_step:
                self.last_step = step
                return self.totp().at(step * TOTP_STEP)
        return None


class LiveServer:
    """One throw-away Helpline install and its ``helpline serve`` process.

    Attributes: ``base_dir``, ``data_dir``, ``database_url``, ``port``, ``base_url``,
    ``server_log`` and ``cli_log`` (files), ``env`` (the environment every command runs with),
    ``pid`` of the running server, ``starts`` (how many times it was started).
    """

    def __init__(
        self,
        base_dir: Path | str,
        *,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
        init: bool = True,
        workers: int = 1,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.workers = workers
        self.data_dir = self.base_dir / "data"
        self.log_dir = self.base_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.server_log = self.log_dir / "server.log"
        self.cli_log = self.log_dir / "cli.log"
        self.key_file = self.data_dir / "keys.json"
        self.database_url = database_url or f"sqlite:///{self.data_dir / 'helpline.db'}"
        self.workers = workers  # uvicorn worker processes (``helpline serve --workers``)
        self.env = self._make_env(env or {})
        self.port = 0
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_handle: object | None = None
        self._engine: object | None = None
        self.accounts: dict[str, LiveAccount] = {}
        if init:
            self.cli("init")

    # ----------------------------------------------------------------- environment and CLI

    def _make_env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
        env.update(
            {
                "HELPLINE_DATA_DIR": str(self.data_dir),
                "HELPLINE_DATABASE_URL": self.database_url,
                "HELPLINE_KEY_FILE": str(self.key_file),
                "HELPLINE_SECURE_COOKIES": "false",
                # Load and sweep tests record hundreds of contacts as one caseworker: the per-caseworker
                # intake limit and bulk-read alarm are raised here, and set low by the tests of them.
                "HELPLINE_INTAKE_PER_HOUR": "1000000",
                "HELPLINE_DECRYPT_ALARM_PER_HOUR": "1000000",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra)
        return env

    @property
    def db_path(self) -> Path | None:
        """The SQLite database file, or None on PostgreSQL."""
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.split("sqlite:///", 1)[1])
        return None

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "app", *args]

    def cli(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``helpline ARGS`` on this install; its output is appended to ``cli_log``."""
        proc = subprocess.run(
            self.command(*args),
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.base_dir,  # no stray .env of the caller's working directory
            timeout=timeout,
        )
        with self.cli_log.open("a", encoding="utf-8") as log:
            log.write(f"$ helpline {' '.join(args)}  (exit {proc.returncode})\n{proc.stdout}{proc.stderr}")
        if check and proc.returncode != 0:
            raise LiveServerError(f"helpline {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def create_user(
        self, name: str, role: str, *, password: str = DEFAULT_PASSWORD, via_cli: bool = True
    ) -> LiveAccount:
        """``helpline create-user NAME --role ROLE --password-stdin``; the TOTP secret from its output.

        ``via_cli=False`` calls the same service in this process instead (no interpreter start-up:
        for tests that need many accounts).
        """
        if via_cli:
            proc = self.cli("create-user", name, "--role", role, "--password-stdin", input=password + "\n")
            uri = next((line for line in proc.stdout.splitlines() if line.startswith("otpauth://")), None)
            if uri is None:
                raise LiveServerError(f"create-user printed no otpauth:// line:\n{proc.stdout}")
        else:
            from app.auth import service as auth_service

            with self.session() as db:
                uri = auth_service.create_user(
                    db,  # type: ignore[arg-type]
                    actor="cli",
                    username=name,
                    role=role,
                    password=password,
                ).otpauth_uri
        account = LiveAccount(username=name, role=role, password=password, totp_secret=pyotp.parse_uri(uri).secret)
        self.accounts[name] = account
        return account

    # ----------------------------------------------------------------- the server process

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, *, port: int | None = None) -> None:
        """Start ``helpline serve`` (on the previous port after a kill) and wait until it is healthy."""
        if self.running:
            return
        for attempt in range(5):
            self.port = port or self.port or free_port()
            log = self.server_log.open("ab")
            log.write(f"--- start {self.starts + 1} on port {self.port}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.command("serve", "--host", HOST, "--port", str(self.port), "--workers", str(self.workers)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.base_dir,
                start_new_session=True,  # its own process group: SIGKILL reaches the whole server
            )
            log.close()
            try:
                self._wait_healthy()
                self.starts += 1
                return
            except LiveServerError as exc:
                self._reap()
                if "address already in use" in str(exc).lower() and attempt < 4 and port is None:
                    self.port = 0
                    continue
                raise

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise LiveServerError(f"helpline serve exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                response = httpx.get(f"{self.base_url}/api/v1/health", timeout=2)
                if response.status_code == 200:
                    return
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.1)
        raise LiveServerError(f"helpline serve not healthy after {START_TIMEOUT:.0f} s ({last}):\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the server (no shutdown handlers, no flush): a crash."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM, then SIGKILL after 10 s)."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap()

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=10)
        self._proc = None

    def crash_and_restart(self) -> None:
        """SIGKILL, then start again on the same data directory and port."""
        self.kill()
        self.start(port=self.port)

    def close(self) -> None:
        self.stop()
        if self._engine is not None:
            self._engine.dispose()  # type: ignore[attr-defined]
            self._engine = None

    def __enter__(self) -> LiveServer:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.server_log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_mark(self) -> int:
        """Where the server log ends now; ``log_since(mark)`` reads what was written after it."""
        try:
            return self.server_log.stat().st_size
        except OSError:
            return 0

    def log_since(self, mark: int) -> str:
        """The server log from byte ``mark`` on (a test's share of a server that other tests use too)."""
        with self.server_log.open("rb") as log:
            log.seek(mark)
            return log.read().decode(errors="replace")

    def log_files(self) -> list[Path]:
        """Every file the server and the CLI wrote their output to."""
        return sorted(p for p in self.log_dir.iterdir() if p.is_file())

    # ----------------------------------------------------------------- HTTP

    def client(self, token: str | None = None, **kwargs: object) -> httpx.Client:
        """An httpx client on this server, with a bearer header if ``token`` is given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def sign_in(self, account: LiveAccount) -> str:
        """A bearer token from ``POST /api/v1/auth/token`` with password and a fresh TOTP code."""
        code = account.next_code()
        if code is None:
            raise LiveServerError(f"no unused TOTP step left for {account.username} in this window")
        response = httpx.post(
            f"{self.base_url}/api/v1/auth/token",
            json={"username": account.username, "password": account.password, "otp": code},
            timeout=30,
        )
        if response.status_code != 200:
            raise LiveServerError(f"sign-in of {account.username} failed: {response.status_code} {response.text}")
        token = str(response.json()["access_token"])
        account.tokens.append(token)
        return token

    # ----------------------------------------------------------------- direct access to the same data

    def settings(self):  # type: ignore[no-untyped-def]
        """Settings of this install, for opening its database from the test process."""
        from app.config import Settings

        return Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=self.data_dir,
            key_file=self.key_file,
            database_url=self.database_url,
            secure_cookies=False,
        )

    def engine(self):  # type: ignore[no-untyped-def]
        if self._engine is None:
            from app.db import make_engine

            self._engine = make_engine(self.settings())
        return self._engine

    @contextlib.contextmanager
    def session(self) -> Iterator[object]:
        """A unit of work on the server's database with its keys bound (commits on success)."""
        from app.crypto import service as crypto
        from app.crypto.keyring import get_keyring
        from app.db import unit_of_work

        settings = self.settings()
        with unit_of_work(self.engine()) as db:  # type: ignore[arg-type]
            crypto.bind(db, settings=settings, keyring=get_keyring(settings))
            yield db

    def issue_token(self, account: LiveAccount | str) -> str:
        """A bearer token minted through the auth service (no TOTP step spent)."""
        from app.auth import service as auth_service

        name = account.username if isinstance(account, LiveAccount) else account
        with self.session() as db:
            user = auth_service.get_user(db, username=name)  # type: ignore[arg-type]
            token, _ = auth_service.issue_token(db, user=user)  # type: ignore[arg-type]
        return token


_names = itertools.count(1)


def unique_name(prefix: str) -> str:
    """A username no other account of this process has."""
    return f"{prefix}{os.getpid()}x{next(_names)}"
