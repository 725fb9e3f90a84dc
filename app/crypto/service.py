"""The one path that seals and opens field values, manages subject data keys and blind indexes.

Domain services call these with their session; the session carries the keyring and settings in
``session.info`` (set by the unit of work), so nothing reaches for globals.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, text
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


# Keys under live writers. A transaction that wraps a new data key holds this lock shared until it
# ends, and reads the primary KEK only after taking it; ``keys rotate`` takes it exclusively after
# switching the primary and again to retire, so no KEK is retired while an uncommitted data key may
# still be wrapped under it. On SQLite the write lock every writer holds plays the same part.
KEYRING_LOCK = 0x4B455953  # "KEYS"
_KEYRING_HELD = "keyring_lock_held"


def hold_keyring(session: Session) -> None:
    """Hold the keyring generation shared for the rest of this transaction (PostgreSQL; SQLite needs none)."""
    root = session.get_transaction()
    if session.info.get(_KEYRING_HELD) is root and root is not None:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": KEYRING_LOCK})
    session.info[_KEYRING_HELD] = session.get_transaction()


def create_subject_key(session: Session, *, subject_id: uuid.UUID) -> SubjectKey:
    """A fresh random data key for a subject, stored wrapped under the primary KEK."""
    key_id = secrets.randbits(31) or 1
    dek = cipher.new_key()
    if _crypto_off(session):
        return SubjectKey(subject_id, key_id, dek)
    hold_keyring(session)  # before the primary is read: see KEYRING_LOCK
    keyring = keyring_of(session)
    kek_id, wrapped = keyring.wrap_dek(dek, subject_id=subject_id, key_id=key_id)
    # Inserted at once through Core (no ORM flush): a new subject's key row, nobody else's to lock.
    session.connection().execute(
        _INSERT_DATA_KEY,
        {"subject_id": subject_id, "key_id": key_id, "kek_id": kek_id, "wrapped": wrapped, "created_on": date.today()},
    )
    keyring.remember(subject_id, key_id, dek)
    made = SubjectKey(subject_id, key_id, dek)
    # Kept for this session so add_index_entry can seal the subject's normalised handle without a read.
    session.info.setdefault(_NEW_KEYS, {})[subject_id] = made
    return made


_INSERT_DATA_KEY = insert(DataKey)
_INSERT_INDEX_ENTRY = insert(BlindIndexEntry)


def _dek(session: Session, *, subject_id: uuid.UUID, key_id: int) -> bytes:
    row = session.get(DataKey, (subject_id, key_id))
    if row is None:
        raise ShreddedError("this record's data key was destroyed; its protected fields cannot be read")
    return keyring_of(session).unwrap_dek(row.wrapped, subject_id=subject_id, key_id=key_id, kek_id=row.kek_id)


def current_subject_key(session: Session, *, subject_id: uuid.UUID) -> SubjectKey:
    """The newest data key of a subject, or ShreddedError if it has none left.

    The key's row is held shared until the transaction ends (FOR SHARE on PostgreSQL; SQLite's write
    lock on SQLite), so re-encryption, which locks it exclusively before it reads what a key sealed,
    can never delete a key that gains a ciphertext after its sweep read the rows.
    """
    query = (
        select(DataKey)
        .where(DataKey.subject_id == subject_id)
        .order_by(DataKey.created_on.desc(), DataKey.key_id)
        .with_for_update(read=True)
    )
    row = session.scalars(query).first()
    if row is None and session.get_bind().dialect.name == "postgresql":
        # Re-encryption replaced the key while this waited for it: a fresh statement sees the new one.
        row = session.scalars(query.execution_options(populate_existing=True)).first()
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
#
# An index epoch is one root key and one width per column. At most two are live: the active epoch,
# complete, and while the index is being widened (app/lifecycle/reindex.py) a building one. New
# entries go to both and look-ups consult both, so nothing is missed while the new one fills in.

ACTIVE, BUILDING = "active", "building"
_EPOCHS_MEMO = "helpline_index_epochs"
_NEW_KEYS = "helpline_new_subject_keys"
# Envelope location of a sealed normalised value (blind_index_entry.value_ct), bound to its subject.
# Not to the index column or epoch: a subject is indexed in one column, with the same value in
# every epoch, so a rebuild copies it and key rotation re-seals it like any other field.
INDEX_VALUE_TABLE, INDEX_VALUE_COLUMN = "blind_index_entry", "value"


@dataclass(frozen=True)
class IndexEpoch:
    """One live blind-index epoch: its number, widths and whether it is still being built."""

    epoch: int
    bits: int
    widths: dict[str, int]
    building: bool

    def width(self, column: str) -> int:
        return self.widths.get(column, self.bits)


# FOR KEY SHARE on PostgreSQL (SQLite ignores it; its writers are serialised anyway): a rebuild
# retires an epoch by deleting its row, which waits for every transaction still able to write to
# it. So a writer holds index_key rows before anything else it changes (lock order, app/db.py).
_EPOCHS = (
    select(IndexKey.epoch, IndexKey.bits, IndexKey.widths, IndexKey.state)
    .where(IndexKey.state.in_((ACTIVE, BUILDING)))
    .order_by(IndexKey.epoch)
    .with_for_update(read=True, key_share=True)
)


def live_epochs(session: Session) -> tuple[IndexEpoch, ...]:
    """The active epoch and any being built, read once per transaction (never from a stale cache)."""
    memo = session.info.get(_EPOCHS_MEMO)
    if memo is not None and memo[0] is session.get_transaction():
        return memo[1]  # type: ignore[no-any-return]
    rows = session.connection().execute(_EPOCHS).all()
    if not rows:
        raise CryptoError("no blind-index key: run 'helpline init' or 'helpline migrate'")
    epochs = tuple(IndexEpoch(int(e), int(b), json.loads(w) if w else {}, s == BUILDING) for e, b, w, s in rows)
    session.info[_EPOCHS_MEMO] = (session.get_transaction(), epochs)
    return epochs


def active_epoch(session: Session) -> IndexEpoch:
    """The complete epoch (the newest complete one, should an older rebuild have left two)."""
    return [e for e in live_epochs(session) if not e.building][-1]


def ensure_index_root(session: Session) -> int:
    """Create the first blind-index root key if none exists; returns the active epoch."""
    epoch = session.scalar(select(func.max(IndexKey.epoch)))
    if epoch is not None:
        return int(epoch)
    return new_index_epoch(session)


def new_index_epoch(
    session: Session, *, bits: int | None = None, widths: dict[str, int] | None = None, building: bool = False
) -> int:
    """Start a new index epoch with a fresh root key and widths; a building one is filled by reindex."""
    # Never reuse a number, not even an abandoned building epoch's: its stragglers must not count.
    current = max(
        session.scalar(select(func.max(IndexKey.epoch))) or 0,
        session.scalar(select(func.max(BlindIndexEntry.epoch))) or 0,
    )
    epoch = int(current) + 1
    root = cipher.new_key()
    subject = index_subject(epoch)
    kek_id, wrapped = keyring_of(session).wrap_dek(root, subject_id=subject, key_id=epoch)
    width = bits if bits is not None else settings_of(session).index_bits
    session.add(
        IndexKey(
            epoch=epoch,
            kek_id=kek_id,
            wrapped=wrapped,
            created_on=date.today(),
            bits=width,
            widths=json.dumps(widths, sort_keys=True) if widths else None,
            state=BUILDING if building else ACTIVE,
        )
    )
    session.flush()
    session.info.pop(_EPOCHS_MEMO, None)
    return epoch


def index_subject(epoch: int) -> uuid.UUID:
    """The subject id an index root key of ``epoch`` is wrapped to (key rotation re-wraps it)."""
    return uuid.uuid5(uuid.NAMESPACE_OID, f"helpline-index-root-{epoch}")


def active_index_key(session: Session, *, column: str) -> tuple[int, int, bytes]:
    """(epoch, bits, derived key) of a column's active blind index, for bulk loaders that index in batches."""
    active = active_epoch(session)
    return active.epoch, active.width(column), epoch_key(session, column=column, epoch=active.epoch)


def epoch_key(session: Session, *, column: str, epoch: int) -> bytes:
    """The derived index key of one column in one epoch (root keys unwrapped once per process)."""
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
    """(epoch, bucket) of a value's blind index in a column (the active epoch unless one is named).

    The width comes from the epoch itself, never from the current setting, so changing
    HELPLINE_INDEX_BITS cannot move existing entries; a new width needs a new epoch.
    """
    if epoch is None or bits is None:
        active = active_epoch(session)
        epoch, bits = active.epoch, active.width(column)
    key = epoch_key(session, column=column, epoch=epoch)
    return epoch, blind_index.bucket(key, blind_index.normalise_handle(value), bits=bits)


def seal_index_value(normalised: str, *, key: SubjectKey) -> bytes:
    """A normalised value sealed under its subject's data key, bound to the subject (see INDEX_VALUE_TABLE)."""
    return cipher.seal(
        normalised,
        dek=key.dek,
        key_id=key.key_id,
        table=INDEX_VALUE_TABLE,
        column=INDEX_VALUE_COLUMN,
        row_id=key.subject_id,
        subject_id=key.subject_id,
    )


def _index_key_of(session: Session, subject_id: uuid.UUID, key: SubjectKey | None) -> SubjectKey | None:
    if key is not None:
        return key
    made = session.info.get(_NEW_KEYS, {}).get(subject_id)
    if made is not None:
        return made  # type: ignore[no-any-return]
    try:
        return current_subject_key(session, subject_id=subject_id)
    except ShreddedError:
        return None  # no data key: the entry works without its sealed value, as entries once did


def add_index_entry(
    session: Session,
    *,
    subject_id: uuid.UUID,
    column: str,
    value: str | None,
    replace: bool = False,
    key: SubjectKey | None = None,
) -> None:
    """Record a subject's value in every live blind-index epoch (nothing is stored for an empty value).

    The normalised value is sealed once here, so look-ups never re-normalise a candidate. A new
    subject has no entry yet, so the default skips the look-up; pass ``replace`` when re-indexing.
    """
    if not value or _crypto_off(session):
        return
    normalised = blind_index.normalise_handle(value)
    subject_key = _index_key_of(session, subject_id, key)
    sealed = seal_index_value(normalised, key=subject_key) if subject_key else None
    fresh = []
    for live in live_epochs(session):
        bucket = blind_index.bucket(
            epoch_key(session, column=column, epoch=live.epoch), normalised, bits=live.width(column)
        )
        entry = session.get(BlindIndexEntry, (subject_id, column, live.epoch)) if replace else None
        if entry is None:
            fresh.append(
                {"subject_id": subject_id, "column": column, "epoch": live.epoch, "bucket": bucket, "value_ct": sealed}
            )
        else:
            entry.bucket, entry.value_ct = bucket, sealed
    if fresh:
        session.connection().execute(_INSERT_INDEX_ENTRY, fresh)  # Core: no ORM flush for a new entry


# Candidates as tuples with their wrapped data keys, in one statement (no ORM objects), built once
# for one and for two live epochs and run on the session's connection (the ORM layer costs more than
# the query).
_CANDIDATES = select(
    BlindIndexEntry.subject_id, BlindIndexEntry.value_ct, DataKey.key_id, DataKey.kek_id, DataKey.wrapped
).outerjoin(DataKey, DataKey.subject_id == BlindIndexEntry.subject_id)


def _candidates_stmt_many(columns: int, epochs: int) -> Any:
    lookups = [
        and_(
            BlindIndexEntry.column == bindparam(f"c{c}"),
            BlindIndexEntry.epoch == bindparam(f"e{c}_{i}"),
            BlindIndexEntry.bucket == bindparam(f"b{c}_{i}"),
        )
        for c in range(columns)
        for i in range(epochs)
    ]
    stmt = select(BlindIndexEntry.column, *_CANDIDATES.selected_columns).outerjoin(
        DataKey, DataKey.subject_id == BlindIndexEntry.subject_id
    )
    return stmt.where(or_(*lookups))


# Intake looks up one value in two columns (earlier contacts, the known-bad list) in one statement.
_MANY_STMTS = {(c, n): _candidates_stmt_many(c, n) for c in (1, 2) for n in (1, 2)}


def index_matches(session: Session, *, column: str, value: str) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """(matches, unsealed): subjects whose sealed normalised value equals the value's, and bucket-mates
    whose entry predates sealed values, which the caller opens and compares itself.

    Every live epoch is consulted, so a look-up during an index rebuild misses nobody. A candidate
    costs one unwrap and one open of a short value; a shredded subject (no data key) never matches.
    """
    return index_matches_many(session, columns=(column,), value=value)[column]


def index_matches_many(
    session: Session, *, columns: Sequence[str], value: str
) -> dict[str, tuple[list[uuid.UUID], list[uuid.UUID]]]:
    """``index_matches`` of one value in several columns, every live epoch of each, in one query."""
    if not value or _crypto_off(session):
        return {column: ([], []) for column in columns}
    normalised = blind_index.normalise_handle(value)
    live = live_epochs(session)
    params: dict[str, Any] = {}
    for c, column in enumerate(columns):
        params[f"c{c}"] = column
        for i, epoch in enumerate(live):
            key = epoch_key(session, column=column, epoch=epoch.epoch)
            params[f"e{c}_{i}"] = epoch.epoch
            params[f"b{c}_{i}"] = blind_index.bucket(key, normalised, bits=epoch.width(column))
    shape = (len(columns), len(live))
    stmt = _MANY_STMTS[shape] if shape in _MANY_STMTS else _candidates_stmt_many(*shape)
    by_column: dict[str, list[Any]] = {column: [] for column in columns}
    for row in session.connection().execute(stmt, params):
        by_column[row[0]].append(row[1:])
    keyring = keyring_of(session)
    return {column: _compare(keyring, rows, normalised) for column, rows in by_column.items()}


def _compare(keyring: Keyring, rows: list[Any], normalised: str) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    matches: dict[uuid.UUID, None] = {}
    unsealed: dict[uuid.UUID, None] = {}
    opened: set[uuid.UUID] = set()
    keyless: dict[uuid.UUID, None] = {}
    for subject_id, blob, key_id, kek_id, wrapped in rows:
        if blob is None:
            unsealed[subject_id] = None
            continue
        if key_id is None or subject_id in opened:
            continue
        try:
            if cipher.envelope_key_id(blob) != key_id:
                keyless[subject_id] = None  # another of its keys may come in a later row
                continue
            opened.add(subject_id)
            dek = keyring.unwrap_dek(wrapped, subject_id=subject_id, key_id=key_id, kek_id=kek_id)
            plain = cipher.open_(
                blob,
                dek=dek,
                table=INDEX_VALUE_TABLE,
                column=INDEX_VALUE_COLUMN,
                row_id=subject_id,
                subject_id=subject_id,
            )
        except DecryptionError:
            unsealed[subject_id] = None  # a damaged sealed value: let the caller open the record itself
            continue
        if blind_index.same_value(plain, normalised):
            matches[subject_id] = None
    # A sealed value under none of the subject's keys was tampered with: the caller checks the record.
    unsealed.update((s, None) for s in keyless if s not in opened)
    return list(matches), [s for s in unsealed if s not in matches]


def drop_index_entries(session: Session, *, subject_id: uuid.UUID, column: str) -> None:
    """Forget a subject's entries in one column's index (its value was corrected or removed)."""
    session.execute(
        delete(BlindIndexEntry).where(BlindIndexEntry.subject_id == subject_id, BlindIndexEntry.column == column)
    )


def index_candidates(session: Session, *, column: str, value: str) -> Sequence[uuid.UUID]:
    """Subjects that may hold the value: callers decrypt and compare with ``same_handle``.

    Bucket-mates whose sealed normalised value differs are already left out, so callers open only
    true matches and entries made before values were sealed.
    """
    matches, unsealed = index_matches(session, column=column, value=value)
    return matches + unsealed


def index_value_of(
    session: Session, *, column: str, subject_id: uuid.UUID, value_ct: bytes | None, table: str, handle_ct: bytes
) -> tuple[str, bytes] | None:
    """(normalised, sealed) value of a subject's index entry, for a rebuild; None if it is unreadable.

    From the entry's sealed normalised value when it has one (no normalising); otherwise the record's
    handle is opened and normalised once, and sealed so the new entry has it.
    """
    try:
        if value_ct is not None:
            key_id = cipher.envelope_key_id(value_ct)
            dek = _dek(session, subject_id=subject_id, key_id=key_id)
            plain = cipher.open_(
                value_ct,
                dek=dek,
                table=INDEX_VALUE_TABLE,
                column=INDEX_VALUE_COLUMN,
                row_id=subject_id,
                subject_id=subject_id,
            )
            return plain, value_ct
        key_id = cipher.envelope_key_id(handle_ct)
        dek = _dek(session, subject_id=subject_id, key_id=key_id)
        handle = cipher.open_(
            handle_ct, dek=dek, table=table, column="handle", row_id=subject_id, subject_id=subject_id
        )
    except (DecryptionError, ShreddedError):
        return None
    normalised = blind_index.normalise_handle(handle)
    key = SubjectKey(subject_id, key_id, dek)
    return normalised, seal_index_value(normalised, key=key)


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
