"""The one path that seals and opens field values, manages subject data keys and blind indexes.

Domain services call these with their session; the session carries the keyring and settings in
``session.info`` (set by the unit of work), so nothing reaches for globals.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.crypto import blind_index, cipher
from app.crypto.errors import CryptoError, DecryptionError, ShreddedError

__all__ = ["CryptoError", "DecryptionError", "ShreddedError"]
from app.crypto.keyring import Keyring
from app.crypto.models import BlindIndexEntry, DataKey, IndexKey

# Benchmark-only envelope version: the value stored as-is so the floor of the stack can be measured.
PLAIN_VERSION = 0


@dataclass(frozen=True)
class SubjectKey:
    subject_id: uuid.UUID
    key_id: int
    dek: bytes = field(repr=False)


def bind(session: Session, *, settings: Settings, keyring: Keyring) -> Session:
    """Attach settings and keyring to a session (the unit of work does this for every request)."""
    session.info["settings"] = settings
    session.info["keyring"] = keyring
    return session


def settings_of(session: Session) -> Settings:
    try:
        return session.info["settings"]  # type: ignore[no-any-return]
    except KeyError:
        raise CryptoError("session is not bound to settings; use the unit of work") from None


def keyring_of(session: Session) -> Keyring:
    try:
        return session.info["keyring"]  # type: ignore[no-any-return]
    except KeyError:
        raise CryptoError("session is not bound to a keyring; use the unit of work") from None


def _crypto_off(session: Session) -> bool:
    return settings_of(session).bench_disable_crypto


def create_subject_key(session: Session, *, subject_id: uuid.UUID) -> SubjectKey:
    """A fresh random data key for a subject, stored wrapped under the primary KEK."""
    key_id = secrets.randbits(31) or 1
    dek = cipher.new_key()
    if _crypto_off(session):
        return SubjectKey(subject_id, key_id, dek)
    keyring = keyring_of(session)
    kek_id, wrapped = keyring.wrap_dek(dek, subject_id=subject_id, key_id=key_id)
    session.add(DataKey(subject_id=subject_id, key_id=key_id, kek_id=kek_id, wrapped=wrapped, created_on=date.today()))
    keyring.remember(subject_id, key_id, dek)
    return SubjectKey(subject_id, key_id, dek)


def _dek(session: Session, *, subject_id: uuid.UUID, key_id: int) -> bytes:
    row = session.get(DataKey, (subject_id, key_id))
    if row is None:
        raise ShreddedError("this record's data key was destroyed; its protected fields cannot be read")
    return keyring_of(session).unwrap_dek(row.wrapped, subject_id=subject_id, key_id=key_id, kek_id=row.kek_id)


def current_subject_key(session: Session, *, subject_id: uuid.UUID) -> SubjectKey:
    """The newest data key of a subject, or ShreddedError if it has none left."""
    row = session.scalars(
        select(DataKey).where(DataKey.subject_id == subject_id).order_by(DataKey.created_on.desc(), DataKey.key_id)
    ).first()
    if row is None:
        raise ShreddedError("this record's data key was destroyed; its protected fields cannot be read")
    dek = keyring_of(session).unwrap_dek(row.wrapped, subject_id=subject_id, key_id=row.key_id, kek_id=row.kek_id)
    return SubjectKey(subject_id, row.key_id, dek)


def seal_field(
    session: Session,
    value: str | None,
    *,
    key: SubjectKey,
    table: str,
    column: str,
    row_id: uuid.UUID,
) -> bytes | None:
    """Encrypt a field value bound to its table, column, row and subject; None stays None."""
    if value is None:
        return None
    if _crypto_off(session):
        return bytes([PLAIN_VERSION]) + value.encode("utf-8")
    return cipher.seal(
        value,
        dek=key.dek,
        key_id=key.key_id,
        table=table,
        column=column,
        row_id=row_id,
        subject_id=key.subject_id,
    )


def open_field(
    session: Session,
    blob: bytes | None,
    *,
    table: str,
    column: str,
    row_id: uuid.UUID,
    subject_id: uuid.UUID,
) -> str | None:
    """Decrypt a field value, or raise DecryptionError/ShreddedError; the caller audits the read."""
    if blob is None:
        return None
    if blob[:1] == bytes([PLAIN_VERSION]):
        if not _crypto_off(session):
            raise DecryptionError("refusing an unencrypted value outside benchmark mode")
        return blob[1:].decode("utf-8")
    key_id = cipher.envelope_key_id(blob)
    dek = _dek(session, subject_id=subject_id, key_id=key_id)
    return cipher.open_(blob, dek=dek, table=table, column=column, row_id=row_id, subject_id=subject_id)


# --- blind indexes -------------------------------------------------------------------------


def ensure_index_root(session: Session) -> int:
    """Create the first blind-index root key if none exists; returns the active epoch."""
    epoch = session.scalar(select(func.max(IndexKey.epoch)))
    if epoch is not None:
        return int(epoch)
    return new_index_epoch(session)


def new_index_epoch(session: Session, *, bits: int | None = None) -> int:
    """Start a new index epoch with a fresh root key and bucket width (the index must then be rebuilt)."""
    current = session.scalar(select(func.max(IndexKey.epoch))) or 0
    epoch = int(current) + 1
    root = cipher.new_key()
    subject = index_subject(epoch)
    kek_id, wrapped = keyring_of(session).wrap_dek(root, subject_id=subject, key_id=epoch)
    width = bits if bits is not None else settings_of(session).index_bits
    session.add(IndexKey(epoch=epoch, kek_id=kek_id, wrapped=wrapped, created_on=date.today(), bits=width))
    session.flush()
    keyring_of(session).index_epoch = None
    return epoch


def index_subject(epoch: int) -> uuid.UUID:
    """The subject id an index root key of ``epoch`` is wrapped to (key rotation re-wraps it)."""
    return uuid.uuid5(uuid.NAMESPACE_OID, f"helpline-index-root-{epoch}")


# The active epoch is re-read from the database at most this often, so every intake does not ask
# for it; a new epoch (an index rebuild) reaches running servers within this many seconds.
EPOCH_TTL_SECONDS = 30.0


def _active_epoch(session: Session, keyring: Keyring) -> tuple[int, int]:
    """(epoch, bits) of the index in use: the newest epoch, re-read at most every EPOCH_TTL_SECONDS."""
    cached = keyring.index_epoch
    now = time.monotonic()
    if cached is not None and now - cached[2] < EPOCH_TTL_SECONDS:
        return cached[0], cached[1]
    row = session.execute(select(IndexKey.epoch, IndexKey.bits).order_by(IndexKey.epoch.desc()).limit(1)).first()
    if row is None:
        raise CryptoError("no blind-index key: run 'helpline init' or 'helpline migrate'")
    keyring.index_epoch = (int(row[0]), int(row[1]), now)
    return int(row[0]), int(row[1])


def active_index_key(session: Session, *, column: str) -> tuple[int, int, bytes]:
    """(epoch, bits, derived key) of a column's active blind index, for bulk loaders that index in batches."""
    epoch, bits = _active_epoch(session, keyring_of(session))
    return epoch, bits, _epoch_key(session, column=column, epoch=epoch)


def _index_key(session: Session, *, column: str) -> tuple[int, bytes]:
    epoch, _, key = active_index_key(session, column=column)
    return epoch, key


def _epoch_key(session: Session, *, column: str, epoch: int) -> bytes:
    keyring = keyring_of(session)
    derived = keyring.index_keys.get((column, epoch))
    if derived is not None:
        return derived
    root = keyring.index_roots.get(epoch)
    if root is None:
        row = session.get(IndexKey, epoch)
        if row is None:
            raise CryptoError(f"blind-index epoch {epoch} does not exist")
        root = keyring.provider.unwrap(
            row.kek_id,
            row.wrapped,
            cipher.dek_aad(subject_id=index_subject(epoch), key_id=epoch, kek_id=row.kek_id),
        )
        keyring.index_roots[epoch] = root
    derived = blind_index.derive_index_key(root, column=column, epoch=epoch)
    keyring.index_keys[(column, epoch)] = derived
    return derived


def index_bucket(
    session: Session, value: str, *, column: str, epoch: int | None = None, bits: int | None = None
) -> tuple[int, int]:
    """(epoch, bucket) of a value's blind index in a column, after normalising it.

    The width comes from the epoch itself, never from the current setting, so changing
    HELPLINE_INDEX_BITS cannot move existing entries; a new width needs a new epoch.
    """
    if epoch is None or bits is None:
        epoch, bits = _active_epoch(session, keyring_of(session))
    key = _epoch_key(session, column=column, epoch=epoch)
    return epoch, blind_index.bucket(key, blind_index.normalise_handle(value), bits=bits)


def add_index_entry(
    session: Session, *, subject_id: uuid.UUID, column: str, value: str | None, replace: bool = False
) -> None:
    """Record a subject's value in a blind index (nothing is stored for an empty value).

    A new subject has no entry yet, so the default skips the look-up; pass ``replace`` when re-indexing.
    """
    if not value or _crypto_off(session):
        return
    epoch, bucket = index_bucket(session, value, column=column)
    entry = session.get(BlindIndexEntry, (subject_id, column, epoch)) if replace else None
    if entry is None:
        session.add(BlindIndexEntry(subject_id=subject_id, column=column, epoch=epoch, bucket=bucket))
    else:
        entry.bucket = bucket


def drop_index_entries(session: Session, *, subject_id: uuid.UUID, column: str) -> None:
    """Forget a subject's entries in one column's index (its value was corrected or removed)."""
    session.execute(
        delete(BlindIndexEntry).where(BlindIndexEntry.subject_id == subject_id, BlindIndexEntry.column == column)
    )


def index_candidates(session: Session, *, column: str, value: str) -> Sequence[uuid.UUID]:
    """Subjects sharing the value's bucket: callers decrypt and compare with ``same_value``."""
    if not value or _crypto_off(session):
        return []
    epoch, bucket = index_bucket(session, value, column=column)
    return session.scalars(
        select(BlindIndexEntry.subject_id).where(
            BlindIndexEntry.column == column, BlindIndexEntry.epoch == epoch, BlindIndexEntry.bucket == bucket
        )
    ).all()


def same_handle(a: str, b: str) -> bool:
    """Whether two handles are the same after normalisation, compared in constant time."""
    return blind_index.same_value(blind_index.normalise_handle(a), blind_index.normalise_handle(b))


# --- shredding -----------------------------------------------------------------------------


def shred_subject(session: Session, *, subject_id: uuid.UUID) -> None:
    """Destroy a subject's data keys and blind-index entries; the caller nulls its ciphertexts."""
    session.execute(delete(DataKey).where(DataKey.subject_id == subject_id))
    session.execute(delete(BlindIndexEntry).where(BlindIndexEntry.subject_id == subject_id))
    keyring_of(session).evict(subject_id)


def new_subject_id() -> uuid.UUID:
    """Row and subject ids are random UUIDs made before insert, so values can be sealed to them."""
    return uuid.uuid4()
