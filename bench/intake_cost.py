"""Where an intake's CPU goes once HTTP is taken away: the request's own work, and SQLite's part of it.

On a copy of the install, contacts are recorded in-process exactly as ``POST /api/v1/contacts`` does in its
one threadpool call (the caller's token read, the service, the commit with its audit entry and counters),
each as the next caseworker of the office, and every statement sent to SQLite is captured. The same
statements are then replayed through the bare ``sqlite3`` driver, with Helpline's pragmas and as many
connections as the server's pool hands out in turn, on a twin copy taken at the moment the measured
intakes began. The replay is the floor: what SQLite itself spends on an intake's rows, B-trees, WAL and
commit. The gap between it and the unit of work is Python — SQLAlchemy's session and statements and
Helpline's own code — not the pages written.

CPU is the recording thread's own (``time.thread_time``), so a busy machine moves it little.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench import dataset
from bench.report import Outcome

PRAGMAS = ("journal_mode=WAL", "busy_timeout=30000", "foreign_keys=ON", "secure_delete=ON", "synchronous=NORMAL")
CHANNELS = ("phone", "telegram", "telegram", "signal", "whatsapp", "email", "referral", "in_person")
REGIONS = ("chechnya", "chechnya", "dagestan", "ingushetia", "moscow", "abroad", "unknown")
WORDS = [
    "called",
    "again",
    "from",
    "a",
    "borrowed",
    "phone",
    "asked",
    "about",
    "documents",
    "and",
    "safe",
    "place",
    "to",
    "stay",
    "family",
    "pressure",
]
POOLED = 3  # connections the replay takes in turn, as the server's pool does under a few concurrent requests
# What the capture keeps of each statement sent while the measured intakes run: (SQL, parameters, executemany).
Captured = list[tuple[str, Any, bool]]


def requires() -> str | None:
    return None


def _count(ctx: Any) -> tuple[int, int]:
    """(warm-up, measured) intakes."""
    if ctx.smoke:
        return (10, 40)
    return (50, 1500) if ctx.quick else (200, 5000)


def _contact(rng: random.Random, n: int) -> dict[str, Any]:
    channel = rng.choice(CHANNELS)
    if channel in ("phone", "signal", "whatsapp"):
        handle = f"+7 9{rng.randrange(100):02d} {rng.randrange(1000):03d}-{n % 100:02d}-{rng.randrange(100):02d}{n}"
    else:
        handle = f"@cost_{n}_{rng.randrange(10**6)}"
    return {
        "received_on": date.today() - timedelta(days=rng.randrange(30)),
        "channel": channel,
        "region": rng.choice(REGIONS),
        "language": "ru",
        "risk": rng.choice(("low", "medium", "medium", "high", "high", "immediate")),
        "needs": rng.choice((["evacuation"], ["legal", "documents"], [])),
        "alias": f"Caller {n}",
        "handle": handle,
        "notes": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(20, 80))),
    }


def _record(ctx: Any, install: dataset.Install, warm: int, count: int, twin: Path) -> dict[str, Any]:
    """Record ``warm`` then ``count`` contacts as the intake route does; the twin is copied in between."""
    from fastapi.security import HTTPAuthorizationCredentials
    from sqlalchemy import event

    from app.auth.models import Role
    from app.contacts import service as contact_service
    from app.contacts.schemas import ContactIn
    from app.crypto import service as crypto
    from app.crypto.keyring import get_keyring
    from app.db import finish_in_route, make_engine, open_session
    from app.dependencies import caller

    settings = install.settings(intake_per_hour=100_000_000, decrypt_alarm_per_hour=100_000_000)
    engine = make_engine(settings, serialize_writes=True)
    keyring = get_keyring(settings)
    tokens = install.issue_tokens(dataset.OFFICE, engine)
    rng = random.Random(20261202)
    captured: Captured = []
    capturing = False

    def on_execute(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        if capturing:
            captured.append((statement, parameters, many))

    def on_commit(_conn: Any) -> None:
        if capturing:
            captured.append(("COMMIT", None, False))

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    spent = {"authentication": 0.0, "service": 0.0, "commit": 0.0}

    def intake(n: int) -> None:
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=tokens[n % len(tokens)])
        body = ContactIn.model_validate(_contact(rng, n))
        session = open_session(engine)
        crypto.bind(session, settings=settings, keyring=keyring)
        t0 = time.thread_time()
        user = caller(session, credentials, Role.caseworker)
        t1 = time.thread_time()
        contact_service.record_contact(session=session, actor=user, data=body)
        t2 = time.thread_time()
        finish_in_route(session)
        t3 = time.thread_time()
        spent["authentication"] += t1 - t0
        spent["service"] += t2 - t1
        spent["commit"] += t3 - t2

    try:
        for n in range(warm):
            intake(n)
        raw = engine.raw_connection()
        try:
            driver: Any = raw.driver_connection
            driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            target = sqlite3.connect(twin)
            try:
                driver.backup(target)
            finally:
                target.close()
        finally:
            raw.close()
        spent = dict.fromkeys(spent, 0.0)
        capturing = True
        for done in range(count):
            if done and done % 1000 == 0:
                ctx.log(f"  intake cost: {done:,} of {count:,} contacts recorded")
            intake(warm + done)
        capturing = False
    finally:
        engine.dispose()
    return {"spent": spent, "captured": captured}


def state(path: Path) -> dict[str, Any]:
    """What an intake changes, read back: row counts, the audit chain's head and the counters' total."""
    conn = sqlite3.connect(path)
    try:
        found: dict[str, Any] = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - names from this module
            for table in ("contact", "data_key", "blind_index_entry", "audit_entry", "attention_item")
        }
        found["audit head"] = conn.execute("SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1").fetchone()
        found["counted"] = conn.execute("SELECT sum(count) FROM period_count").fetchone()[0]
        return found
    finally:
        conn.close()


def replay(path: Path, captured: Captured, *, connections: int = POOLED) -> float:
    """Thread CPU seconds the bare driver spends on ``captured`` against the database at ``path``."""
    pool = []
    for _ in range(connections):
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in PRAGMAS:
            conn.execute(f"PRAGMA {pragma}")
        pool.append(conn)
    turn = 0
    conn = pool[0]
    start = time.thread_time()
    try:
        for statement, parameters, many in captured:
            if statement == "COMMIT":
                conn.execute("COMMIT")
                turn += 1
                conn = pool[turn % connections]  # the next transaction on the next pooled connection
            elif many:
                conn.executemany(statement, parameters)
            else:
                conn.execute(statement, parameters or ()).fetchall()
        return time.thread_time() - start
    finally:
        for pooled in pool:
            pooled.close()


def run(ctx: Any, outcome: Outcome) -> None:
    install = ctx.sqlite_copy("intake-cost")
    work = ctx.scratch("intake-cost-twin")
    twin = work / "twin.db"
    warm, count = _count(ctx)
    recorded = _record(ctx, install, warm, count, twin)
    spent, captured = recorded["spent"], recorded["captured"]
    commits = sum(1 for s, _p, _m in captured if s == "COMMIT")
    statements = len(captured) - commits
    recorded_state = state(install.db_path)
    rounds = []
    for _ in range(3):
        copy = work / "replay.db"
        for suffix in ("", "-wal", "-shm"):
            with_suffix = Path(f"{copy}{suffix}")
            if with_suffix.exists():
                os.remove(with_suffix)
        shutil.copyfile(twin, copy)
        rounds.append(replay(copy, captured))
        # The replay must have written what the intakes wrote, or it measured something else.
        replayed = state(copy)
        if replayed != recorded_state:
            raise AssertionError(f"the replay did not reproduce the intakes: {replayed} != {recorded_state}")
    sqlite_ms = sorted(rounds)[1] * 1000 / count
    whole_ms = sum(spent.values()) * 1000 / count
    outcome.add(
        "sqlite.intake in-process: the request's work, CPU per intake",
        whole_ms,
        "ms",
        floor=sqlite_ms,
        note="the route's threadpool call without HTTP: token read, service, commit; floor: SQLite's part",
    )
    for part, seconds in spent.items():
        outcome.add(f"sqlite.intake in-process: {part}, CPU per intake", seconds * 1000 / count, "ms")
    outcome.add(
        "sqlite.intake in-process: SQLite's own work per intake",
        sqlite_ms,
        "ms",
        note=f"the captured statements replayed through the bare sqlite3 driver, {POOLED} pooled connections in "
        "turn, median of 3",
    )
    outcome.add("sqlite.intake in-process: statements per intake", statements / count, "statements")
    outcome.add("sqlite.intake in-process: transactions per intake", commits / count, "commits")
    outcome.details["intake_cost"] = {
        "intakes": count,
        "replay_seconds": rounds,
        "spent_seconds": spent,
        "statements": statements,
        "commits": commits,
    }
