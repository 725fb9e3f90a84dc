"""Keying a chain written before the audit key: every entry re-linked, and the old chain's state recorded."""

from __future__ import annotations

import json

from sqlalchemy import delete, select, update

from app.audit import link
from app.audit import service as audit
from app.audit.models import AuditEntry
from app.crypto import purpose
from app.crypto import service as crypto
from tests.audit.test_keyed_chain import _legacy_chain


def _marker(session) -> dict[str, object]:
    entry = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()
    assert entry.action == "audit.chain_keyed" and entry.actor == audit.SYSTEM
    return json.loads(entry.detail)


def _rehash(session, seq: int, **changes: object) -> None:
    """Change an unkeyed entry and give it the SHA-256 link of what it now holds, as a forger would."""
    entry = session.scalars(select(AuditEntry).where(AuditEntry.seq == seq)).one()
    fields = {k: getattr(entry, k) for k in ("seq", "at", "actor", "action", "target", "detail")}
    prev = str(changes.pop("prev_hash", entry.prev_hash))
    fields.update(changes)
    value = link.legacy_hash(**fields, prev=prev)  # type: ignore[arg-type]
    session.execute(update(AuditEntry).where(AuditEntry.seq == seq).values(**changes, prev_hash=prev, hash=value))
    session.expire_all()


def test_a_whole_legacy_chain_is_keyed_under_the_current_audit_key(session) -> None:
    _legacy_chain(session, 5)
    kid = purpose.purpose_key(crypto.keyring_of(session), purpose.AUDIT)[0]
    assert audit.key_legacy_chain(session) == 5
    assert _marker(session) == {"relinked": 5, "key": kid}
    session.expire_all()
    entries = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
    assert [e.key_id for e in entries] == [kid] * 6
    assert entries[0].prev_hash == link.GENESIS
    assert all(e.prev_hash == before.hash for before, e in zip(entries, entries[1:], strict=False))
    assert audit.verify(session) == (6, None)


def test_a_gap_in_the_legacy_chain_is_recorded_where_it_is(session) -> None:
    _legacy_chain(session, 6)
    session.execute(delete(AuditEntry).where(AuditEntry.seq == 3))
    _rehash(session, 4, prev_hash=session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == 2)))
    assert audit.key_legacy_chain(session) == 5
    assert _marker(session)["unkeyed_chain_broken_at"] == 4


def test_a_legacy_entry_chained_to_the_wrong_link_is_recorded(session) -> None:
    _legacy_chain(session, 5)
    _rehash(session, 3, prev_hash="e" * 64)
    audit.key_legacy_chain(session)
    assert _marker(session)["unkeyed_chain_broken_at"] == 3


def test_only_the_first_break_of_the_legacy_chain_is_recorded(session) -> None:
    _legacy_chain(session, 6)
    session.execute(update(AuditEntry).where(AuditEntry.seq.in_([2, 5])).values(actor="mallory"))
    audit.key_legacy_chain(session)
    assert _marker(session)["unkeyed_chain_broken_at"] == 2


def test_the_marker_follows_the_re_linked_chain_not_a_tail_kept_from_before(session) -> None:
    audit.record(session, actor="alice", action="act.before")
    audit.append_pending(session)  # appended: this transaction now keeps a chain tail
    kept = session.info.get("audit_tail")
    _legacy_chain(session, 4)
    session.info["audit_tail"] = kept  # as if the unkeyed rows had been written under this transaction
    assert audit.key_legacy_chain(session) == 4
    session.expire_all()
    assert audit.verify(session) == (5, None)
