"""Counters cannot drift: written at commit with the rows, checked and repaired by ``helpline stats check``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import date

import psycopg
import pytest
from sqlalchemy import text

from app import bootstrap
from app.audit import service as audit
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.db import make_engine, unit_of_work
from app.stats import counters
from tests.conftest import make_settings
from tests.factories import Factory


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_stats_check_names_drift_and_repair_rebuilds(tmp_path) -> None:
    settings = make_settings(tmp_path)
    bootstrap.migrate(settings)
    engine = make_engine(settings)
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=get_keyring(settings))
        factory = Factory(s)
        worker = factory.user("caseworker")
        factory.case(worker, status="verifying", verifier=factory.user("coordinator"))
        factory.contact(worker)
    env = {
        **os.environ,
        "HELPLINE_DATA_DIR": str(tmp_path),
        "HELPLINE_DATABASE_URL": settings.database_url,
        "HELPLINE_KEY_FILE": str(settings.key_path),
    }
    clean = _cli(env, "stats", "check")
    assert clean.returncode == 0, clean.stderr
    month = date.today().replace(day=1).isoformat()
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE period_count SET count = count + 1"
                " WHERE grain = 'month' AND measure = 'contacts' AND dim = '' AND value = ''"
            )
        )
        conn.execute(text("DELETE FROM period_count WHERE grain = 'month' AND measure = 'cases_opened' AND dim = ''"))
    engine.dispose()
    drifted = _cli(env, "stats", "check")
    assert drifted.returncode == 1
    lines = drifted.stderr.strip().splitlines()
    assert f"drift: month {month} contacts: stored 3, rows say 2" in lines
    assert f"drift: month {month} cases_opened: stored 0, rows say 1" in lines
    assert lines[-1].startswith("helpline: 2 counter(s) differ from the rows")
    assert "Traceback" not in drifted.stderr
    repaired = _cli(env, "stats", "check", "--repair")
    assert repaired.returncode == 0 and "repaired: 2 counter(s)" in repaired.stdout
    assert _cli(env, "stats", "check").returncode == 0


def test_counters_are_written_at_commit_not_while_the_service_runs(session, factory) -> None:
    worker = factory.user("caseworker")
    before = counters.stored_counts(session)
    factory.contact(worker)
    # Nothing written yet: the deltas wait for the commit (a read in the transaction applies them).
    written = session.execute(text("SELECT COALESCE(SUM(count), 0) FROM period_count")).scalar_one()
    assert written == sum(before.values())
    assert sum(counters.stored_counts(session).values()) > sum(before.values())
    assert counters.drift(session) == []


def test_a_transition_holds_no_counter_row_while_it_waits_for_the_audit_chain(tmp_path, pg_server) -> None:
    """The deadlock of the issue, made deterministic: the audit chain's lock is held elsewhere while a
    case moves; a third writer must still be able to update the counter row the move will touch."""
    settings = make_settings(tmp_path, database_url=pg_server.create_database("lockorder"))
    bootstrap.migrate(settings)
    engine = make_engine(settings)
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=get_keyring(settings))
        factory = Factory(s)
        worker = factory.user("caseworker")
        case = factory.case(worker)
    dsn = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    holder = psycopg.connect(dsn, autocommit=False)
    holder.execute("SELECT pg_advisory_xact_lock(%s)", (audit._ADVISORY_LOCK,))
    moved: list[object] = []

    def move() -> None:
        from app.cases import service as case_service

        with unit_of_work(engine) as s:
            crypto.bind(s, settings=settings, keyring=get_keyring(settings))
            user = Factory(s).session.get(type(worker), worker.id)
            moved.append(
                case_service.transition(session=s, actor=user, case_id=case.id, to="verifying", on=date.today())
            )

    mover = threading.Thread(target=move)
    mover.start()
    try:
        with psycopg.connect(dsn, autocommit=True) as probe:
            # Wait until the move is blocked on the audit chain's lock.
            for _ in range(200):
                waiting = probe.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()
                if waiting and waiting[0]:
                    break
                threading.Event().wait(0.05)
            else:
                pytest.fail("the move never reached the audit chain's lock")
            probe.execute("SET lock_timeout = '3s'")
            # The counter row a move from new to verifying changes: it must not be locked by the waiting move.
            probe.execute(
                "UPDATE period_count SET count = count WHERE measure = 'status' AND value = 'new' AND grain = 'month'"
            )
    finally:
        holder.rollback()
        holder.close()
        mover.join(timeout=30)
        engine.dispose()
    assert len(moved) == 1
