"""The checkpoint timer: a quiet server still logs the audit head on time, and only when it moved."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from app.audit import service as audit
from app.audit.checkpoints import CheckpointTimer
from app.audit.models import AuditEntry
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.db import unit_of_work
from tests.support.live_server import LiveServer

WORKERS = {"sqlite": 2, "postgresql": 4}


def _entries(engine) -> int:
    with unit_of_work(engine) as s:
        return int(s.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def test_the_timer_logs_the_head_only_when_it_moved(engine, settings, caplog, monkeypatch) -> None:
    # As a worker that logged nothing yet and whose entries are not due one (this process's memory
    # otherwise holds other tests' databases).
    monkeypatch.setitem(audit._last_checkpoint, "seq", 0)
    monkeypatch.setitem(audit._last_checkpoint, "at", time.monotonic())
    keyring = get_keyring(settings)
    caplog.set_level(logging.INFO, logger="helpline.audit")
    timer = CheckpointTimer(engine=engine, interval=3600)
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=keyring)
        audit.record(s, actor="alice", action="act.one")
        entry = audit.record(s, actor="alice", action="act.two")
        audit.append_pending(s)
        first = (entry.seq, entry.hash)
    caplog.clear()
    before = _entries(engine)
    assert timer.run_once() is True
    assert audit.parse_checkpoint(caplog.text) == first
    assert timer.run_once() is False  # the head did not move: nothing more is logged
    assert caplog.text.count("audit checkpoint") == 1
    assert _entries(engine) == before  # the timer only reads
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=keyring)
        entry = audit.record(s, actor="alice", action="act.three")
        audit.append_pending(s)
        moved = (entry.seq, entry.hash)
    assert timer.run_once() is True
    assert audit.parse_checkpoint(caplog.text) == moved
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=keyring)
        assert audit.check_checkpoint(s, seq=moved[0], mac=moved[1]) is None


@pytest.fixture(params=["sqlite", "postgresql"])
def quiet_live(request: pytest.FixtureRequest, tmp_path) -> Iterator[LiveServer]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_server").create_database(f"ckpt_{uuid.uuid4().hex[:10]}")
    # 0.02 minutes: a checkpoint every 1.2 s, so the test waits seconds, not the default ten minutes.
    env = {"HELPLINE_AUDIT_CHECKPOINT_MINUTES": "0.02"}
    server = LiveServer(tmp_path / "live", database_url=url, env=env, workers=WORKERS[request.param])
    try:
        yield server
    finally:
        server.close()


def test_a_quiet_server_logs_a_checkpoint_that_verify_accepts(quiet_live: LiveServer) -> None:
    quiet_live.create_user("amina", "caseworker")  # entries written by the CLI, not by the server
    head = quiet_live.cli("audit", "head").stdout.split()[-1]
    quiet_live.start()
    line = f"audit checkpoint {head}"
    deadline = time.monotonic() + 60
    while line not in quiet_live.server_log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert line in quiet_live.server_log.read_text(errors="replace"), quiet_live.log_tail()
    # The server wrote no entry meanwhile: the line came from its timer, not from an append.
    assert quiet_live.cli("audit", "head").stdout.split()[-1] == head
    verified = quiet_live.cli("audit", "verify", "--checkpoint", str(quiet_live.server_log), check=False)
    assert verified.returncode == 0, verified.stderr


def _wait_for(condition, what: str) -> None:
    """Until ``condition()`` holds; a guard against a timer that never fires, not a measure of its speed."""
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.01)


def test_the_timer_thread_logs_a_moved_head_by_itself_and_stops(engine, settings, caplog, monkeypatch) -> None:
    monkeypatch.setitem(audit._last_checkpoint, "seq", 0)
    monkeypatch.setitem(audit._last_checkpoint, "at", time.monotonic())
    caplog.set_level(logging.INFO, logger="helpline.audit")
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=get_keyring(settings))
        entry = audit.record(s, actor="alice", action="act.timer")
        audit.append_pending(s)
        line = f"audit checkpoint {audit.checkpoint_value(entry.seq, entry.hash)}"
    CheckpointTimer(engine=engine, interval=0.05).stop()  # stopping a timer never started is harmless
    timer = CheckpointTimer(engine=engine, interval=0.05)
    timer.start()
    try:
        thread = timer._thread
        assert thread is not None and thread.daemon  # never holds a stopping server up
        assert thread in [t for t in threading.enumerate() if t.name == "helpline-audit-checkpoint"]
        _wait_for(lambda: any(r.getMessage() == line for r in caplog.records), "the timer's checkpoint")
        assert {r.name for r in caplog.records if r.getMessage() == line} == {"helpline.audit"}
    finally:
        timer.stop()
    assert not thread.is_alive()


def test_a_failed_read_is_logged_and_retried_on_the_next_tick(tmp_path, caplog) -> None:
    broken = create_engine(f"sqlite:///{tmp_path / 'no-tables.db'}")  # every read of the head fails
    caplog.set_level(logging.INFO, logger="helpline.audit")
    timer = CheckpointTimer(engine=broken, interval=0.02)

    def failures() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "helpline.audit" and r.levelno == logging.ERROR]

    timer.start()
    try:
        _wait_for(lambda: len(failures()) >= 2, "two failed ticks")  # the thread lived on after the first
    finally:
        timer.stop()
        broken.dispose()
    first = failures()[0]
    assert first.getMessage() == "audit checkpoint not logged; retried in 0.02 s"
    assert first.exc_info is not None and "no such table" in str(first.exc_info[1])


def test_an_empty_chain_logs_no_checkpoint(backend, migrated_url_factory, caplog, monkeypatch) -> None:
    monkeypatch.setitem(audit._last_checkpoint, "seq", -1)  # any head at all would count as moved
    empty = create_engine(migrated_url_factory(backend), poolclass=NullPool)  # the schema, and not one entry
    caplog.set_level(logging.INFO, logger="helpline.audit")
    try:
        assert CheckpointTimer(engine=empty, interval=3600).run_once() is False
    finally:
        empty.dispose()
    assert "audit checkpoint" not in caplog.text
