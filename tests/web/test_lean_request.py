"""What a request no longer pays for: WAL checkpoints in its commit, the write lock to read its token,
full garbage collections over what start-up built."""

from __future__ import annotations

import gc
import sqlite3
import threading

from fastapi.testclient import TestClient
from sqlalchemy import select, text

from app import bootstrap
from app.audit.models import AuditEntry
from app.audit.seals import SealBroken
from app.auth.models import User
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.db import WalCheckpointer, finish, make_engine, open_session, unit_of_work
from app.dependencies import authenticate
from app.main import create_app
from tests.conftest import make_settings
from tests.factories import Factory


def _sqlite(tmp_path):
    settings = make_settings(tmp_path, database_url=f"sqlite:///{tmp_path / 'lean.db'}")
    bootstrap.migrate(settings)
    return settings, make_engine(settings, serialize_writes=True)


def test_commits_leave_the_wal_to_the_checkpointer(tmp_path) -> None:
    settings, engine = _sqlite(tmp_path)
    with engine.connect() as conn:  # pooled before the checkpointer starts, as the keyring's connection is
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    wal = WalCheckpointer(engine, interval=3600)  # its thread stays idle: the checkpoints below are ours
    wal.start()
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
            conn.exec_driver_sql("CREATE TABLE filler (n INTEGER, pad BLOB)")
            conn.commit()
            # Far more pages than SQLite's own threshold (1,000), one commit at a time.
            for n in range(60):
                conn.execute(text("INSERT INTO filler VALUES (:n, randomblob(200000))"), {"n": n})
                conn.commit()
        busy, frames, copied = wal.run_once()
        # No commit copied the WAL back (each would have restarted it): every frame is still there, and
        # the checkpointer copies them all.
        assert busy == 0 and frames > 2500 and copied == frames
        assert wal.checkpoints == 1
    finally:
        wal.stop()
    with engine.connect() as conn:  # the same pooled connection, after the checkpointer stopped: SQLite's own
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    engine.dispose()


def test_the_checkpointer_thread_checkpoints_by_itself(tmp_path) -> None:
    _settings, engine = _sqlite(tmp_path)
    wal = WalCheckpointer(engine, interval=0.05)
    wal.start()
    try:
        done = threading.Event()
        for _ in range(400):  # bounded wait for the thread, no timing asserted
            if wal.checkpoints >= 2:
                done.set()
                break
            threading.Event().wait(0.05)
        assert done.is_set()
        assert wal._thread is not None and wal._thread is not threading.current_thread()
    finally:
        wal.stop()
    engine.dispose()


def test_a_writing_request_reads_its_token_without_the_write_lock(tmp_path) -> None:
    settings, engine = _sqlite(tmp_path)
    keyring = get_keyring(settings)
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=keyring)
        factory = Factory(s)
        worker = factory.user("caseworker")
        token = factory.token(worker)
    # Another process's writer holds SQLite's write lock.
    other = sqlite3.connect(tmp_path / "lean.db", isolation_level=None, timeout=0.1)
    other.execute("BEGIN IMMEDIATE")
    try:
        session = open_session(engine)
        crypto.bind(session, settings=settings, keyring=keyring)
        user = authenticate(session, token=token)
        assert isinstance(user, User) and user.id == worker.id
        # The read ended: the writing transaction has not begun, so the write gate is free.
        assert not session.in_transaction()
        assert user.role == "caseworker"  # still loaded, no refresh needed
        session.close()
    finally:
        other.execute("ROLLBACK")
        other.close()
    engine.dispose()


def test_start_up_freezes_what_it_built_out_of_the_collector(tmp_path) -> None:
    settings = make_settings(tmp_path, database_url=f"sqlite:///{tmp_path / 'gc.db'}")
    bootstrap.migrate(settings)
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/health").status_code == 200
        assert gc.get_freeze_count() > 0


def test_a_forged_account_read_as_a_reader_still_leaves_its_alarm(tmp_path) -> None:
    """The token's owner is read outside the write lock; a forged owner is refused and the alarm is
    written by the unit of work's writing transaction."""
    settings, engine = _sqlite(tmp_path)
    keyring = get_keyring(settings)
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=keyring)
        factory = Factory(s)
        worker = factory.user("caseworker")
        token = factory.token(worker)
    with engine.begin() as conn:  # a database writer promotes the account behind Helpline's back
        conn.execute(text("UPDATE user_account SET role = 'admin' WHERE id = :id"), {"id": worker.id.hex})
    session = open_session(engine)
    crypto.bind(session, settings=settings, keyring=keyring)
    try:
        authenticate(session, token=token)
    except SealBroken as exc:
        finish(session, exc)
    else:
        raise AssertionError("a forged account was let in")
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=keyring)
        alarm = s.execute(select(AuditEntry.action, AuditEntry.target).where(AuditEntry.action == "alarm.seal_broken"))
        assert alarm.all() == [("alarm.seal_broken", worker.username)]
    engine.dispose()
