"""The audit chain against the edits and the session patterns its first tests did not try.

These check behaviour (what verify reports, which fields an entry's hash depends on), never the hash
bytes, so they hold for any chaining function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, timedelta, timezone

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import bootstrap
from app.audit import service as audit
from app.audit.models import AuditEntry
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.db import make_engine, session_factory
from tests.conftest import make_settings


def _chain(session: Session, n: int) -> list[AuditEntry]:
    entries = [audit.record(session, actor="alice", action=f"act.{i}", target="C-AAAA-11") for i in range(n)]
    audit.append_pending(session)
    session.flush()
    return entries


def _copy(entry: AuditEntry, **changes: object) -> AuditEntry:
    fields = ("seq", "at", "actor", "action", "target", "detail", "prev_hash")
    return AuditEntry(**{name: changes.get(name, getattr(entry, name)) for name in fields})


def _verify_after(session: Session) -> audit.ChainBreak | None:
    session.expire_all()
    _, broken = audit.verify(session)
    return broken


def test_editing_the_time_of_an_entry_is_caught(session) -> None:
    victim = _chain(session, 4)[1]
    session.execute(update(AuditEntry).where(AuditEntry.seq == victim.seq).values(at=victim.at - timedelta(days=1)))
    broken = _verify_after(session)
    assert broken is not None and broken.seq == victim.seq
    assert broken.reason == f"entry {victim.seq} was altered"


def test_editing_the_time_by_one_second_is_caught(session) -> None:
    victim = _chain(session, 3)[2]
    session.execute(update(AuditEntry).where(AuditEntry.seq == victim.seq).values(at=victim.at + timedelta(seconds=1)))
    broken = _verify_after(session)
    assert broken is not None and broken.seq == victim.seq


def test_editing_the_link_to_the_previous_entry_is_caught(session) -> None:
    entries = _chain(session, 4)
    victim = entries[2]
    session.execute(update(AuditEntry).where(AuditEntry.seq == victim.seq).values(prev_hash=entries[0].hash))
    broken = _verify_after(session)
    assert broken is not None and broken.seq == victim.seq
    assert broken.reason == f"entry {victim.seq} does not follow entry {victim.seq - 1}"


def test_editing_a_stored_hash_is_caught_at_that_entry_or_the_next(session) -> None:
    entries = _chain(session, 4)
    victim = entries[1]
    session.execute(update(AuditEntry).where(AuditEntry.seq == victim.seq).values(hash="f" * 64))
    broken = _verify_after(session)
    assert broken is not None and broken.seq == victim.seq


def test_renumbering_the_last_entry_is_caught(session) -> None:
    seq = _chain(session, 3)[-1].seq
    session.execute(update(AuditEntry).where(AuditEntry.seq == seq).values(seq=seq + 1))
    broken = _verify_after(session)
    assert broken is not None and broken.seq == seq
    assert broken.reason == f"entry {seq} is missing (next is {seq + 1})"


def test_a_verified_chain_counts_every_entry(session) -> None:
    before, broken = audit.verify(session)
    assert broken is None
    _chain(session, 5)
    after, broken = audit.verify(session, batch=2)
    assert broken is None and after == before + 5


@pytest.mark.parametrize("field", ["seq", "at", "actor", "action", "target", "detail", "prev_hash"])
def test_the_entry_hash_depends_on_every_stored_field(session, field: str) -> None:
    entry = _chain(session, 2)[1]
    changed = {
        "seq": entry.seq + 1,
        "at": entry.at + timedelta(seconds=1),
        "actor": "mallory",
        "action": "act.other",
        "target": "C-ZZZZ-99",
        "detail": '{"x":1}',
        "prev_hash": "0" * 64,
    }[field]
    assert audit.entry_hash(session, _copy(entry)) == entry.hash
    assert audit.entry_hash(session, _copy(entry, **{field: changed})) != entry.hash


def test_a_naive_time_from_sqlite_hashes_as_the_same_utc_moment(session) -> None:
    entry = _chain(session, 1)[0]
    assert audit.entry_hash(session, _copy(entry, at=entry.at.replace(tzinfo=None))) == entry.hash


@pytest.fixture
def fresh(database_url_factory, backend, tmp_path) -> Iterator[Callable[[], Session]]:
    """Sessions of a database of its own, whose commits are real and whose chain starts empty."""
    settings = make_settings(tmp_path, database_url=database_url_factory(backend))
    bootstrap.migrate(settings)
    engine = make_engine(settings)
    keyring = get_keyring(settings)
    opened: list[Session] = []

    def make() -> Session:
        s = session_factory(engine)()
        crypto.bind(s, settings=settings, keyring=keyring)
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()
    engine.dispose()


def test_first_entry_of_an_empty_chain_starts_at_one_from_genesis(fresh) -> None:
    s = fresh()
    s.execute(AuditEntry.__table__.delete())
    first = audit.record(s, actor="alice", action="act.first")
    audit.append_pending(s)
    assert (first.seq, first.prev_hash) == (1, audit.GENESIS)
    assert audit.GENESIS == "0" * 64
    s.rollback()


def test_two_sessions_appending_in_turn_keep_one_chain(fresh) -> None:
    """Long-lived sessions (CLI batches, workers) commit and go on: a kept tail must not outlive its transaction."""
    a, b = fresh(), fresh()
    written = []
    for turn in range(3):
        for name, s in (("a", a), ("b", b)):
            entry = audit.record(s, actor=name, action=f"act.{turn}")
            audit.record(s, actor=name, action=f"act.{turn}.again")
            s.commit()
            written.append(entry.seq)
    check = fresh()
    seqs = check.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)).all()
    assert seqs == list(range(1, len(seqs) + 1))
    _, broken = audit.verify(check)
    assert broken is None
    actions = check.scalars(
        select(AuditEntry.action).where(AuditEntry.action.like("act.%")).order_by(AuditEntry.seq)
    ).all()
    assert actions == [f"act.{t}{again}" for t in range(3) for _ in "ab" for again in ("", ".again")]
    assert written == sorted(written) and len(set(written)) == 6


def test_a_session_that_rolled_back_reads_the_tail_again(fresh) -> None:
    a, b = fresh(), fresh()
    audit.record(a, actor="a", action="act.undone")
    a.rollback()
    audit.record(b, actor="b", action="act.kept")
    b.commit()
    entry = audit.record(a, actor="a", action="act.after")
    a.commit()
    check = fresh()
    _, broken = audit.verify(check)
    assert broken is None
    assert check.scalar(select(AuditEntry.action).where(AuditEntry.seq == entry.seq - 1)) == "act.kept"


def test_the_hash_reads_naive_times_as_utc_whatever_the_local_zone(session, tokyo_clock) -> None:
    entry = _chain(session, 1)[0]
    assert audit.entry_hash(session, _copy(entry, at=entry.at.replace(tzinfo=None))) == entry.hash


def test_the_hash_of_an_aware_time_is_that_of_the_same_moment_in_utc(session, tokyo_clock) -> None:
    entry = _chain(session, 1)[0]
    moscow = entry.at.astimezone(timezone(timedelta(hours=3)))
    assert audit.entry_hash(session, _copy(entry, at=moscow)) == entry.hash
    assert audit.entry_hash(session, _copy(entry, at=moscow.replace(tzinfo=UTC))) != entry.hash


def test_verify_counts_exactly_the_entries_of_the_chain(fresh) -> None:
    s = fresh()
    s.execute(AuditEntry.__table__.delete())
    assert audit.verify(s) == (0, None)
    for i in range(3):
        audit.record(s, actor="alice", action=f"act.{i}")
    assert audit.verify(s, batch=2) == (3, None)
    s.rollback()


def test_an_entry_stores_what_it_was_given(session) -> None:
    entry = audit.record(session, actor="alice", action="case.read", target="C-AAAA-11", detail={"rows": 2})
    audit.append_pending(session)
    session.expire_all()
    stored = session.get(AuditEntry, entry.seq)
    assert (stored.actor, stored.action, stored.target, stored.detail) == (
        "alice",
        "case.read",
        "C-AAAA-11",
        '{"rows":2}',
    )
    assert audit.record(session, actor="alice", action="act.untargeted").target is None


def test_names_in_other_scripts_are_chained_and_verified(session) -> None:
    """Usernames may be Cyrillic; the canonical form must still encode and verify."""
    entry = audit.record(session, actor="Амина", action="case.read", target="C-ЖЖЖЖ-11", detail={"note": "Ахмед"})
    audit.append_pending(session)
    assert audit.entry_hash(session, entry) == entry.hash
    _, broken = audit.verify(session)
    assert broken is None
