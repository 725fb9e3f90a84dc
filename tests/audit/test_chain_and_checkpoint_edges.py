"""The audit chain at the edges its first tests left open: checkpoints read back from where an operator
keeps them, when one is due, the head of an empty chain, verify's reasons, and what an entry stores."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from app.audit import service as audit
from app.audit.models import AuditEntry
from app.crypto import service as crypto

LINK_A, LINK_B = "a" * 64, "0123456789abcdef" * 4


def _server_log(tmp_path: Path) -> Path:
    """A server log as it lands on disk: other lines, text in other scripts, a byte that is not UTF-8."""
    log = tmp_path / "server.log"
    log.write_bytes(
        b"INFO helpline.web started\n"
        + f"INFO helpline.audit audit checkpoint 7-{LINK_A}\n".encode()
        + "WARNING вход отклонён для «Ирина»\n".encode()
        + b"garbled \xff\xfe bytes from a torn write\n"
        + f"INFO helpline.audit audit checkpoint 12-{LINK_B}\n".encode()
        + b"INFO helpline.web stopped\n"
    )
    return log


def test_a_checkpoint_is_read_from_a_server_log_file_the_last_one_counting(tmp_path: Path) -> None:
    assert audit.parse_checkpoint(str(_server_log(tmp_path))) == (12, LINK_B)


def test_a_saved_audit_head_output_is_read_as_a_file(tmp_path: Path) -> None:
    saved = tmp_path / "head.txt"
    saved.write_text(f"{audit.checkpoint_value(3, LINK_A)}\n", encoding="utf-8")
    assert audit.parse_checkpoint(str(saved)) == (3, LINK_A)


def test_a_value_is_taken_as_itself_even_when_a_file_has_that_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    value = audit.checkpoint_value(5, LINK_A)
    Path(value).write_text(f"9-{LINK_B}\n", encoding="utf-8")
    assert audit.parse_checkpoint(value) == (5, LINK_A)
    assert audit.parse_checkpoint(f"  {value}\n") == (5, LINK_A)


def test_no_checkpoint_says_what_one_looks_like(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_text("INFO nothing here\n", encoding="utf-8")
    for given in (str(empty), "12-notahexlink", str(tmp_path / "missing.log")):
        with pytest.raises(ValueError) as err:
            audit.parse_checkpoint(given)
        assert str(err.value) == "no checkpoint (SEQ-LINK, as printed by 'helpline audit head') in it"


def test_an_empty_chain_has_no_head_and_fails_any_checkpoint(session) -> None:
    session.execute(delete(AuditEntry))
    session.info.pop("audit_tail", None)
    session.expire_all()
    assert audit.head(session) is None
    problem = audit.check_checkpoint(session, seq=4, mac=LINK_A)
    assert problem == "truncated: the chain is empty, but the checkpoint names entry 4"


@pytest.fixture
def checkpoints(session, caplog, monkeypatch):
    """Checkpoint settings for this session, this process's checkpoint memory restored afterwards, and
    a function that commits and returns the checkpoints logged since the last call."""
    monkeypatch.setitem(audit._last_checkpoint, "seq", 0)
    monkeypatch.setitem(audit._last_checkpoint, "at", time.monotonic())
    caplog.set_level(logging.INFO, logger="helpline.audit")

    def configure(*, every: int, minutes: float) -> None:
        settings = crypto.settings_of(session).model_copy(
            update={"audit_checkpoint_every": every, "audit_checkpoint_minutes": minutes}
        )
        crypto.bind(session, settings=settings, keyring=crypto.keyring_of(session))

    def logged() -> list[tuple[int, str]]:
        session.commit()
        found = [audit.parse_checkpoint(r.getMessage()) for r in caplog.records if "audit checkpoint" in r.message]
        caplog.clear()
        return found

    logged()
    return configure, logged


def test_a_checkpoint_is_due_every_n_entries(session, checkpoints) -> None:
    configure, logged = checkpoints
    configure(every=3, minutes=60)
    seqs = []
    for i in range(7):
        entry = audit.record(session, actor="alice", action=f"act.{i}")
        seqs += [seq for seq, _ in logged()]
        if entry.seq % 3 == 0:
            assert seqs[-1] == entry.seq
    assert seqs and all(seq % 3 == 0 for seq in seqs)
    assert len(seqs) == 2  # 7 entries cross exactly two multiples of 3


def test_a_checkpoint_is_due_when_the_last_one_is_older_than_the_interval(session, checkpoints) -> None:
    configure, logged = checkpoints
    configure(every=1_000_000, minutes=10)
    audit.record(session, actor="alice", action="act.quiet")
    assert logged() == []  # the last checkpoint is fresh
    audit._last_checkpoint["at"] = time.monotonic() - 605  # ten minutes and five seconds ago
    entry = audit.record(session, actor="alice", action="act.late")
    assert logged() == [(entry.seq, entry.hash)]
    # Logging it restarted the interval: the next entry is not due again.
    audit.record(session, actor="alice", action="act.next")
    assert logged() == []


def test_the_timer_rule_logs_only_a_head_past_the_last_one_logged(checkpoints, caplog) -> None:
    assert audit.log_checkpoint_if_moved(10, LINK_A) is True
    assert audit.log_checkpoint_if_moved(10, LINK_A) is False
    audit.log_checkpoint(5, LINK_B)  # an older head logged late does not move the mark back
    assert audit.log_checkpoint_if_moved(9, LINK_B) is False
    assert audit.log_checkpoint_if_moved(11, LINK_B) is True
    lines = [r.getMessage() for r in caplog.records if "audit checkpoint" in r.getMessage()]
    assert lines == [f"audit checkpoint 10-{LINK_A}", f"audit checkpoint 5-{LINK_B}", f"audit checkpoint 11-{LINK_B}"]


def _chain_of(session, n: int) -> list[AuditEntry]:
    entries = [audit.record(session, actor="alice", action=f"act.{i}") for i in range(n)]
    audit.append_pending(session)  # entries take their place in the chain when appended
    return entries


def _break_after(session) -> audit.ChainBreak | None:
    session.expire_all()
    return audit.verify(session)[1]


def test_an_entry_stripped_of_its_key_is_named_by_verify(session) -> None:
    victim = _chain_of(session, 3)[1]
    session.execute(update(AuditEntry).where(AuditEntry.seq == victim.seq).values(key_id=None))
    assert _break_after(session) == audit.ChainBreak(
        victim.seq, f"entry {victim.seq} is not keyed: run 'helpline migrate'"
    )


def test_an_entry_under_a_key_nobody_holds_is_named_by_verify(session) -> None:
    victim = _chain_of(session, 3)[2]
    session.execute(update(AuditEntry).where(AuditEntry.seq == victim.seq).values(key_id=987654))
    assert _break_after(session) == audit.ChainBreak(
        victim.seq, f"entry {victim.seq} is under audit key 987654, which the key provider does not hold"
    )


def test_verify_walks_the_chain_in_order_whatever_order_rows_are_stored_in(session) -> None:
    entries = _chain_of(session, 6)
    # An update stores a new row version at the end of a PostgreSQL table, so an unordered read would
    # return these entries out of sequence; the values written are the ones already there.
    for victim in entries[:3]:
        session.execute(update(AuditEntry).where(AuditEntry.seq == victim.seq).values(detail=victim.detail))
    session.expire_all()
    checked, broken = audit.verify(session, batch=2)
    assert broken is None
    assert checked >= len(entries)


def test_detail_is_stored_as_sorted_compact_json_with_other_values_as_text(session) -> None:
    when, ident = date(2026, 12, 1), uuid.UUID("12345678-1234-5678-1234-567812345678")
    entry = audit.record(session, actor="alice", action="act.detail", detail={"zone": "b", "at": when, "id": ident})
    audit.append_pending(session)
    session.expire_all()
    stored = session.get(AuditEntry, entry.seq)
    assert stored.detail == '{"at":"2026-12-01","id":"12345678-1234-5678-1234-567812345678","zone":"b"}'
    assert audit.record(session, actor="alice", action="act.bare").detail == "{}"


def test_an_entry_is_stamped_now_in_utc_to_the_second(session) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    entry = audit.record(session, actor="alice", action="act.when")
    after = datetime.now(UTC)
    assert entry.at.microsecond == 0
    assert entry.at.utcoffset() == timedelta(0)
    assert before <= entry.at <= after
