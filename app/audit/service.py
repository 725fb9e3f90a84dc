"""Writing and verifying the audit chain.

Each entry stores an HMAC-SHA256 link over a canonical encoding of itself and the previous entry's
link (format: ``app.audit.link``), under an audit key from the key provider that never reaches the
database: editing, inserting or deleting any row breaks the chain at that row, and nobody without the
key can recompute it. A checkpoint of the head (``seq-link``) goes to the server log every
``audit_checkpoint_every`` entries, and every ``audit_checkpoint_minutes`` the head moved (at the next
entry, or by the server's timer in ``app.audit.checkpoints``); kept outside the database, it shows
when a tail was cut off or rewritten. Entries share the transaction of the change they record:
neither exists without the other.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, insert, select, text, update
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from app.audit import link
from app.audit.link import GENESIS
from app.audit.models import AuditEntry
from app.crypto import purpose
from app.crypto import service as crypto
from app.crypto.errors import CryptoError
from app.db import AUDIT_STAGE, commit_step, reads_table

log = logging.getLogger("helpline.audit")
_ADVISORY_LOCK = 0x48454C50  # "HELP": serialises chain appends on PostgreSQL

SYSTEM = "system"


def _key(session: Session, kid: int | None = None) -> tuple[int, bytes]:
    return purpose.purpose_key(crypto.keyring_of(session), purpose.AUDIT, root_id=kid)


def entry_hash(session: Session, entry: AuditEntry) -> str:
    """The link ``entry`` must carry, under the audit key it names (the current one if none yet)."""
    kid, key = _key(session, entry.key_id)
    return link.keyed_link(
        key,
        kid=kid,
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        detail=entry.detail,
        prev=entry.prev_hash,
    )


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    detail: Mapping[str, object] | None = None,
) -> AuditEntry:
    """Note an entry for the caller's transaction; it is appended to the chain at commit.

    ``detail`` must hold no decrypted value. The entry gets its place in the chain (``seq``, ``prev_hash``,
    ``hash``) when it is appended: at commit (``AUDIT_STAGE`` of the unit of work), or earlier when the
    transaction reads the audit log (its own entries must be there to count) or ``append_pending`` is
    called. So the chain's lock is held from the final append to the commit, not from the first entry.
    An entry noted inside a savepoint that is rolled back is dropped with it.
    """
    entry = AuditEntry(
        at=datetime.now(UTC).replace(microsecond=0),
        actor=actor,
        action=action,
        target=target,
        detail=json.dumps(dict(detail or {}), sort_keys=True, separators=(",", ":"), default=str),
    )
    # Rows changed through the ORM so far are written now, as before the entry was deferred: services
    # read back what they wrote before an entry. Nothing to write (the Core intake path) costs nothing.
    session.flush()
    # The transaction the entry belongs to, begun now if need be (no I/O until a statement runs).
    root = session.get_transaction() or session.begin()
    held = session.info.get(_PENDING)
    if held is None or held[0] is not root:
        fresh: list[tuple[AuditEntry, SessionTransaction]] = []
        held = (root, fresh)
        session.info[_PENDING] = held
    held[1].append((entry, session.get_nested_transaction() or root))
    return entry


def record_many(session: Session, entries: Sequence[tuple[str, str, str | None, Mapping[str, object] | None]]) -> None:
    """Note (actor, action, target, detail) entries for the caller's transaction, as that many ``record``
    calls would: they are chained, keyed and checkpointed together at commit, with one INSERT
    (``append_pending``). For writers of many records in one transaction (``app.bulk``); ``detail`` must
    hold no decrypted value.
    """
    for actor, action, target, detail in entries:
        record(session, actor=actor, action=action, target=target, detail=detail)


_TAIL = "audit_tail"
_PENDING = "audit_pending"
_IN_SAVEPOINT = "audit_appended_in_savepoint"
_INSERT = insert(AuditEntry)


@commit_step(AUDIT_STAGE)
def append_pending(session: Session) -> None:
    """Append the transaction's noted entries to the chain now, in the order they were noted.

    Every row of the transaction is written first (an ORM flush): the chain's lock comes after the
    domain rows in the lock order (``app/db.py``), and is then held to the commit.
    """
    held = session.info.get(_PENDING)
    if held is None or held[0] is not session.get_transaction() or not held[1]:
        session.info.pop(_PENDING, None)
        return
    session.flush()
    noted = list(held[1])
    entries = [entry for entry, _where in noted]
    held[1].clear()
    savepoint = session.get_nested_transaction()
    if savepoint is not None:
        # Appended inside a savepoint (a read of the log there): should it roll back, the entries noted
        # outside it must not go with it. They are noted again then (see the rollback listener).
        outside = [(e, where, savepoint) for e, where in noted if not _within(where, savepoint)]
        session.info.setdefault(_IN_SAVEPOINT, []).extend(outside)
    seq, prev = _next_link(session)
    kid = _key(session)[0]
    rows = []
    for entry in entries:
        entry.seq, entry.prev_hash, entry.key_id = seq, prev, kid
        entry.hash = entry_hash(session, entry)
        rows.append(
            {
                "seq": seq,
                "at": entry.at,
                "actor": entry.actor,
                "action": entry.action,
                "target": entry.target,
                "detail": entry.detail,
                "prev_hash": prev,
                "hash": entry.hash,
                "key_id": kid,
            }
        )
        seq, prev = seq + 1, entry.hash
    session.connection().execute(_INSERT, rows)
    session.info.pop(_PENDING, None)
    last = entries[-1]
    session.info[_TAIL] = (session.get_transaction(), last.seq, last.hash)
    for entry in entries:
        _maybe_checkpoint(session, entry)


def _next_link(session: Session) -> tuple[int, str]:
    """The next sequence number and the hash to chain to.

    The chain's tail is read once per transaction and then kept: the transaction holds the write lock
    (SQLite BEGIN IMMEDIATE, or the advisory lock below on PostgreSQL) until it ends, so nobody else can
    append meanwhile. Any rollback forgets the kept tail (see the listeners below).
    """
    cached = session.info.get(_TAIL)
    if cached is not None and cached[0] is session.get_transaction():
        return cached[1] + 1, cached[2]
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK, {"k": _ADVISORY_LOCK})
    last = conn.execute(_LAST).first()
    return (last[0] + 1, last[1]) if last else (1, GENESIS)


_LOCK = text("SELECT pg_advisory_xact_lock(:k)")
_LAST = select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)


@event.listens_for(Session, "after_soft_rollback")
def _forget_tail_on_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    session.info.pop(_TAIL, None)
    session.info.pop(_PENDING_CHECKPOINT, None)
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_IN_SAVEPOINT, None)
        return
    # Entries noted before a savepoint but appended inside it went with its rollback: noted again.
    appended = session.info.get(_IN_SAVEPOINT, [])
    again = [(e, where) for e, where, sp in appended if _within(sp, previous_transaction)]
    appended[:] = [item for item in appended if not _within(item[2], previous_transaction)]
    held = session.info.get(_PENDING)
    root = previous_transaction
    while root.parent is not None:
        root = root.parent
    if again:
        for entry, _where in again:
            entry.seq = entry.prev_hash = entry.hash = entry.key_id = None  # type: ignore[assignment]
        if held is None or held[0] is not root:
            fresh: list[tuple[AuditEntry, SessionTransaction]] = []
            held = (root, fresh)
            session.info[_PENDING] = held
        held[1][:0] = again
    if held is None:
        return
    # A rolled-back savepoint drops the entries noted inside it (and inside savepoints within it).
    held[1][:] = [(e, where) for e, where in held[1] if not _within(where, previous_transaction)]


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "do_orm_execute")
def _pending_before_reading(state: ORMExecuteState) -> None:
    # A transaction that reads the audit log (an hourly limit counting this person's entries) must
    # find its own entries there: they are appended first.
    held = state.session.info.get(_PENDING)
    if held is not None and held[1] and state.is_select and reads_table(state.statement, AuditEntry.__table__):
        append_pending(state.session)


# -- checkpoints: the head, written outside the database ---------------------------------------

_PENDING_CHECKPOINT = "audit_checkpoint"
_last_checkpoint: dict[str, float | int] = {"at": 0.0, "seq": 0}
_checkpoint_lock = threading.Lock()
CHECKPOINT_RE = re.compile(r"(?<![0-9a-f-])([0-9]+)-([0-9a-f]{64})(?![0-9a-f])")


def checkpoint_value(seq: int, mac: str) -> str:
    """A checkpoint as one word: ``SEQ-LINK``."""
    return f"{seq}-{mac}"


def _maybe_checkpoint(session: Session, entry: AuditEntry) -> None:
    settings = crypto.settings_of(session)
    due = entry.seq % settings.audit_checkpoint_every == 0
    if not due:
        with _checkpoint_lock:
            due = time.monotonic() - _last_checkpoint["at"] >= settings.audit_checkpoint_minutes * 60
    if due:
        # Logged only once the transaction commits: a rolled-back entry must never become a checkpoint.
        session.info[_PENDING_CHECKPOINT] = (entry.seq, entry.hash)


@event.listens_for(Session, "after_commit")
def _log_checkpoint(session: Session) -> None:
    if session.get_transaction() is None:  # the root committed (a released savepoint leaves it open)
        session.info.pop(_IN_SAVEPOINT, None)
    pending = session.info.pop(_PENDING_CHECKPOINT, None)
    if pending is not None:
        log_checkpoint(*pending)


def log_checkpoint(seq: int, mac: str) -> None:
    """Write the head to the server log; keep these lines (or ``audit head``) outside the database."""
    with _checkpoint_lock:
        _last_checkpoint["at"] = time.monotonic()
        _last_checkpoint["seq"] = max(seq, int(_last_checkpoint["seq"]))
    log.info("audit checkpoint %s", checkpoint_value(seq, mac))


def log_checkpoint_if_moved(seq: int, mac: str) -> bool:
    """Log the head unless this process already logged it or a later one (the timer's rule)."""
    with _checkpoint_lock:
        if seq <= int(_last_checkpoint["seq"]):
            return False
    log_checkpoint(seq, mac)
    return True


def head(session: Session) -> tuple[int, str] | None:
    """The chain's last entry as (seq, link), or None for an empty chain."""
    session.flush()
    append_pending(session)
    row = session.execute(select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)).first()
    return (int(row[0]), str(row[1])) if row else None


def parse_checkpoint(value: str) -> tuple[int, str]:
    """A checkpoint given as the value itself or as a file (a saved ``audit head`` output or a server
    log): the last checkpoint in it counts. ValueError if there is none."""
    text_value = value
    path = Path(value)
    if not CHECKPOINT_RE.fullmatch(value.strip()) and path.is_file():
        text_value = path.read_text("utf-8", errors="replace")
    found = CHECKPOINT_RE.findall(text_value)
    if not found:
        raise ValueError("no checkpoint (SEQ-LINK, as printed by 'helpline audit head') in it")
    seq, mac = found[-1]
    return int(seq), mac


# No listener on commit: the kept tail names its root transaction, so a new transaction never uses it,
# and a released savepoint (which SQLAlchemy also reports as a commit) leaves it valid.


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str


def verify(session: Session, *, batch: int = 5000) -> tuple[int, ChainBreak | None]:
    """Walk the chain; returns (entries checked, first break or None)."""
    session.flush()
    append_pending(session)
    expected_prev, expected_seq, checked = GENESIS, 1, 0
    for entry in _walk(session, batch=batch):
        if entry.seq != expected_seq:
            return checked, ChainBreak(expected_seq, f"entry {expected_seq} is missing (next is {entry.seq})")
        if entry.prev_hash != expected_prev:
            return checked, ChainBreak(entry.seq, f"entry {entry.seq} does not follow entry {entry.seq - 1}")
        if entry.key_id is None:
            return checked, ChainBreak(entry.seq, f"entry {entry.seq} is not keyed: run 'helpline migrate'")
        try:
            expected = entry_hash(session, entry)
        except CryptoError:
            return checked, ChainBreak(
                entry.seq, f"entry {entry.seq} is under audit key {entry.key_id}, which the key provider does not hold"
            )
        if not link.same(expected, entry.hash):
            return checked, ChainBreak(entry.seq, f"entry {entry.seq} was altered")
        expected_prev, expected_seq = entry.hash, entry.seq + 1
        checked += 1
    return checked, None


def check_checkpoint(session: Session, *, seq: int, mac: str) -> str | None:
    """None if the chain still holds the checkpointed entry unchanged; else what happened to the tail.

    Run after ``verify``: the chain up to its head is then known to be whole under the key, so the only
    ways to miss a checkpoint are a tail cut off at or before it, or a history that differs from it.
    """
    session.flush()
    last = head(session)
    if last is None or last[0] < seq:
        ends = f"ends at entry {last[0]}" if last else "is empty"
        return f"truncated: the chain {ends}, but the checkpoint names entry {seq}"
    stored = session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == seq))
    if stored is None:
        return f"truncated: entry {seq} of the checkpoint is missing"
    if not link.same(stored, mac):
        return f"rewritten: entry {seq} is not the one the checkpoint names"
    return None


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


# -- keying a chain written before the audit key ---------------------------------------------


def key_legacy_chain(session: Session) -> int | None:
    """Re-link, once, a chain written with plain SHA-256 under the audit key; None if nothing to do.

    The old links are checked first and the outcome is recorded in the chain itself (``audit.chain_keyed``
    with the number of entries re-linked and where, if anywhere, the old chain was already broken), so
    the re-link cannot pass unseen. Refuses a chain that mixes keyed and unkeyed entries: that is no
    upgrade, it is someone stripping keys to have them re-made.
    """
    unkeyed = session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.key_id.is_(None)))
    if not unkeyed:
        return None
    if session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.key_id.is_not(None))):
        raise CryptoError(
            "the audit chain mixes keyed and unkeyed entries; refusing to re-link it (run 'helpline audit verify')"
        )
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK})
    kid, key = _key(session)
    legacy_prev, new_prev, expected_seq, legacy_break = GENESIS, GENESIS, 1, None
    relinked = 0
    for entry in _walk(session, batch=5000):
        fields: dict[str, Any] = {
            "seq": entry.seq,
            "at": entry.at,
            "actor": entry.actor,
            "action": entry.action,
            "target": entry.target,
            "detail": entry.detail,
        }
        if legacy_break is None and (
            entry.seq != expected_seq
            or entry.prev_hash != legacy_prev
            or link.legacy_hash(**fields, prev=entry.prev_hash) != entry.hash
        ):
            legacy_break = entry.seq
        legacy_prev, expected_seq = entry.hash, entry.seq + 1
        new_link = link.keyed_link(key, kid=kid, **fields, prev=new_prev)
        session.execute(
            update(AuditEntry)
            .where(AuditEntry.seq == entry.seq)
            .values(prev_hash=new_prev, hash=new_link, key_id=kid)
            .execution_options(synchronize_session=False)
        )
        new_prev = new_link
        relinked += 1
    session.info.pop(_TAIL, None)
    detail: dict[str, object] = {"relinked": relinked, "key": kid}
    if legacy_break is not None:
        detail["unkeyed_chain_broken_at"] = legacy_break
    record(session, actor=SYSTEM, action="audit.chain_keyed", detail=detail)
    append_pending(session)
    return relinked


# The seal hooks ride on this module: whatever writes an account or a case also writes the audit chain.
from app.audit import seals as _seals  # noqa: E402,F401
