"""Rebuilding the blind indexes under a new epoch: a fresh index root key and, if asked, a new width.

The width of a blind index should follow the number of rows (DESIGN.md: 2 <= rows/2^N <= sqrt(rows)):
12 bits suit 10k-50k rows, a million rows want about 16. A rebuild makes epoch E+1 the active one,
re-computes every subject's entry from its decrypted handle in batches (each its own transaction, so an
interrupted run is finished by running it again), then deletes the older epochs' entries and root keys.
While it runs, a look-up sees only the subjects already moved: run it at a quiet hour.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.cases.models import Case
from app.config import Settings
from app.contacts.models import Contact, FlaggedHandle
from app.crypto import service as crypto
from app.crypto.keyring import Keyring
from app.crypto.models import BlindIndexEntry, IndexKey
from app.db import unit_of_work

# (model, table name for the envelope, blind-index column name)
INDEXED: tuple[tuple[Any, str, str], ...] = (
    (Contact, "contact", "contact.handle"),
    (Case, "evacuation_case", "case.handle"),
    (FlaggedHandle, "flagged_handle", "flagged_handle.handle"),
)


@dataclass(frozen=True)
class ReindexResult:
    epoch: int
    bits: int
    indexed: int
    skipped: int
    retired_epochs: list[int]


def _bound(session: Session, settings: Settings, keyring: Keyring) -> Session:
    return crypto.bind(session, settings=settings, keyring=keyring)


def _active(session: Session) -> tuple[int, int]:
    row = session.execute(select(IndexKey.epoch, IndexKey.bits).order_by(IndexKey.epoch.desc()).limit(1)).one()
    return int(row[0]), int(row[1])


def reindex(
    *,
    engine: Engine,
    settings: Settings,
    keyring: Keyring,
    bits: int | None = None,
    batch_size: int = 2000,
    actor: str = "cli",
    progress: Callable[[int, int], None] | None = None,
) -> ReindexResult:
    """Move every blind-index entry to a new epoch (new root key, optional new width); resumable."""
    with unit_of_work(engine) as session:
        _bound(session, settings, keyring)
        epoch, width = _active(session)
        older = session.scalar(select(func.count()).select_from(IndexKey).where(IndexKey.epoch < epoch)) or 0
        # Start a new epoch unless an interrupted rebuild (older epochs still present) is being finished
        # with no new width asked for.
        if not older or (bits is not None and bits != width):
            epoch = crypto.new_index_epoch(session, bits=bits if bits is not None else width)
            width = bits if bits is not None else width
        audit.record(session, actor=actor, action="keys.reindex", detail={"epoch": epoch, "bits": width})
    keyring.index_epoch = None

    total = 0
    with engine.connect() as conn:
        for model, _, _ in INDEXED:
            total += conn.scalar(select(func.count()).select_from(model).where(model.handle_ct.is_not(None))) or 0
    done = skipped = 0
    for model, table, column in INDEXED:
        while True:
            with unit_of_work(engine) as session:
                _bound(session, settings, keyring)
                moved = (
                    select(BlindIndexEntry.subject_id)
                    .where(BlindIndexEntry.column == column, BlindIndexEntry.epoch == epoch)
                    .scalar_subquery()
                )
                rows = session.execute(
                    select(model.id, model.handle_ct)
                    .where(model.handle_ct.is_not(None), model.id.not_in(moved))
                    .order_by(model.id)
                    .limit(batch_size)
                ).all()
                if not rows:
                    break
                for row_id, blob in rows:
                    handle = _open(session, blob, table=table, row_id=row_id)
                    if handle is None:
                        skipped += 1
                        # A placeholder keeps an unreadable subject from being retried forever.
                        session.add(BlindIndexEntry(subject_id=row_id, column=column, epoch=epoch, bucket=-1))
                        continue
                    _, bucket = crypto.index_bucket(session, handle, column=column, epoch=epoch, bits=width)
                    session.add(BlindIndexEntry(subject_id=row_id, column=column, epoch=epoch, bucket=bucket))
                done += len(rows)
            if progress:
                progress(done, total)

    with unit_of_work(engine) as session:
        _bound(session, settings, keyring)
        retired = list(session.scalars(select(IndexKey.epoch).where(IndexKey.epoch < epoch)))
        session.execute(delete(BlindIndexEntry).where(BlindIndexEntry.epoch < epoch))
        session.execute(delete(BlindIndexEntry).where(BlindIndexEntry.bucket == -1))
        session.execute(delete(IndexKey).where(IndexKey.epoch < epoch))
        audit.record(
            session,
            actor=actor,
            action="keys.reindex_done",
            detail={"epoch": epoch, "bits": width, "indexed": done - skipped, "retired": retired},
        )
    keyring.clear()
    return ReindexResult(epoch=epoch, bits=width, indexed=done - skipped, skipped=skipped, retired_epochs=retired)


def _open(session: Session, blob: bytes, *, table: str, row_id: uuid.UUID) -> str | None:
    try:
        return crypto.open_field(session, blob, table=table, column="handle", row_id=row_id, subject_id=row_id)
    except crypto.DecryptionError:
        return None
