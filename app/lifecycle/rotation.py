"""Key rotation: move every wrapped data key under a new primary KEK, and re-encrypt fields under new DEKs.

Both are batched (each batch its own transaction) and resumable: a run killed half-way is finished by
running it again, because a data key is either still under an old KEK (and gets re-wrapped) or already
under the target (and is skipped); the re-encryption walks subjects in id order and records how far it got
in the same transaction as each batch. Field ciphertexts are untouched by re-wrapping.
"""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, text, tuple_, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.audit import seals
from app.config import Settings
from app.crypto import cipher
from app.crypto import service as crypto
from app.crypto.errors import CryptoError
from app.crypto.keyring import KeyProvider, Keyring, get_keyring
from app.crypto.models import DataKey, IndexKey
from app.db import Base, backoff, is_retryable, session_factory
from app.lifecycle.models import KeyRotation

Progress = Callable[[int, int], None]
"""Called after each batch with (items done so far, items to do in this run)."""

DEFAULT_BATCH = 5000


@dataclass(frozen=True)
class SealedTable:
    """Where sealed values live: the AAD table name, the column holding the subject id, the sealed columns.

    The database column of a sealed value ``x`` is ``x_ct``; ``x`` is the name bound into its AAD.
    """

    table: str
    subject: str
    columns: tuple[str, ...]
    row: str = "id"


# Every sealed column in the schema, with the subject whose data key it is sealed under.
SEALED_TABLES: tuple[SealedTable, ...] = (
    SealedTable("contact", "id", ("alias", "handle", "notes")),
    SealedTable("evacuation_case", "id", ("full_name", "handle", "location", "family_situation", "notes")),
    SealedTable("case_transition", "case_id", ("note",)),
    SealedTable("record_note", "subject_id", ("text",)),
    SealedTable("field_correction", "subject_id", ("previous",)),
    SealedTable("held_form", "id", ("payload",)),
    SealedTable("flagged_handle", "id", ("handle", "reason")),
    SealedTable("user_account", "id", ("totp_secret",)),
    SealedTable("referral_consent", "case_id", ("terms",)),
    # A subject's entries in every epoch hold the same value, sealed to the subject (row = subject).
    SealedTable("blind_index_entry", "subject_id", ("value",), row="subject_id"),
)


@dataclass
class RotationResult:
    new_kek_id: int
    resumed: bool
    rewrapped: int = 0
    retired: list[int] = field(default_factory=list)
    # KEKs still held by the provider, with the reason (still used, or the provider cannot drop keys).
    kept: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class ReencryptResult:
    resumed: bool
    subjects: int = 0
    fields: int = 0


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _unfinished(conn: Connection, kind: str) -> KeyRotation | None:
    with Session(bind=conn) as s:
        run = s.scalars(
            select(KeyRotation)
            .where(KeyRotation.kind == kind, KeyRotation.finished_at.is_(None))
            .order_by(KeyRotation.id.desc())
        ).first()
        if run is not None:
            s.expunge(run)
        return run


def _count_not_under(conn: Connection, kek_id: int) -> int:
    keys = conn.scalar(select(func.count()).select_from(DataKey).where(DataKey.kek_id != kek_id)) or 0
    roots = conn.scalar(select(func.count()).select_from(IndexKey).where(IndexKey.kek_id != kek_id)) or 0
    return int(keys) + int(roots)


def uses_by_kek(conn: Connection) -> dict[int, tuple[int, int]]:
    """{kek id: (data keys, index keys)} for every KEK some wrapped key in the database is under."""
    out: dict[int, tuple[int, int]] = {}
    for kek_id, n in conn.execute(select(DataKey.kek_id, func.count()).group_by(DataKey.kek_id)):
        out[int(kek_id)] = (int(n), 0)
    for kek_id, n in conn.execute(select(IndexKey.kek_id, func.count()).group_by(IndexKey.kek_id)):
        keys, _ = out.get(int(kek_id), (0, 0))
        out[int(kek_id)] = (keys, int(n))
    return out


def _rewrap_one(
    provider: KeyProvider, target: int, *, subject_id: uuid.UUID, key_id: int, kek_id: int, wrapped: bytes
) -> bytes:
    old_aad = cipher.dek_aad(subject_id=subject_id, key_id=key_id, kek_id=kek_id)
    new_aad = cipher.dek_aad(subject_id=subject_id, key_id=key_id, kek_id=target)
    return provider.wrap(target, provider.unwrap(kek_id, wrapped, old_aad), new_aad)


_U32 = struct.Struct(">I").pack
_AAD_HEAD = cipher.length_prefixed(b"dek") + _U32(16)


def dek_aads(subject: bytes, key_id: int, old_kek: int, new_kek: int) -> tuple[bytes, bytes]:
    """``cipher.dek_aad`` for the old and the new KEK id at once (the hot loop of a rotation)."""
    head = _AAD_HEAD + subject + _U32(4) + _U32(key_id) + _U32(4)
    return head + _U32(old_kek), head + _U32(new_kek)


def _rewrap_many(provider: KeyProvider, target: int, rows: Sequence[tuple[bytes, int, int, bytes]]) -> list[bytes]:
    """New wrappings of (subject id bytes, key id, kek id, wrapped) rows under ``target``."""
    items = [(kek, wrapped, *dek_aads(s, k, kek, target)) for s, k, kek, wrapped in rows]
    # File, env and Vault providers re-wrap a batch in one call (cached ciphers; one HTTP round trip).
    batch = getattr(provider, "rewrap_batch", None)
    if batch is not None:
        return list(batch(items, target))
    return [provider.wrap(target, provider.unwrap(kek, w, old), new) for kek, w, old, new in items]


_DATA_KEY_UPDATE = (
    update(DataKey.__table__)  # type: ignore[arg-type]
    .where(
        DataKey.__table__.c.subject_id == bindparam("b_subject"),
        DataKey.__table__.c.key_id == bindparam("b_key"),
        DataKey.__table__.c.kek_id == bindparam("b_old"),
    )
    .values(kek_id=bindparam("b_new"), wrapped=bindparam("b_wrapped"))
)


# SQLite: walk the table in rowid order (sequential pages) and update by rowid; a big page cache for the run.
_SQLITE_BATCH = (
    "SELECT rowid, subject_id, key_id, kek_id, wrapped FROM data_key "
    "WHERE rowid > ? AND kek_id != ? ORDER BY rowid LIMIT ?"
)
_SQLITE_UPDATE = "UPDATE data_key SET kek_id = ?, wrapped = ? WHERE rowid = ? AND kek_id = ?"
_SQLITE_CACHE_KIB = 262144

# PostgreSQL: one statement per batch, the new wrappings passed as arrays.
_PG_UPDATE = text(
    "UPDATE data_key AS d SET kek_id = :new, wrapped = v.wrapped "
    "FROM unnest(CAST(:subjects AS uuid[]), CAST(:keys AS bigint[]), CAST(:olds AS bigint[]), "
    "CAST(:wrapped AS bytea[])) AS v(subject_id, key_id, old, wrapped) "
    "WHERE d.subject_id = v.subject_id AND d.key_id = v.key_id AND d.kek_id = v.old"
)


def _sqlite_batches(conn: Connection, provider: KeyProvider, target: int, batch_size: int) -> Iterator[int]:
    after = 0
    while True:
        with conn.begin():
            raw = conn.exec_driver_sql(_SQLITE_BATCH, (after, target, batch_size)).fetchall()
            if not raw:
                return
            rows = [(bytes.fromhex(r[1]), r[2], r[3], r[4]) for r in raw]
            wrapped = _rewrap_many(provider, target, rows)
            conn.exec_driver_sql(
                _SQLITE_UPDATE,
                [(target, w, r[0], r[3]) for r, w in zip(raw, wrapped, strict=True)],
            )
            after = int(raw[-1][0])
        yield len(rows)  # after the commit


def _keyset_batches(conn: Connection, provider: KeyProvider, target: int, batch_size: int) -> Iterator[int]:
    table = DataKey.__table__
    after: tuple[uuid.UUID, int] | None = None
    postgres = conn.dialect.name == "postgresql"
    while True:
        with conn.begin():
            query = (
                select(table.c.subject_id, table.c.key_id, table.c.kek_id, table.c.wrapped)
                .where(table.c.kek_id != target)
                .order_by(table.c.subject_id, table.c.key_id)
                .limit(batch_size)
            )
            if after is not None:
                query = query.where(tuple_(table.c.subject_id, table.c.key_id) > tuple_(*after))
            rows = [(r[0], int(r[1]), int(r[2]), bytes(r[3])) for r in conn.execute(query)]
            if not rows:
                return
            wrapped = _rewrap_many(provider, target, [(r[0].bytes, r[1], r[2], r[3]) for r in rows])
            if postgres:
                # psycopg prepares a statement after a few runs; PostgreSQL's generic plan for it cannot see
                # the arrays' size and may scan the whole table per batch row (seconds become minutes).
                conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
                conn.execute(
                    _PG_UPDATE,
                    {
                        "new": target,
                        "subjects": [r[0] for r in rows],
                        "keys": [r[1] for r in rows],
                        "olds": [r[2] for r in rows],
                        "wrapped": wrapped,
                    },
                )
            else:
                conn.execute(
                    _DATA_KEY_UPDATE,
                    [
                        {"b_subject": s, "b_key": k, "b_old": kek, "b_new": target, "b_wrapped": w}
                        for (s, k, kek, _), w in zip(rows, wrapped, strict=True)
                    ],
                )
            after = (rows[-1][0], rows[-1][1])
        yield len(rows)  # after the commit


def _rewrap_data_keys(
    engine: Engine,
    provider: KeyProvider,
    target: int,
    run_id: int,
    *,
    batch_size: int,
    done: int,
    total: int,
    progress: Progress | None,
) -> int:
    """Re-wrap every data key not under ``target``, one transaction a batch (with the run's progress in it)."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            cache = conn.exec_driver_sql("PRAGMA cache_size").scalar() or -2000
            conn.exec_driver_sql(f"PRAGMA cache_size = -{_SQLITE_CACHE_KIB}")
            conn.commit()
        # A second connection would deadlock on SQLite's write lock: record progress on this one.
        batches = _sqlite_batches if sqlite else _keyset_batches
        try:
            for n in batches(conn, provider, target, batch_size):
                done += n
                with conn.begin():
                    conn.execute(update(KeyRotation).where(KeyRotation.id == run_id).values(done=done))
                if progress is not None:
                    progress(done, total)
        finally:
            if sqlite:
                conn.rollback()
                conn.exec_driver_sql(f"PRAGMA cache_size = {int(cache)}")
                conn.commit()
    return done


def _rewrap_index_keys(engine: Engine, provider: KeyProvider, target: int) -> int:
    with engine.begin() as conn:
        # Locked up front, in epoch order, as a rebuild (reindex.lock_epochs) and writers take them: in the
        # table's physical order the two could each hold a row the other waits for (a deadlock on PostgreSQL,
        # seen under load with a rebuild starting while the keys were rotated).
        rows = conn.execute(
            select(IndexKey.epoch, IndexKey.kek_id, IndexKey.wrapped)
            .where(IndexKey.kek_id != target)
            .order_by(IndexKey.epoch)
            .with_for_update()
        ).all()
        for epoch, kek_id, wrapped in rows:
            new = _rewrap_one(
                provider,
                target,
                subject_id=crypto.index_subject(epoch),
                key_id=epoch,
                kek_id=kek_id,
                wrapped=bytes(wrapped),
            )
            conn.execute(
                update(IndexKey)
                .where(IndexKey.epoch == epoch, IndexKey.kek_id == kek_id)
                .values(kek_id=target, wrapped=new)
            )
        return len(rows)


@contextmanager
def _keyring_exclusive(engine: Engine) -> Iterator[Connection]:
    """Wait until no writer is in a transaction that may wrap under the old primary, and keep it so.

    Writers hold ``crypto.KEYRING_LOCK`` shared from before they read the primary KEK until they end
    (PostgreSQL); on SQLite, BEGIN IMMEDIATE waits for the one writer and holds the others off.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": crypto.KEYRING_LOCK})
        yield conn


def _retire_unused(engine: Engine, provider: KeyProvider, target: int, result: RotationResult) -> None:
    # Counted and retired with the keyring held exclusively: no uncommitted data key can be wrapped
    # under a KEK counted as unused here (every writer since the switch wraps under ``target``).
    with _keyring_exclusive(engine) as conn:
        used = uses_by_kek(conn)
        _retire(provider, target, used, result)


def _retire(provider: KeyProvider, target: int, used: dict[int, tuple[int, int]], result: RotationResult) -> None:
    for kek_id in provider.kek_ids():
        if kek_id == target:
            continue
        keys, roots = used.get(kek_id, (0, 0))
        if keys or roots:
            result.kept.append((kek_id, f"still wraps {keys} data keys and {roots} index keys"))
            continue
        try:
            provider.retire_kek(kek_id)
        except CryptoError as exc:
            result.kept.append((kek_id, str(exc)))
        else:
            result.retired.append(kek_id)


def rotate(
    *,
    engine: Engine,
    settings: Settings,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    keyring: Keyring | None = None,
) -> RotationResult:
    """A new primary KEK, every data and index key re-wrapped under it, then unused KEKs retired.

    If a previous run was interrupted (or keys are still under an older KEK), no new KEK is made: the
    run finishes moving everything under the current primary.
    """
    if batch_size < 1:
        raise CryptoError("batch size must be at least 1")
    provider = (keyring or get_keyring(settings)).provider
    with engine.begin() as conn:
        run = _unfinished(conn, "rewrap")
        pending = _count_not_under(conn, provider.primary_kek_id())
    resumed = run is not None or pending > 0
    # The new KEK is stored by the provider (key file written and fsynced) before any data key moves.
    target = provider.primary_kek_id() if resumed else provider.add_primary_kek()
    # The switch: writers that read the old primary end before this returns; later ones read ``target``.
    with _keyring_exclusive(engine):
        pass
    with engine.begin() as conn:
        if run is None:
            run_id = int(
                conn.execute(
                    insert(KeyRotation).values(kind="rewrap", target_kek_id=target, done=0, started_at=_now())
                ).inserted_primary_key[0]  # type: ignore[index]
            )
            done = 0
        else:
            run_id, done = run.id, run.done
            conn.execute(update(KeyRotation).where(KeyRotation.id == run_id).values(target_kek_id=target))
        total = done + _count_not_under(conn, target)
    result = RotationResult(new_kek_id=target, resumed=resumed)
    # A service still running with the old key file may add a key under the old KEK meanwhile: sweep again.
    for _ in range(3):
        before = done
        done = _rewrap_data_keys(
            engine, provider, target, run_id, batch_size=batch_size, done=done, total=total, progress=progress
        )
        done += _rewrap_index_keys(engine, provider, target)
        result.rewrapped += done - before
        with engine.connect() as conn:
            if _count_not_under(conn, target) == 0:
                break
    with engine.begin() as conn:
        conn.execute(update(KeyRotation).where(KeyRotation.id == run_id).values(done=done, finished_at=_now()))
    if progress is not None:
        progress(done, max(total, done))
    _retire_unused(engine, provider, target, result)
    return result


# --- re-encryption under new data keys -----------------------------------------------------


def check_sealed_tables() -> None:
    """Refuse to re-encrypt if the schema has a sealed column this module does not know how to re-seal."""
    import app.models  # noqa: F401  (registers every table)

    known = {(t.table, f"{c}_ct") for t in SEALED_TABLES for c in t.columns}
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if column.name.endswith("_ct") and (table.name, column.name) not in known:
                raise CryptoError(
                    f"{table.name}.{column.name} holds sealed values that re-encryption does not cover; "
                    "add it to app.lifecycle.rotation.SEALED_TABLES first"
                )


def _reseal_batch(session: Session, subjects: list[uuid.UUID]) -> int:
    """New data key for each subject, every sealed value of theirs re-sealed, old data keys deleted."""
    # Locks in the writers' order (app/db.py, stage 1: a record's row before its data key): the
    # subjects' own rows, then their data keys, which writers sealing under them hold shared. So every
    # ciphertext they sealed is committed before the rows are read below, and none is added until the
    # old keys are gone.
    for spec in SEALED_TABLES:
        if spec.row == spec.subject:
            table = Base.metadata.tables[spec.table]
            session.execute(
                select(table.c[spec.row])
                .where(table.c[spec.row].in_(subjects))
                .order_by(table.c[spec.row])
                .with_for_update()
            )
    session.execute(
        select(DataKey.subject_id)
        .where(DataKey.subject_id.in_(subjects))
        .order_by(DataKey.subject_id, DataKey.key_id)
        .with_for_update()
    )
    # Loading the rows puts them in the identity map, so opening each field costs no query.
    old = [(k.subject_id, k.key_id) for k in session.scalars(select(DataKey).where(DataKey.subject_id.in_(subjects)))]
    new_keys = {s: crypto.create_subject_key(session, subject_id=s) for s in subjects}
    session.flush()
    fields = 0
    for spec in SEALED_TABLES:
        table = Base.metadata.tables[spec.table]
        cols = [table.c[f"{c}_ct"] for c in spec.columns]
        rows = session.execute(
            select(table.c[spec.row], table.c[spec.subject], *cols).where(table.c[spec.subject].in_(subjects))
        ).all()
        params = []
        for row in rows:
            row_id, subject_id, blobs = row[0], row[1], row[2:]
            values: dict[str, object] = {"b_row": row_id}
            for name, blob in zip(spec.columns, blobs, strict=True):
                if blob is not None:
                    plain = crypto.open_field(
                        session, bytes(blob), table=spec.table, column=name, row_id=row_id, subject_id=subject_id
                    )
                    blob = crypto.seal_field(
                        session, plain, key=new_keys[subject_id], table=spec.table, column=name, row_id=row_id
                    )
                    fields += 1
                values[f"b_{name}"] = blob
            params.append(values)
        if params:
            # Accounts carry seals over their sealed secret (app.audit.seals): checked before this bulk
            # write, so a forged row is refused rather than laundered, and sealed again after it.
            sealed_rows = (
                [cast(uuid.UUID, p["b_row"]) for p in params] if spec.table in seals.SEALED_TABLE_NAMES else []
            )
            if sealed_rows:
                seals.check_rows(session, crypto.keyring_of(session), spec.table, sealed_rows)
            stmt = (
                update(table)
                .where(table.c[spec.row] == bindparam("b_row"))
                .values({f"{c}_ct": bindparam(f"b_{c}") for c in spec.columns})
            )
            session.connection().execute(stmt, params)
            if sealed_rows:
                seals.reseal_rows(session, crypto.keyring_of(session), spec.table, sealed_rows)
    if old:
        drop = delete(DataKey.__table__).where(  # type: ignore[arg-type]
            DataKey.__table__.c.subject_id == bindparam("b_subject"), DataKey.__table__.c.key_id == bindparam("b_key")
        )
        session.connection().execute(drop, [{"b_subject": s, "b_key": k} for s, k in old])
    return fields


REPLAYS = 10


def _reencrypt_batch(
    factory: sessionmaker[Session],
    settings: Settings,
    keyring: Keyring,
    run_id: int,
    cursor: uuid.UUID | None,
    done: int,
    batch_size: int,
) -> tuple[list[uuid.UUID], int]:
    """One batch in one transaction: the subjects after ``cursor`` re-sealed, progress stored."""
    with factory() as session, session.begin():
        crypto.bind(session, settings=settings, keyring=keyring)
        query = select(DataKey.subject_id).distinct().order_by(DataKey.subject_id).limit(batch_size)
        if cursor is not None:
            query = query.where(DataKey.subject_id > cursor)
        subjects = list(session.scalars(query))
        if not subjects:
            session.execute(update(KeyRotation).where(KeyRotation.id == run_id).values(finished_at=_now()))
            return [], 0
        fields = _reseal_batch(session, subjects)
        session.execute(
            update(KeyRotation)
            .where(KeyRotation.id == run_id)
            .values(cursor=str(subjects[-1]), done=done + len(subjects))
        )
    return subjects, fields


def reencrypt(
    *,
    engine: Engine,
    settings: Settings,
    batch_size: int = 200,
    progress: Progress | None = None,
    keyring: Keyring | None = None,
) -> ReencryptResult:
    """Every subject gets a new data key and its sealed fields re-sealed under it; the old key is deleted.

    Resumable: subjects are handled in id order and the last one done is stored with each batch.
    """
    if batch_size < 1:
        raise CryptoError("batch size must be at least 1")
    check_sealed_tables()
    keyring = keyring or get_keyring(settings)
    with engine.begin() as conn:
        run = _unfinished(conn, "reencrypt")
        if run is None:
            run_id = int(
                conn.execute(
                    insert(KeyRotation).values(kind="reencrypt", done=0, started_at=_now())
                ).inserted_primary_key[0]  # type: ignore[index]
            )
            cursor, done = None, 0
        else:
            run_id, done = run.id, run.done
            cursor = uuid.UUID(run.cursor) if run.cursor else None
        remaining = select(func.count(func.distinct(DataKey.subject_id)))
        if cursor is not None:
            remaining = remaining.where(DataKey.subject_id > cursor)
        total = done + int(conn.scalar(remaining) or 0)
    result = ReencryptResult(resumed=run is not None)
    factory = session_factory(engine)
    while True:
        for attempt in range(1, REPLAYS + 1):
            try:
                subjects, fields = _reencrypt_batch(factory, settings, keyring, run_id, cursor, done, batch_size)
                break
            except DBAPIError as exc:
                # A writer locked a row of this batch in the other order: replay the batch (its work
                # was rolled back, the cursor did not move).
                if attempt == REPLAYS or not is_retryable(exc):
                    raise
                time.sleep(backoff(attempt))
        if not subjects:
            break
        result.fields += fields
        cursor = subjects[-1]
        done += len(subjects)
        keyring.evict_many(set(subjects))
        result.subjects += len(subjects)
        if progress is not None:
            progress(done, total)
    return result
