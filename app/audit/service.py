"""Writing and verifying the audit chain.

Each entry stores SHA-256 over a canonical encoding of itself and the previous entry's hash, so
editing, inserting or deleting any row breaks the chain at that row. Entries share the
transaction of the change they record: neither exists without the other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from app.audit.models import AuditEntry

GENESIS = "0" * 64
_ADVISORY_LOCK = 0x48454C50  # "HELP": serialises chain appends on PostgreSQL

SYSTEM = "system"


def _utc(at: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were written as UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def canonical(*, seq: int, at: datetime, actor: str, action: str, target: str | None, detail: str, prev: str) -> bytes:
    doc = {
        "seq": seq,
        "at": _utc(at).strftime("%Y-%m-%dT%H:%M:%S"),
        "actor": actor,
        "action": action,
        "target": target,
        "detail": detail,
        "prev": prev,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def entry_hash(entry: AuditEntry) -> str:
    return hashlib.sha256(
        canonical(
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            detail=entry.detail,
            prev=entry.prev_hash,
        )
    ).hexdigest()


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    detail: Mapping[str, object] | None = None,
) -> AuditEntry:
    """Append an entry in the caller's transaction. ``detail`` must hold no decrypted value."""
    seq, prev = _next_link(session)
    entry = AuditEntry(
        seq=seq,
        at=datetime.now(UTC).replace(microsecond=0),
        actor=actor,
        action=action,
        target=target,
        detail=json.dumps(dict(detail or {}), sort_keys=True, separators=(",", ":"), default=str),
        prev_hash=prev,
    )
    entry.hash = entry_hash(entry)
    session.add(entry)
    # Flushed at once: services count on reading back what they wrote before this entry.
    session.flush()
    session.info[_TAIL] = (session.get_transaction(), entry.seq, entry.hash)
    return entry


_TAIL = "audit_tail"


def _next_link(session: Session) -> tuple[int, str]:
    """The next sequence number and the hash to chain to.

    The chain's tail is read once per transaction and then kept: the transaction holds the write lock
    (SQLite BEGIN IMMEDIATE, or the advisory lock below on PostgreSQL) until it ends, so nobody else can
    append meanwhile. Any rollback forgets the kept tail (see the listeners below).
    """
    cached = session.info.get(_TAIL)
    if cached is not None and cached[0] is session.get_transaction():
        return cached[1] + 1, cached[2]
    session.flush()  # entries still pending in this transaction must be seen by the read below
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK})
    last = session.execute(select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)).first()
    return (last[0] + 1, last[1]) if last else (1, GENESIS)


@event.listens_for(Session, "after_soft_rollback")
def _forget_tail_on_rollback(session: Session, previous_transaction: object) -> None:
    session.info.pop(_TAIL, None)


# No listener on commit: the kept tail names its root transaction, so a new transaction never uses it,
# and a released savepoint (which SQLAlchemy also reports as a commit) leaves it valid.


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str


def verify(session: Session, *, batch: int = 5000) -> tuple[int, ChainBreak | None]:
    """Walk the chain; returns (entries checked, first break or None)."""
    session.flush()
    expected_prev, expected_seq, checked = GENESIS, 1, 0
    for entry in _walk(session, batch=batch):
        if entry.seq != expected_seq:
            return checked, ChainBreak(expected_seq, f"entry {expected_seq} is missing (next is {entry.seq})")
        if entry.prev_hash != expected_prev:
            return checked, ChainBreak(entry.seq, f"entry {entry.seq} does not follow entry {entry.seq - 1}")
        if entry_hash(entry) != entry.hash:
            return checked, ChainBreak(entry.seq, f"entry {entry.seq} was altered")
        expected_prev, expected_seq = entry.hash, entry.seq + 1
        checked += 1
    return checked, None


def _walk(session: Session, *, batch: int) -> Iterator[AuditEntry]:
    after = 0
    while True:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq
        session.expunge_all()
