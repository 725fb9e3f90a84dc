"""The keyed, anchored audit chain: a database writer cannot recompute it, nor cut its tail unseen."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, select, text, update

from app import bootstrap
from app.audit import link
from app.audit import service as audit
from app.audit.models import AuditEntry
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.db import make_engine, unit_of_work
from tests.conftest import make_settings

KAT_KEY = bytes(range(32))
KAT_FIELDS = {
    "seq": 1,
    "at": datetime(2026, 12, 1, 10, 20, 30, tzinfo=UTC),
    "actor": "alice",
    "action": "case.read",
    "target": "C-7K3Q-9M",
    "detail": "{}",
    "prev": "0" * 64,
}
# HMAC-SHA256(00 01 .. 1f, "helpline-audit-v2\n" + canonical JSON with kid 305419896), fixed once.
KAT_LINK = "248650b897afec6f939ffc730c0af3cea145d9a094129e61a20f18a5d258e3b1"


def test_link_format_known_answer() -> None:
    assert link.keyed_link(KAT_KEY, kid=0x12345678, **KAT_FIELDS) == KAT_LINK
    # Every field is bound: changing any one changes the link.
    for name, other in (("seq", 2), ("actor", "bob"), ("target", None), ("prev", "1" * 64)):
        assert link.keyed_link(KAT_KEY, kid=0x12345678, **{**KAT_FIELDS, name: other}) != KAT_LINK
    assert link.keyed_link(KAT_KEY, kid=1, **KAT_FIELDS) != KAT_LINK


def _entries(session, n: int) -> list[AuditEntry]:
    entries = [audit.record(session, actor="alice", action=f"case.read.{i}", target="C-AAAA-11") for i in range(n)]
    audit.append_pending(session)
    return entries


def _recompute(session, key: bytes | None) -> None:
    """The attacker's move: re-link every entry after an edit, plain SHA-256 or HMAC under a guessed key."""
    prev = link.GENESIS
    for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all():
        fields = {
            "seq": entry.seq,
            "at": entry.at,
            "actor": entry.actor,
            "action": entry.action,
            "target": entry.target,
            "detail": entry.detail,
        }
        value = (
            link.legacy_hash(**fields, prev=prev)
            if key is None
            else link.keyed_link(key, kid=entry.key_id, **fields, prev=prev)
        )
        session.execute(
            update(AuditEntry)
            .where(AuditEntry.seq == entry.seq)
            .values(prev_hash=prev, hash=value)
            .execution_options(synchronize_session=False)
        )
        prev = value
    session.expire_all()


@pytest.mark.parametrize("guessed_key", [None, b"\x00" * 32], ids=["sha256", "wrong-key"])
def test_a_recomputed_chain_after_reassigning_reads_is_caught(session, guessed_key) -> None:
    entries = _entries(session, 6)
    session.flush()
    # Reassign two decrypted reads to another caseworker and drop the last two entries, then re-link.
    session.execute(update(AuditEntry).where(AuditEntry.seq.in_([entries[1].seq, entries[2].seq])).values(actor="bob"))
    session.execute(delete(AuditEntry).where(AuditEntry.seq >= entries[4].seq))
    _recompute(session, guessed_key)
    _, broken = audit.verify(session)
    assert broken is not None
    assert broken.seq == 1  # the very first entry no longer verifies under the real key


def test_a_truncated_tail_passes_the_chain_but_not_the_checkpoint(session) -> None:
    _entries(session, 5)
    seq, mac = audit.head(session)
    session.execute(delete(AuditEntry).where(AuditEntry.seq >= seq - 1))
    session.expire_all()
    _, broken = audit.verify(session)
    assert broken is None  # a clean cut leaves a chain that verifies on its own ...
    problem = audit.check_checkpoint(session, seq=seq, mac=mac)
    assert problem is not None and problem.startswith("truncated:")  # ... the checkpoint is what catches it
    assert f"ends at entry {seq - 2}" in problem


def test_a_rewritten_tail_differs_from_the_checkpoint(session) -> None:
    _entries(session, 4)
    seq, mac = audit.head(session)
    assert audit.check_checkpoint(session, seq=seq, mac=mac) is None
    # Another history from that point on (say, an older backup restored and written to since).
    session.execute(delete(AuditEntry).where(AuditEntry.seq >= seq - 1))
    session.info.pop("audit_tail", None)
    session.expire_all()
    _entries(session, 3)
    _, broken = audit.verify(session)
    assert broken is None
    problem = audit.check_checkpoint(session, seq=seq, mac=mac)
    assert problem == f"rewritten: entry {seq} is not the one the checkpoint names"


def test_a_checkpoint_is_logged_only_once_committed(engine, settings, caplog) -> None:
    every_entry = settings.model_copy(update={"audit_checkpoint_every": 1})
    keyring = get_keyring(settings)
    caplog.set_level(logging.INFO, logger="helpline.audit")
    with pytest.raises(RuntimeError), unit_of_work(engine) as s:
        crypto.bind(s, settings=every_entry, keyring=keyring)
        audit.record(s, actor="alice", action="act.undone")
        raise RuntimeError("rolled back")
    assert "audit checkpoint" not in caplog.text
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=every_entry, keyring=keyring)
        entry = audit.record(s, actor="alice", action="act.kept")
        audit.append_pending(s)
        expected = audit.checkpoint_value(entry.seq, entry.hash)
    assert caplog.text.strip().splitlines()[-1].endswith(f"audit checkpoint {expected}")
    assert audit.parse_checkpoint(caplog.text) == (entry.seq, entry.hash)


def _legacy_chain(session, n: int) -> None:
    """Entries as the release before the audit key wrote them: SHA-256 links, no key id."""
    session.execute(delete(AuditEntry))
    prev = link.GENESIS
    at = datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)
    for seq in range(1, n + 1):
        fields = {"seq": seq, "at": at, "actor": "alice", "action": "case.read", "target": "C-AAAA-11", "detail": "{}"}
        value = link.legacy_hash(**fields, prev=prev)
        session.add(AuditEntry(**fields, prev_hash=prev, hash=value, key_id=None))
        prev = value
    session.flush()
    session.info.pop("audit_tail", None)


def test_an_existing_chain_is_keyed_once_and_says_so(session) -> None:
    _legacy_chain(session, 7)
    _, broken = audit.verify(session)
    assert broken is not None and "not keyed" in broken.reason
    assert audit.key_legacy_chain(session) == 7
    checked, broken = audit.verify(session)
    assert broken is None and checked == 8
    marker = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()
    assert marker.action == "audit.chain_keyed" and '"relinked":7' in marker.detail
    assert "unkeyed_chain_broken_at" not in marker.detail
    assert audit.key_legacy_chain(session) is None  # once
    # Stripping the key ids off to have the chain re-made is refused, not obeyed.
    session.execute(update(AuditEntry).where(AuditEntry.seq <= 3).values(key_id=None))
    with pytest.raises(crypto.CryptoError) as refused:
        audit.key_legacy_chain(session)
    assert str(refused.value) == (
        "the audit chain mixes keyed and unkeyed entries; refusing to re-link it (run 'helpline audit verify')"
    )


def test_keying_records_a_legacy_chain_that_was_already_broken(session) -> None:
    _legacy_chain(session, 5)
    session.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(actor="mallory"))
    audit.key_legacy_chain(session)
    marker = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()
    assert '"unkeyed_chain_broken_at":3' in marker.detail


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_head_and_verify_against_a_checkpoint(tmp_path) -> None:
    settings = make_settings(tmp_path)
    bootstrap.migrate(settings)
    engine = make_engine(settings)
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=get_keyring(settings))
        for i in range(6):
            audit.record(s, actor="alice", action=f"act.{i}", target="C-AAAA-11")
    env = {
        **os.environ,
        "HELPLINE_DATA_DIR": str(tmp_path),
        "HELPLINE_DATABASE_URL": settings.database_url,
        "HELPLINE_KEY_FILE": str(settings.key_path),
    }
    head = _cli(env, "audit", "head")
    assert head.returncode == 0, head.stderr
    checkpoint = head.stdout.split()[-1]
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT hash FROM audit_entry WHERE seq = 6")).scalar_one()
    assert checkpoint == f"6-{stored}"
    (tmp_path / "kept.txt").write_text(head.stdout)
    assert _cli(env, "audit", "verify", "--checkpoint", checkpoint).returncode == 0
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE seq >= 5"))
    engine.dispose()
    plain = _cli(env, "audit", "verify")
    assert plain.returncode == 0  # without the anchor a clean cut is invisible
    for value in (checkpoint, str(tmp_path / "kept.txt")):
        cut = _cli(env, "audit", "verify", "--checkpoint", value)
        assert cut.returncode == 1
        assert cut.stderr.strip().splitlines() == [
            "helpline: audit checkpoint not met: truncated: the chain ends at entry 4, but the checkpoint names entry 6"
        ]
    bad = _cli(env, "audit", "verify", "--checkpoint", "not-a-checkpoint")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_the_key_never_reaches_the_database(session, keyring) -> None:
    from app.crypto import purpose

    entry = _entries(session, 1)[0]
    _, key = purpose.purpose_key(keyring, purpose.AUDIT)
    dumped = " ".join(str(v) for v in session.execute(select(AuditEntry)).scalars().all()[-1].__dict__.values())
    assert key.hex() not in dumped and hashlib.sha256(key).hexdigest() not in dumped
    assert session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.key_id.is_(None))) == 0
    assert entry.key_id == purpose.purpose_key(keyring, purpose.AUDIT)[0]


def test_entries_appended_in_one_statement_chain_and_checkpoint_like_single_ones(session, settings, caplog) -> None:
    caplog.set_level(logging.INFO, logger="helpline.audit")
    keyring = get_keyring(settings)
    audit.record(session, actor="alice", action="act.setup")
    audit.record(session, actor="alice", action="act.before")
    head = audit.head(session)
    assert head is not None
    # A checkpoint falls due at the third entry of the batch, and no later entry of the transaction is due
    # (never by the clock here: minutes that will not pass).
    every = head[0] + 3
    assert 2 * every > head[0] + 7
    due = {"audit_checkpoint_every": every, "audit_checkpoint_minutes": 10**6}
    crypto.bind(session, settings=settings.model_copy(update=due), keyring=keyring)
    audit.record_many(session, [("bob", "act.bulk", f"C-AAAA-{i:02d}", {"n": i}) for i in range(5)])
    audit.record(session, actor="alice", action="act.after")
    audit.record_many(session, [("bob", "act.quiet", None, None)])
    session.commit()
    checked, broken = audit.verify(session)
    assert broken is None and checked >= 8
    rows = session.scalars(select(AuditEntry).where(AuditEntry.seq > head[0] - 1).order_by(AuditEntry.seq)).all()
    assert [r.action for r in rows] == ["act.before", *["act.bulk"] * 5, "act.after", "act.quiet"]
    assert [r.seq for r in rows] == list(range(head[0], head[0] + 8))
    assert json.loads(rows[3].detail) == {"n": 2} and rows[3].target == "C-AAAA-02" and rows[7].detail == "{}"
    due_entry = rows[3]
    assert due_entry.seq == every
    logged = [line for line in caplog.text.splitlines() if "audit checkpoint" in line]
    assert len(logged) == 1 and logged[0].endswith(audit.checkpoint_value(due_entry.seq, due_entry.hash))
