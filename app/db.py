"""Engine, session factory and the unit of work: the one place that commits.

The lock order
--------------
Every writing transaction takes its locks in this order, and the unit of work is what makes it so:

1. **domain rows** — the case or contact being changed is locked when it is loaded for a change
   (``SELECT … FOR UPDATE`` in the loading dependency or service; so is a consent a referral is made
   on or that is withdrawn, then a referral being moved, answered or ended with it, and a received
   referral being answered; a package download holds its case, then its referral, ``FOR SHARE``),
   new rows are inserted, unique keys
   are claimed, a data key used for sealing is held ``FOR SHARE``; on PostgreSQL a writer that wraps a
   new data key also holds the **keyring generation** shared (``app.crypto.service.hold_keyring``,
   which only ``keys rotate`` takes exclusively); all before anything below;
2. **the audit chain** — services only note their entries; the unit of work appends them at commit
   (``AUDIT_STAGE``), after flushing every row the ORM still holds, and takes the chain's tail lock
   there (a PostgreSQL advisory lock; on SQLite the write lock of ``BEGIN IMMEDIATE`` covers
   everything), held to the commit: only for the final append, so concurrent writers overlap in
   everything before it. A transaction that reads the audit log (the hourly limits) appends what it
   noted first, taking the lock at that point instead;
3. **counters** — services only note counter deltas in the session; the unit of work applies them at
   commit (``COUNTERS_STAGE``), summed and in sorted key order, so they are the last locks a writer
   takes and no two writers can wait on each other through them.

A writer that holds a lock of one stage only ever waits for a lock of a later stage, so the waits
cannot form a cycle. Whatever still slips through (two rows of stage 1 taken in different orders by
two requests) is a PostgreSQL deadlock or serialization failure (SQLSTATE 40P01, 40001) or SQLite
busy: ``is_retryable`` names them, and the request is replayed whole, bounded and logged
(``app/web/flow.py``; ``run_unit_of_work`` for the command line).
"""

from __future__ import annotations

import functools
import logging
import random
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
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


def insert_on_conflict(dialect: str) -> Callable[..., Any]:
    """The ``insert`` of ``dialect`` that speaks ``ON CONFLICT`` (PostgreSQL's, else SQLite's), for the upserts
    and claim-or-skip inserts the hot paths build once per dialect."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


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
    # Execution option of a connection whose transaction starts as a reader: BEGIN DEFERRED, no gate.
    READER = "helpline_reader"

    def __init__(self, timeout: float = 30.0) -> None:
        self._lock = threading.Lock()
        self.timeout = timeout

    def begin(self, conn: Any) -> None:
        if conn.get_execution_options().get(self.READER):
            # A reader never queues behind writers. Should it write after all, SQLite's own lock
            # decides, and a lost race is a retryable "database is locked" (see is_retryable).
            conn.exec_driver_sql("BEGIN")
            return
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


class WalCheckpointer:
    """SQLite's WAL checkpoints on a thread of their own, out of the request path.

    By default the connection whose commit makes the WAL pass 1,000 pages copies it back into the
    database inside that commit: every fiftieth request or so waited 10-100 ms for it (two fsyncs). While
    this runs, every connection the server checks out has ``wal_autocheckpoint=0`` and this thread
    checkpoints every ``interval`` seconds (PASSIVE: it never waits for a reader or blocks a writer).
    Stopping it makes a last checkpoint; connections checked out afterwards checkpoint by themselves again.
    """

    KEY = "helpline_wal_autocheckpoint"

    def __init__(self, engine: Engine, *, interval: float = 0.2) -> None:
        self.engine, self.interval = engine, interval
        self.running = False
        self.checkpoints = 0  # how many this thread has made (frames copied or not)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def on_checkout(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # At checkout, not at connect: a connection pooled before start (the keyring's, the widener's)
        # would otherwise still copy the WAL back inside a request's commit, with two fsyncs (~100 ms).
        wanted = 0 if self.running else 1000  # 1000: SQLite's own default again once this stops
        if record.info.get(self.KEY, (id(dbapi_connection), 1000)) != (id(dbapi_connection), wanted):
            dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={wanted}")
            record.info[self.KEY] = (id(dbapi_connection), wanted)

    def start(self) -> None:
        self.running = True
        if not event.contains(self.engine.pool, "checkout", self.on_checkout):
            event.listen(self.engine.pool, "checkout", self.on_checkout)
        self._thread = threading.Thread(target=self._run, name="helpline-wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.running = False  # connections checked out from now on checkpoint by themselves again
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.run_once()
        except sqlite3.Error:
            log.warning("last WAL checkpoint not made; SQLite makes it when the database is next opened")

    def run_once(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (busy, frames in the WAL, frames copied back)."""
        # The driver connection in autocommit mode: no SQLAlchemy transaction, so no write gate.
        raw = self.engine.raw_connection()
        try:
            row = raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()  # type: ignore[union-attr]
        finally:
            raw.close()
        self.checkpoints += 1
        return int(row[0]), int(row[1]), int(row[2])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except sqlite3.Error:
                log.warning("WAL checkpoint skipped; retried in %s s", self.interval)


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
            # The connection used last goes out first: its page cache is the one still valid (a pooled
            # connection another has written past re-reads every changed page from the WAL).
            **({} if path == ":memory:" else {"pool_use_lifo": True}),
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


_FACTORIES: weakref.WeakKeyDictionary[Engine, tuple[sessionmaker[Session], sessionmaker[Session]]] = (
    weakref.WeakKeyDictionary()
)
_FACTORIES_LOCK = threading.Lock()


def _factories(engine: Engine) -> tuple[sessionmaker[Session], sessionmaker[Session]]:
    """(writer, reader) session factories of an engine, built once (building one costs more than a query)."""
    made = _FACTORIES.get(engine)
    if made is None:
        with _FACTORIES_LOCK:
            made = _FACTORIES.get(engine)
            if made is None:
                # A reader's transaction starts deferred and outside the write gate (SQLite); the option
                # rides on the engine, so making the session does no I/O.
                reader = engine.execution_options(**{WriteGate.READER: True})
                made = (
                    sessionmaker(bind=engine, expire_on_commit=False, autoflush=False),
                    sessionmaker(bind=reader, expire_on_commit=False, autoflush=False),
                )
                _FACTORIES[engine] = made
    return made


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return _factories(engine)[0]


def open_session(engine: Engine, *, reader: bool = False) -> Session:
    """A new session of the engine; nothing is sent to the database until it is used.

    ``reader`` (a GET) starts the SQLite transaction deferred and outside the write gate.
    """
    return _factories(engine)[1 if reader and engine.dialect.name == "sqlite" else 0]()


def finish(session: Session, exc: BaseException | None = None) -> None:
    """End a unit of work: commit if ``exc`` is None (or asks to keep its changes), else roll back; close."""
    try:
        if exc is None or (isinstance(exc, HelplineError) and exc.keep_changes):
            session.commit()
        else:
            session.rollback()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


FINISHED = "helpline_finished"


def finish_in_route(session: Session) -> None:
    """Commit the unit of work inside the route's own threadpool call, saving the dependency's hop.

    For a hot route whose work is one threadpool call: the commit (its steps included) runs there, and
    the session dependency, finding it done, only closes the session on the event loop.
    """
    finish(session)
    session.info[FINISHED] = True


@contextmanager
def unit_of_work(engine: Engine, *, reader: bool = False) -> Iterator[Session]:
    """A session that commits if the block succeeds and rolls back if it raises.

    ``reader`` (a GET) starts the SQLite transaction deferred and outside the write gate.
    """
    session = open_session(engine, reader=reader)
    try:
        yield session
    except BaseException as exc:
        finish(session, exc)
        raise
    finish(session)


def end_read(session: Session) -> None:
    """End a transaction that has only read, so the next statement begins the writing one.

    On SQLite a write request reads its caller (the bearer token and its owner) as a reader, outside
    the write gate, and takes the gate and the write lock only for the transaction that writes.
    Objects read stay loaded (``expire_on_commit=False``).
    """
    session.commit()


def commit_before_waiting(session: Session) -> None:
    """Commit the unit of work so far, before it waits on something outside Helpline (a partner's server).

    No lock and no transaction waits on the network: what was written is committed here, with its audit
    entries and counters (the commit steps run as at the end), every row lock and SQLite's write lock are
    let go, and the next statement begins a new transaction, which the unit of work ends as usual.
    """
    session.commit()


# --- commit steps: how the unit of work enforces the lock order -----------------------------------

# The commit steps, in order. Alarms are audit entries too, so they are noted before the chain is
# appended to; the chain (stage 2 of the lock order) before the counters (stage 3). Stage 1, the rows,
# happens while the services run, and the audit step flushes whatever rows the ORM still holds first.
ALARMS_STAGE = 10
AUDIT_STAGE = 20
COUNTERS_STAGE = 30

_COMMIT_STEPS: list[tuple[int, Callable[[Session], None]]] = []


def commit_step(stage: int) -> Callable[[Callable[[Session], None]], Callable[[Session], None]]:
    """Register work that every unit of work does at commit, in ``stage`` order (see the lock order)."""

    def register(fn: Callable[[Session], None]) -> Callable[[Session], None]:
        _COMMIT_STEPS.append((stage, fn))
        _COMMIT_STEPS.sort(key=lambda step: step[0])
        return fn

    return register


@event.listens_for(Session, "before_commit")
def _run_commit_steps(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a released savepoint is not the commit; its work waits for the root transaction
    for _stage, step in _COMMIT_STEPS:
        step(session)


# --- replaying a unit of work ---------------------------------------------------------------------

log = logging.getLogger("helpline")

ATTEMPTS = 4
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure
UNIQUE_SQLSTATE = "23505"


def is_retryable(exc: BaseException) -> bool:
    """A failure that replaying the whole unit of work may cure: deadlock, serialization, SQLite busy."""
    if not isinstance(exc, DBAPIError) or isinstance(exc, IntegrityError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
        return True
    return isinstance(orig, sqlite3.OperationalError) and ("locked" in str(orig) or "busy" in str(orig))


def is_unique_race(exc: BaseException) -> bool:
    """A unique key another transaction claimed first: a replay sees its row and answers as the service does."""
    if not isinstance(exc, IntegrityError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == UNIQUE_SQLSTATE:
        return True
    return isinstance(orig, sqlite3.IntegrityError) and "UNIQUE" in str(orig)


def backoff(attempt: int) -> float:
    """Seconds to wait before replay ``attempt`` (1-based): short, growing, jittered so rivals part."""
    return random.uniform(0, 0.02 * 2**attempt)  # noqa: S311 - timing jitter, not a secret


T = TypeVar("T")


def run_unit_of_work(engine: Engine, work: Callable[[Session], T], *, what: str = "unit of work") -> T:
    """Run ``work`` in a unit of work, replaying it whole (bounded, logged) on a retryable failure."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with unit_of_work(engine) as session:
                return work(session)
        except DBAPIError as exc:
            if attempt == ATTEMPTS or not (is_retryable(exc) or is_unique_race(exc)):
                raise
            log.warning("%s replayed (attempt %d of %d): %s", what, attempt + 1, ATTEMPTS, failure_name(exc))
            time.sleep(backoff(attempt))
    raise AssertionError("unreachable")


def failure_name(exc: BaseException) -> str:
    """What failed, for a log line: the error class and SQLSTATE, never a statement or a value."""
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None)
    name = type(orig).__name__ if orig is not None else type(exc).__name__
    return f"{name} {state}" if state else name


def reads_table(statement: object, table: Any) -> bool:
    """Whether a SELECT reads ``table`` (directly or through a subquery): work noted for the commit that
    changes ``table`` is done before such a read, so the transaction sees its own changes."""
    froms = getattr(statement, "get_final_froms", None)
    if froms is None:
        return False
    return any(f.is_derived_from(table) for f in froms())


def is_sqlite(session: Session) -> bool:
    bind = session.get_bind()
    return bind.dialect.name == "sqlite"
