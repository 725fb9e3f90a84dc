"""The audit chain: appended in the change's transaction, and any hand edit is caught."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import delete, select, text, update

from app import bootstrap
from app.audit import service as audit
from app.audit.models import AuditEntry
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.db import make_engine, unit_of_work
from tests.conftest import make_settings


def test_entries_chain_each_to_the_one_before(session) -> None:
    first = audit.record(session, actor="alice", action="case.read", target="C-AAAA-11")
    second = audit.record(session, actor="bob", action="case.transition", target="C-AAAA-11", detail={"to": "planning"})
    audit.append_pending(session)  # entries take their place in the chain when appended (at commit, or now)
    assert second.seq == first.seq + 1
    assert second.prev_hash == first.hash
    assert audit.entry_hash(session, second) == second.hash
    checked, broken = audit.verify(session)
    assert broken is None and checked >= 2


@pytest.mark.parametrize(
    ("column", "value"),
    [("actor", "mallory"), ("action", "case.nothing"), ("target", "C-ZZZZ-99"), ("detail", '{"to":"closed"}')],
)
def test_editing_any_field_breaks_the_chain_at_that_entry(session, column, value) -> None:
    entries = [audit.record(session, actor="alice", action=f"act.{i}", target="C-AAAA-11") for i in range(4)]
    audit.append_pending(session)
    victim = entries[2]
    session.flush()
    session.execute(update(AuditEntry).where(AuditEntry.seq == victim.seq).values({column: value}))
    session.expire_all()
    _, broken = audit.verify(session)
    assert broken is not None and broken.seq == victim.seq


def test_deleting_an_entry_is_caught(session) -> None:
    entries = [audit.record(session, actor="alice", action=f"act.{i}") for i in range(4)]
    audit.append_pending(session)
    session.flush()
    session.execute(delete(AuditEntry).where(AuditEntry.seq == entries[1].seq))
    session.expire_all()
    _, broken = audit.verify(session)
    assert broken is not None and broken.seq == entries[1].seq


def test_an_entry_shares_the_fate_of_its_transaction(engine, settings) -> None:
    keyring = get_keyring(settings)
    with unit_of_work(engine) as s:
        before = s.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) or 0
    with pytest.raises(RuntimeError), unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=keyring)
        audit.record(s, actor="alice", action="case.read", target="C-ROLL-BK")
        raise RuntimeError("the change failed")
    with unit_of_work(engine) as s:
        after = s.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) or 0
    assert after == before


def test_detail_holds_what_was_given_and_never_an_address(session) -> None:
    entry = audit.record(session, actor="alice", action="export.records", detail={"rows": 12})
    assert json.loads(entry.detail) == {"rows": 12}
    columns = {c.name for c in AuditEntry.__table__.columns}
    assert not columns & {"ip", "ip_address", "remote_addr", "client"}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_audit_verify_names_the_edited_row(tmp_path) -> None:
    import os

    settings = make_settings(tmp_path)
    bootstrap.migrate(settings)
    engine = make_engine(settings)
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=get_keyring(settings))
        for i in range(5):
            audit.record(s, actor="alice", action=f"act.{i}", target="C-AAAA-11")
    env = {
        **os.environ,
        "HELPLINE_DATA_DIR": str(tmp_path),
        "HELPLINE_DATABASE_URL": settings.database_url,
        "HELPLINE_KEY_FILE": str(settings.key_path),
    }
    ok = _cli(env, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "intact: 5 entries" in ok.stdout
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_entry SET actor = 'mallory' WHERE seq = 3"))
    engine.dispose()
    broken = _cli(env, "audit", "verify")
    assert broken.returncode == 1
    assert broken.stderr.strip().splitlines() == ["helpline: audit chain broken at entry 3: entry 3 was altered"]
    assert "Traceback" not in broken.stderr


def test_the_chain_stays_whole_when_a_savepoint_rolls_back(session) -> None:
    audit.record(session, actor="alice", action="act.before")
    nested = session.begin_nested()
    audit.record(session, actor="alice", action="act.undone")
    nested.rollback()
    audit.record(session, actor="alice", action="act.after")
    session.flush()
    _, broken = audit.verify(session)
    assert broken is None
    actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)).all()
    assert "act.undone" not in actions and actions[-2:] == ["act.before", "act.after"]


def test_an_entry_noted_before_a_savepoint_survives_its_rollback_when_appended_inside(session) -> None:
    """A read of the log inside a savepoint appends what was noted before it; rolling the savepoint
    back must not lose those entries."""
    audit.record(session, actor="alice", action="act.noted.before")
    nested = session.begin_nested()
    audit.record(session, actor="alice", action="act.noted.inside")
    session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))  # appends both
    nested.rollback()
    audit.record(session, actor="alice", action="act.noted.after")
    audit.append_pending(session)
    actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)).all()
    assert actions[-2:] == ["act.noted.before", "act.noted.after"]
    assert "act.noted.inside" not in actions
    _, broken = audit.verify(session)
    assert broken is None
