"""Self-checks for tests/support/pgserver.py (must pass with --noconftest)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support import pgserver
from tests.support.pgserver import PG_SYSTEM_USER, PostgresError, PostgresServer, start_postgres

CANARY = "canary-7f3c2a-Ωжß"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    srv = start_postgres(tmp_path_factory.mktemp("pg"))
    try:
        yield srv
    finally:
        srv.stop()


def test_full_lifecycle(tmp_path: Path) -> None:
    srv = start_postgres(tmp_path)
    try:
        assert srv.running
        assert _port_open(srv.port)
        url = srv.create_database("helpline_lifecycle")
        assert url == f"postgresql+psycopg://postgres@127.0.0.1:{srv.port}/helpline_lifecycle"
        assert srv.url("helpline_lifecycle") == url

        with srv.connect("helpline_lifecycle") as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            conn.execute("create table notes (id serial primary key, body text not null)")
            conn.execute("insert into notes (body) values (%s)", (CANARY,))
            row = conn.execute("select current_setting('server_encoding'), current_setting('fsync')").fetchone()
            assert row == ("UTF8", "off")

        port = srv.port
        srv.restart()
        assert srv.port == port and srv.running
        with srv.connect("helpline_lifecycle") as conn:
            assert conn.execute("select body from notes").fetchall() == [(CANARY,)]

        out = srv.dump("helpline_lifecycle", tmp_path / "dump.sql")
        assert CANARY in out.read_text(encoding="utf-8")

        if os.geteuid() == 0:
            # PostgreSQL refuses root: the server must run as the unprivileged user.
            assert srv.run_as == PG_SYSTEM_USER
            assert srv.data_dir.stat().st_uid == pwd.getpwnam(PG_SYSTEM_USER).pw_uid
        assert srv.version.isdigit()
    finally:
        srv.stop()
    assert not srv.root.exists()
    assert not _port_open(port)
    srv.stop()  # idempotent


def test_sqlalchemy_url_works(server: PostgresServer) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    url = server.create_database("helpline_sa")
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sqlalchemy.text("select current_database()")).scalar() == "helpline_sa"
    finally:
        engine.dispose()


def test_drop_database_with_open_connection(server: PostgresServer) -> None:
    server.create_database("helpline_drop")
    conn = server.connect("helpline_drop")
    try:
        server.drop_database("helpline_drop")
        server.drop_database("helpline_drop")  # IF EXISTS
        with server.connect() as admin:
            assert admin.execute("select 1 from pg_database where datname = 'helpline_drop'").fetchone() is None
    finally:
        conn.close()


def test_only_loopback(server: PostgresServer) -> None:
    with server.connect() as conn:
        assert conn.execute("show listen_addresses").fetchone() == ("127.0.0.1",)


def test_two_servers_at_once(tmp_path: Path) -> None:
    a = start_postgres(tmp_path / "a")
    try:
        b = start_postgres(tmp_path / "b")
        try:
            assert a.port != b.port and a.root != b.root
            a.create_database("only_in_a")
            with b.connect() as conn:
                assert conn.execute("select 1 from pg_database where datname = 'only_in_a'").fetchone() is None
        finally:
            b.stop()
    finally:
        a.stop()


def test_reachable_base_dir_is_used() -> None:
    base = Path(tempfile.mkdtemp(prefix="helpline-pgtest-", dir="/tmp"))
    try:
        base.chmod(0o755)
        srv = start_postgres(base)
        try:
            assert srv.root.parent == base
        finally:
            srv.stop()
        assert list(base.iterdir()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_port_taken_before_start_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    taken = busy.getsockname()[1]
    ports = iter([taken])
    real_free_port = pgserver._free_port
    monkeypatch.setattr(pgserver, "_free_port", lambda: next(ports, None) or real_free_port())
    try:
        srv = start_postgres(tmp_path)
        try:
            assert srv.port != taken
            with srv.connect() as conn:
                assert conn.execute("select 1").fetchone() == (1,)
        finally:
            srv.stop()
    finally:
        busy.close()


def test_failed_start_reports_log_and_cleans_up() -> None:
    base = Path(tempfile.mkdtemp(prefix="helpline-pgtest-", dir="/tmp"))
    try:
        base.chmod(0o755)
        with pytest.raises(PostgresError, match="shared_buffers"):
            start_postgres(base, settings={"shared_buffers": "not-a-size"})
        assert list(base.iterdir()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_pg_bin_and_dump_failure(server: PostgresServer) -> None:
    assert server.pg_bin("pg_dump").name == "pg_dump"
    with pytest.raises(PostgresError, match="not found"):
        server.pg_bin("no-such-program-xyz")
    with pytest.raises(PostgresError, match="does not exist"):
        server.dump("no_such_db", server.root / "x.sql")


def test_psycopg_error_for_unknown_db(server: PostgresServer) -> None:
    with pytest.raises(psycopg.OperationalError):
        server.connect("nope").close()


def test_missing_locale_falls_back_to_no_locale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgserver, "INITDB_LOCALE", "xx_XX.UTF-8")
    srv = start_postgres(tmp_path)
    try:
        with srv.connect() as conn:
            row = conn.execute("select current_setting('server_encoding'), current_setting('lc_collate')").fetchone()
        assert row == ("UTF8", "C")
    finally:
        srv.stop()


def test_server_of_killed_process_is_reaped() -> None:
    """A pytest process killed with SIGKILL leaves its server running; the next start cleans it up."""
    code = (
        "import time; from tests.support.pgserver import start_postgres; s = start_postgres(); "
        "print(s.root, s.port, flush=True); time.sleep(120)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2]
    )
    try:
        assert proc.stdout is not None
        root_s, port_s = proc.stdout.readline().split()
    finally:
        proc.kill()
        proc.wait()
    root, port = Path(root_s), int(port_s)
    assert root.exists() and _port_open(port)  # orphaned
    pgserver._reap_orphans()
    assert not root.exists()
    deadline = time.monotonic() + 10
    while _port_open(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _port_open(port)
