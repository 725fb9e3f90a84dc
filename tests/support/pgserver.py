"""A throw-away PostgreSQL server for the test suite.

``start_postgres(base_dir)`` runs ``initdb`` into a fresh directory and starts a
server listening on 127.0.0.1 only, on a free port, with durability switched
off for speed.  PostgreSQL refuses to run as root, so when the tests run as
root (CI does) the server runs as the unprivileged system user ``helpline-pg``
(created on first use).

Several pytest processes may run on one machine at once: nothing here uses a
fixed port, directory or socket path.  Every server is stopped and its
directory removed at interpreter exit even if the caller forgets ``stop()``.

The binaries are taken from ``$HELPLINE_PG_BINDIR`` if set, else from PATH,
else from the highest version under ``/usr/lib/postgresql/*/bin``
(``scripts/ensure-system-deps`` installs Debian's ``postgresql``).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psycopg
from psycopg import sql

__all__ = [
    "PG_SYSTEM_USER",
    "PostgresError",
    "PostgresServer",
    "find_pg_bindir",
    "start_postgres",
]

#: System user the server runs as when the tests run as root.
PG_SYSTEM_USER = "helpline-pg"
#: Database superuser created by initdb (trust authentication, no password).
SUPERUSER = "postgres"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
#: initdb --locale; if the machine lacks it, initdb falls back to --no-locale (C, still UTF-8).
INITDB_LOCALE = "C.UTF-8"

# Test-speed settings: a crash loses data, which is fine for a throw-away server.
_FAST_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

_REQUIRED = ("initdb", "pg_ctl", "postgres")
_SOCKET_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes incl. "/.s.PGSQL.NNNNN"


class PostgresError(RuntimeError):
    """The test PostgreSQL server could not be set up, started or used."""


# --------------------------------------------------------------------------- binaries


def _version_key(path: str) -> tuple[int, ...]:
    m = re.search(r"/postgresql/([0-9.]+)/bin$", path)
    return tuple(int(p) for p in m.group(1).split(".") if p) if m else (0,)


def _complete(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in _REQUIRED)


def find_pg_bindir() -> Path:
    """Directory holding initdb, pg_ctl and postgres of one PostgreSQL install."""
    override = os.environ.get("HELPLINE_PG_BINDIR")
    if override:
        bindir = Path(override)
        if not _complete(bindir):
            raise PostgresError(f"HELPLINE_PG_BINDIR={override} lacks one of {', '.join(_REQUIRED)}")
        return bindir
    on_path = shutil.which("initdb")
    if on_path:
        # Resolve symlinks (Debian's /usr/bin wrappers, /usr/local/bin links) so
        # pg_ctl, postgres and pg_dump come from the same install as initdb.
        bindir = Path(os.path.realpath(on_path)).parent
        if _complete(bindir):
            return bindir
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if _complete(Path(candidate)):
            return Path(candidate)
    raise PostgresError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or under "
        "/usr/lib/postgresql/*/bin -- run scripts/ensure-system-deps (installs Debian's postgresql)"
    )


# --------------------------------------------------------------------------- run-as user

_user_lock = threading.Lock()


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    with _user_lock:
        for attempt in range(10):
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)
            proc = subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                capture_output=True,
                text=True,
            )
            if proc.returncode == 0:
                continue
            # 9: already exists (another process won the race); 10: /etc/passwd locked.
            if proc.returncode in (9, 10) and attempt < 9:
                time.sleep(0.2 * (attempt + 1))
                continue
            raise PostgresError(f"useradd {name} failed ({proc.returncode}): {proc.stderr.strip()}")
    raise PostgresError(f"could not create system user {name}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- server


class PostgresServer:
    """One running (or stopped) throw-away PostgreSQL cluster.

    Use :func:`start_postgres` to get one.  Attributes: ``port``, ``host``,
    ``root`` (everything lives under it), ``data_dir``, ``socket_dir``,
    ``log_file``, ``bindir``, ``run_as`` (user name or ``None``), ``version``.
    """

    def __init__(
        self,
        root: Path,
        *,
        bindir: Path,
        run_as: pwd.struct_passwd | None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.bindir = bindir
        self._pw = run_as
        self.run_as: str | None = run_as.pw_name if run_as else None
        self.host = HOST
        self.port = 0
        self.data_dir = root / "data"
        self.log_file = root / "server.log"
        self._own_socket_dir: Path | None = None
        sock = root / "sock"
        if len(str(sock)) > _SOCKET_PATH_MAX:
            self._own_socket_dir = Path(tempfile.mkdtemp(prefix="hlpg-", dir="/tmp"))
            sock = self._own_socket_dir
        self.socket_dir = sock
        self.settings = dict(settings or {})
        self.version = ""
        self._running = False
        self._removed = False

    # ----------------------------------------------------------------- plumbing

    def pg_bin(self, name: str) -> Path:
        """Path of PostgreSQL program ``name`` (e.g. ``"pg_dump"``) of this install."""
        path = self.bindir / name
        if os.access(path, os.X_OK):
            return path
        found = shutil.which(name)
        if found:
            return Path(found)
        raise PostgresError(f"PostgreSQL program {name!r} not found in {self.bindir} or on PATH")

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["HOME"] = str(self.root)  # no ~/.pgpass, ~/.psqlrc of the caller
        return env

    def _cmd(self, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
        args = [str(a) for a in argv]
        if self._pw is None:
            return args
        if shutil.which("setpriv"):
            return [
                "setpriv",
                f"--reuid={self._pw.pw_uid}",
                f"--regid={self._pw.pw_gid}",
                "--clear-groups",
                "--",
                *args,
            ]
        return ["runuser", "-u", self._pw.pw_name, "--", *args]

    def _run(
        self, argv: Sequence[str | os.PathLike[str]], *, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            self._cmd(argv),
            cwd=self.root,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise PostgresError(
                f"{' '.join(map(str, argv))} failed with exit code {proc.returncode}:\n"
                f"{proc.stdout.decode(errors='replace')}{proc.stderr.decode(errors='replace')}"
                f"{self._log_excerpt()}"
            )
        return proc

    def log_tail(self, lines: int = 30) -> str:
        """Last lines of the server log (for error messages)."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _log_excerpt(self) -> str:
        tail = self.log_tail()
        return f"\n--- {self.log_file} (tail) ---\n{tail}" if tail else ""

    def _chown(self, path: Path) -> None:
        if self._pw is not None:
            os.chown(path, self._pw.pw_uid, self._pw.pw_gid)

    # ----------------------------------------------------------------- lifecycle

    def _initdb(self) -> None:
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.socket_dir)
        initdb: list[str | os.PathLike[str]] = [
            self.pg_bin("initdb"),
            "-D",
            self.data_dir,
            "--auth=trust",
            f"--username={SUPERUSER}",
            "--encoding=UTF8",
            "--no-sync",
        ]
        proc = self._run([*initdb, f"--locale={INITDB_LOCALE}"], check=False)
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).decode(errors="replace")
            if "locale" not in out.lower():
                raise PostgresError(f"initdb failed with exit code {proc.returncode}:\n{out}")
            # No such locale on this machine: the C locale with UTF-8 encoding.
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self._run([*initdb, "--no-locale"])
        self.version = (self.data_dir / "PG_VERSION").read_text().strip()
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as f:
            f.write("\n# helpline test settings\ninclude 'helpline_test.conf'\n")

    def _write_settings(self) -> None:
        settings = {
            "listen_addresses": HOST,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            **_FAST_SETTINGS,
            "max_connections": "200",
            "logging_collector": "off",
            "log_min_messages": "warning",
            **self.settings,
        }
        lines = []
        for key, value in settings.items():
            escaped = str(value).replace("'", "''")
            lines.append(f"{key} = '{escaped}'")
        path = self.data_dir / "helpline_test.conf"
        path.write_text("\n".join(lines) + "\n")
        self._chown(path)

    def postmaster_pid(self) -> int | None:
        """The running server's postmaster (its backends are its children), or None."""
        return self._postmaster_pid()

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        """Start the (stopped) server and wait until it accepts connections."""
        if self._removed:
            raise PostgresError("server was stopped and removed; start a new one")
        if self._running:
            return
        self._ensure_log_file()
        proc = self._run(
            [
                self.pg_bin("pg_ctl"),
                "start",
                "-D",
                self.data_dir,
                "-l",
                self.log_file,
                "-w",
                "-t",
                str(int(START_TIMEOUT)),
            ],
            timeout=START_TIMEOUT + 30,
            check=False,
        )
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).decode(errors="replace")
            raise PostgresError(
                f"PostgreSQL did not start on {HOST}:{self.port} within {START_TIMEOUT:.0f} s "
                f"(pg_ctl exit {proc.returncode}):\n{out}{self._log_excerpt()}"
            )
        self._running = True
        self._wait_ready()

    def _ensure_log_file(self) -> None:
        if not self.log_file.exists():
            self.log_file.touch(mode=0o600)
            self._chown(self.log_file)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=3) as conn:
                    conn.execute("select 1")
                return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.1)
        raise PostgresError(
            f"PostgreSQL on {HOST}:{self.port} not accepting connections after {START_TIMEOUT:.0f} s: "
            f"{last}{self._log_excerpt()}"
        )

    def _pg_ctl_stop(self, mode: str) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            self._running = False
            return
        proc = self._run(
            [self.pg_bin("pg_ctl"), "stop", "-D", self.data_dir, "-m", mode, "-w", "-t", "30"],
            timeout=60,
            check=False,
        )
        if proc.returncode != 0 and (self.data_dir / "postmaster.pid").exists():
            pid = self._postmaster_pid()
            if pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                for _ in range(100):
                    try:
                        os.kill(pid, 0)
                    except (ProcessLookupError, PermissionError):
                        break
                    time.sleep(0.05)
        self._running = False

    def restart(self) -> None:
        """Stop (fast shutdown: committed data survives) and start again on the same port."""
        if self._running:
            self._pg_ctl_stop("fast")
            if (self.data_dir / "postmaster.pid").exists():
                raise PostgresError(f"PostgreSQL did not stop{self._log_excerpt()}")
        self.start()

    def stop(self) -> None:
        """Stop immediately and delete everything. Idempotent."""
        if self._removed:
            return
        with contextlib.suppress(Exception):
            self._pg_ctl_stop("immediate")
        self._removed = True
        _live.discard(self)
        shutil.rmtree(self.root, ignore_errors=True)
        if self._own_socket_dir is not None:
            shutil.rmtree(self._own_socket_dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._running

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "removed" if self._removed else ("running" if self._running else "stopped")
        return f"<PostgresServer {self.version} {HOST}:{self.port} {state} root={self.root}>"

    # ----------------------------------------------------------------- using it

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL, e.g. ``postgresql+psycopg://postgres@127.0.0.1:54321/helpline``."""
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq connection string (for psycopg.connect)."""
        return f"host={HOST} port={self.port} user={SUPERUSER} dbname={dbname}"

    def connect(self, dbname: str = "postgres", *, autocommit: bool = True) -> psycopg.Connection:
        return psycopg.connect(self.dsn(dbname), autocommit=autocommit, connect_timeout=10)

    def create_database(self, name: str, *, template: str = "template0") -> str:
        """Create database ``name`` as a copy of ``template`` (empty by default); returns its SQLAlchemy URL.

        A template must have no open connections while it is copied.
        """
        with self.connect() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} ENCODING 'UTF8'").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting its sessions."""
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def dump(self, dbname: str, out_path: Path | str, *, args: Sequence[str] = ()) -> Path:
        """``pg_dump`` ``dbname`` (plain SQL unless ``args`` say otherwise) into ``out_path``.

        pg_dump runs as the server's user; its output is written here by the
        caller's process, so ``out_path`` need not be writable by that user.
        """
        out = Path(out_path)
        proc = self._run(
            [
                self.pg_bin("pg_dump"),
                "-h",
                HOST,
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "--no-password",
                *args,
                dbname,
            ],
            timeout=600,
        )
        out.write_bytes(proc.stdout)
        return out


_live: set[PostgresServer] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.stop()


def _make_root(base_dir: Path | None, pw: pwd.struct_passwd | None) -> Path:
    """A fresh directory for one server, usable by the user the server runs as."""
    if base_dir is not None:
        base_dir = Path(base_dir)
        base_dir.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="pg-", dir=base_dir))
        if pw is None or _reachable_by(root, pw):
            if pw is not None:
                os.chown(root, pw.pw_uid, pw.pw_gid)
            return root
        # e.g. pytest's tmp_path under /tmp/pytest-of-root (mode 0700): the
        # server's user cannot get there, so use a private dir directly under /tmp.
        root.rmdir()
    root = Path(tempfile.mkdtemp(prefix=_ORPHAN_PREFIX, dir=_ORPHAN_DIR))
    if pw is not None:
        os.chown(root, pw.pw_uid, pw.pw_gid)
    return root


_ORPHAN_DIR = "/tmp"
_ORPHAN_PREFIX = "helpline-pg-"
_OWNER_FILE = "owner.pid"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _reap_orphans() -> None:
    """Stop and delete servers left in /tmp by test processes that died (e.g. SIGKILL, CI timeout)."""
    for root in Path(_ORPHAN_DIR).glob(f"{_ORPHAN_PREFIX}*"):
        try:
            owner = int((root / _OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            try:  # no owner file: only reap once clearly stale (the creator writes it at once)
                if time.time() - root.stat().st_mtime < 3600:
                    continue
            except OSError:
                continue
            owner = 0
        if owner and _pid_alive(owner):
            continue
        try:
            pid = int((root / "data" / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            pid = 0
        # Only signal the pid if it still is that server's postmaster (not a reused pid).
        if pid and _pid_alive(pid) and str(root) in _cmdline(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown
            for _ in range(100):
                if not _pid_alive(pid) or not _cmdline(pid):  # gone, or a zombie awaiting init
                    break
                time.sleep(0.05)
        shutil.rmtree(root, ignore_errors=True)


def _reachable_by(path: Path, pw: pwd.struct_passwd) -> bool:
    """Whether every ancestor of ``path`` can be traversed by ``pw`` (owner/other x bit)."""
    for parent in path.resolve().parents:
        st = parent.stat()
        if st.st_uid == pw.pw_uid:
            mode_bit = 0o100
        elif st.st_gid == pw.pw_gid:
            mode_bit = 0o010
        else:
            mode_bit = 0o001
        if not st.st_mode & mode_bit:
            return False
    return True


def start_postgres(
    base_dir: Path | str | None = None,
    *,
    settings: Mapping[str, str] | None = None,
    bindir: Path | None = None,
) -> PostgresServer:
    """initdb a fresh cluster under ``base_dir`` and start it on a free 127.0.0.1 port.

    When running as root the server runs as :data:`PG_SYSTEM_USER`; if that user
    cannot reach ``base_dir`` (e.g. pytest's 0700 tmp dirs) a private directory
    under /tmp is used instead (``server.root`` says where).  ``settings`` are
    extra ``postgresql.conf`` parameters.  Call ``stop()`` when done (it is also
    done at interpreter exit).
    """
    bindir = Path(bindir) if bindir else find_pg_bindir()
    pw = _ensure_system_user(PG_SYSTEM_USER) if os.geteuid() == 0 else None
    with contextlib.suppress(Exception):
        _reap_orphans()
    root = _make_root(Path(base_dir) if base_dir is not None else None, pw)
    (root / _OWNER_FILE).write_text(f"{os.getpid()}\n")
    server = PostgresServer(root, bindir=bindir, run_as=pw, settings=settings)
    _live.add(server)
    try:
        server._initdb()
        # The free port may be taken by someone else before the server binds it: retry.
        for attempt in range(5):
            server.port = _free_port()
            server._write_settings()
            try:
                server.start()
                return server
            except PostgresError as exc:
                in_use = "already in use" in str(exc) or "could not create any TCP/IP sockets" in str(exc)
                if not in_use or attempt == 4:
                    raise
                server._pg_ctl_stop("immediate")
                with contextlib.suppress(OSError):
                    server.log_file.unlink()
        raise PostgresError("unreachable")  # pragma: no cover
    except BaseException:
        server.stop()
        raise
