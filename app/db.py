"""Engine, session factory and the unit of work: the one place that commits."""

from __future__ import annotations

import functools
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool

from app.config import Settings, get_settings
from app.errors import HelplineError

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def new_id() -> uuid.UUID:
    """Row ids are made by the application so values can be sealed to their row before insert."""
    return uuid.uuid4()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level so SQLAlchemy's "begin" hook below decides how a
    # transaction starts: BEGIN IMMEDIATE takes the write lock up front, so two writers wait
    # on busy_timeout instead of failing with "database is locked" on lock upgrade.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Freed pages are zeroed so deleted ciphertext and wrapped keys do not linger in the file.
    cursor.execute("PRAGMA secure_delete=ON")
    # WAL + NORMAL is durable against a process crash (SIGKILL); only power loss may drop the
    # last transactions. FULL costs an fsync per commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class WriteGate:
    """One SQLite writer at a time within this process, handed over without sleeping.

    SQLite lets one writer in and makes the others poll with growing sleeps (up to 100 ms each) until
    busy_timeout; under a burst of requests that polling, not the work, sets the pace. Threads of one
    server wait on this lock instead and take over the moment the writer commits. Other processes (the
    CLI beside a running server) still meet SQLite's own lock and busy_timeout.
    """

    KEY = "helpline_write_gate"

    def __init__(self, timeout: float = 30.0) -> None:
        self._lock = threading.Lock()
        self.timeout = timeout

    def begin(self, conn: Any) -> None:
        if not self._lock.acquire(timeout=self.timeout):
            raise sqlite3.OperationalError("database is locked: another writer held it for too long")
        conn.info[self.KEY] = True
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self.end(conn)
            raise

    def end(self, conn: Any, *_: Any) -> None:
        if conn.info.pop(self.KEY, False):
            self._lock.release()

    def on_checkin(self, _dbapi_connection: Any, record: Any) -> None:
        # Safety net: a connection that goes back to the pool (or is thrown away) never keeps the gate.
        if record is not None and record.info.pop(self.KEY, False):
            self._lock.release()

    def install(self, engine: Engine) -> None:
        event.listen(engine, "begin", self.begin)
        event.listen(engine, "commit", self.end)
        event.listen(engine, "rollback", self.end)
        event.listen(engine.pool, "checkin", self.on_checkin)
        event.listen(engine.pool, "invalidate", lambda conn, record, exc: self.on_checkin(conn, record))


def make_engine(settings: Settings, *, serialize_writes: bool = False) -> Engine:
    """An engine for the configured database, with SQL echo off (values must never reach logs).

    ``serialize_writes`` puts SQLite writers of this process in a queue (see WriteGate); the service
    and the CLI use it, tests that hold one long transaction per test do not.
    """
    url = settings.database_url
    if settings.is_sqlite:
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=False,
            hide_parameters=True,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=NullPool if path == ":memory:" else None,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        if serialize_writes:
            WriteGate().install(engine)
        else:
            event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url,
        echo=False,
        hide_parameters=True,  # bound values (ciphertexts, codes) never reach an error message or log
        pool_pre_ping=True,  # survive a PostgreSQL restart without restarting the service
        pool_size=10,
        max_overflow=10,
    )


@functools.lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return make_engine(get_settings().model_copy(update={"database_url": url}), serialize_writes=True)


def get_engine(settings: Settings | None = None) -> Engine:
    settings = settings or get_settings()
    return _engine_for(settings.database_url)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    """A session that commits if the block succeeds and rolls back if it raises."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except HelplineError as exc:
        if exc.keep_changes:
            session.commit()
        else:
            session.rollback()
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_sqlite(session: Session) -> bool:
    bind = session.get_bind()
    return bind.dialect.name == "sqlite"
