"""Rebuilding the blind indexes under a new epoch, by hand or by itself as the data grows.

Width. A blind index keeps enough collisions that an index value names nobody and few enough that a
look-up opens only a handful of candidates: CipherSweet's lower bound of at least 2 rows a bucket, and
here at most 8 expected. When a column leaves that band (it grew, or a purge shrank it) the server's
widener starts a new epoch whose width puts about 4 rows in a bucket again: ``auto_width``. Each
doubling of the data costs one rebuild, so the work per row stays constant.

No quiet hour. A rebuild makes a *building* epoch beside the active one. From the moment it exists
every new entry goes to both (``crypto.add_index_entry``) and every look-up consults both
(``crypto.index_matches``), so a look-up during the rebuild finds what it found before. Batches then
fill the building epoch from the records, each batch its own transaction: a killed builder leaves
committed batches behind, and whoever runs next continues from them. When nothing is left, one
transaction makes the new epoch active and deletes the old epoch's key and entries.

One builder at a time. The building epoch's row carries a lease (``builder``, ``lease_until``), taken
and renewed by compare-and-set at the start of every batch; a killed builder's lease runs out and the
next server (or ``helpline keys reindex``, which takes the lease at once) carries on.

Why no writer is lost on PostgreSQL: writers read the live epochs FOR KEY SHARE. Starting an epoch
takes the active row FOR UPDATE, so it waits for every writer that saw only the old epoch and commits
before the first batch scans; retiring the old epoch deletes its row, which waits for every writer that
may still add to it. SQLite runs one writing transaction at a time, which gives the same order.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, delete, exists, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, aliased

from app.audit import service as audit
from app.cases.models import Case
from app.config import Settings
from app.contacts.models import Contact, FlaggedHandle
from app.crypto import blind_index
from app.crypto import service as crypto
from app.crypto.keyring import Keyring
from app.crypto.models import BlindIndexEntry, DataKey, IndexKey
from app.db import failure_name, is_retryable, unit_of_work

log = logging.getLogger("helpline.reindex")

# (model, table name for the envelope, blind-index column name)
INDEXED: tuple[tuple[Any, str, str], ...] = (
    (Contact, "contact", "contact.handle"),
    (Case, "evacuation_case", "case.handle"),
    (FlaggedHandle, "flagged_handle", "flagged_handle.handle"),
)
COLUMNS = tuple(column for _, _, column in INDEXED)

LOWER = 2  # CipherSweet: at least two rows expected in a bucket, or an index value may name one person
UPPER = 8  # past this many candidates a look-up spends more on opening them than on anything else
TARGET = 4  # a new width puts about this many rows in a bucket: a doubling or a halving away from the bounds
LEASE_SECONDS = 60
ABANDONED = "abandoned"  # a building epoch replaced by a rebuild with other widths
UNREADABLE = -1  # placeholder bucket: keeps a subject that cannot be opened from being retried every batch


def auto_width(rows: int) -> int:
    """The width that puts TARGET to 2*TARGET rows in a bucket (0, one bucket, for a handful of rows)."""
    if rows < 2 * TARGET:
        return 0
    return min(32, (rows // TARGET).bit_length() - 1)


def out_of_bounds(rows: int, bits: int) -> bool:
    """Whether ``rows`` entries in 2**bits buckets leave the band LOWER..UPPER (one bucket may hold fewer)."""
    expected = rows / 2**bits
    return expected > UPPER or (bits > 0 and expected < LOWER)


@dataclass(frozen=True)
class ReindexResult:
    epoch: int
    bits: int
    indexed: int
    skipped: int
    retired_epochs: list[int]
    widths: dict[str, int] = field(default_factory=dict)


class LeaseLost(Exception):
    """Another builder took the building epoch over; this one stops without harm."""


def _bound(session: Session, settings: Settings, keyring: Keyring) -> Session:
    return crypto.bind(session, settings=settings, keyring=keyring)


# Above this width the widener counts a sixteenth of the buckets and scales up: every server worker asks
# once a minute, and on SQLite the count holds the write lock. With hundreds of rows in the sample the
# estimate is well inside the band's factor of two.
SAMPLE_FROM_BITS = 10
SAMPLE_SHIFT = 4


def estimated_rows(session: Session, *, epoch: crypto.IndexEpoch, column: str, sample: bool = True) -> int:
    """Rows of ``column`` indexed in ``epoch``: counted, or estimated from a slice of its buckets."""
    bits = epoch.width(column)
    shift = SAMPLE_SHIFT if sample and bits >= SAMPLE_FROM_BITS else 0
    last = (2**bits >> shift) - 1  # buckets 0..last, a range of the look-up index; placeholders are -1
    counted = session.scalar(
        select(func.count()).where(
            BlindIndexEntry.column == column,
            BlindIndexEntry.epoch == epoch.epoch,
            BlindIndexEntry.bucket.between(0, last),
        )
    )
    return int(counted or 0) << shift


def wanted_widths(session: Session, *, sample: bool = False) -> dict[str, int] | None:
    """New widths if any column of the active epoch has left the band, else None (``sample``: estimated)."""
    active = crypto.active_epoch(session)
    counts = {c: estimated_rows(session, epoch=active, column=c, sample=sample) for c in COLUMNS}
    if not any(out_of_bounds(counts[c], active.width(c)) for c in COLUMNS):
        return None
    return {c: auto_width(counts[c]) for c in COLUMNS}


def lock_epochs(session: Session) -> None:
    """Take the live epochs' rows FOR UPDATE, in epoch order: the index_key rows come first (lock order).

    It waits for every writer that saw only the live epochs as they are now, and keeps two starters from
    both starting (SQLite: one writer anyway). In epoch order, as writers take them FOR KEY SHARE
    (``crypto.live_epochs``): in the table's physical order a rebuild could hold the newer row while a
    writer held the older one, each then waiting for the other (a deadlock PostgreSQL breaks by
    failing one of them).
    """
    session.execute(
        select(IndexKey.epoch)
        .where(IndexKey.state.in_((crypto.ACTIVE, crypto.BUILDING)))
        .order_by(IndexKey.epoch)
        .with_for_update()
    ).all()


def size_empty_columns(session: Session, *, expected: dict[str, int], actor: str) -> dict[str, int] | None:
    """Before a bulk load: give each column with no entries yet the width ``expected`` rows of it will want.

    What the widener would choose once the rows are in, without rebuilding what was just written: with no
    entry in a column, a new width moves nothing. Columns that have entries keep their width (changing it
    is a rebuild, ``reindex``), and nothing changes while a rebuild is under way. Returns the new widths,
    or None if none changed. Run it in a transaction of its own, before the load's first entry.
    """
    lock_epochs(session)  # as in _start: the epoch rows first, which waits for writers that may add an entry
    live = crypto.live_epochs(session)
    if len(live) != 1:
        return None
    active = live[0]
    widths = {c: active.width(c) for c in COLUMNS}
    for column, rows in expected.items():
        empty = not session.scalar(
            select(BlindIndexEntry.subject_id)
            .where(BlindIndexEntry.column == column, BlindIndexEntry.epoch == active.epoch)
            .limit(1)
        )
        if empty and out_of_bounds(rows, widths[column]):
            widths[column] = auto_width(rows)
    if all(widths[c] == active.width(c) for c in COLUMNS):
        return None
    session.execute(
        update(IndexKey)
        .where(IndexKey.epoch == active.epoch)
        .values(bits=max(widths.values()), widths=json.dumps(widths, sort_keys=True))
    )
    audit.record(session, actor=actor, action="keys.index_widths", detail={"epoch": active.epoch, "widths": widths})
    return widths


def _claim(session: Session, *, epoch: int, holder: str, takeover: bool) -> bool:
    now = int(time.time())
    stmt = (
        update(IndexKey)
        .where(IndexKey.epoch == epoch, IndexKey.state == crypto.BUILDING)
        .values(builder=holder, lease_until=now + LEASE_SECONDS)
    )
    if not takeover:
        free = (IndexKey.builder == holder) | IndexKey.builder.is_(None) | (IndexKey.lease_until < now)
        stmt = stmt.where(free)
    return session.execute(stmt).rowcount == 1  # type: ignore[attr-defined,no-any-return]


def _renew(session: Session, *, epoch: int, holder: str) -> None:
    stmt = (
        update(IndexKey)
        .where(IndexKey.epoch == epoch, IndexKey.state == crypto.BUILDING, IndexKey.builder == holder)
        .values(lease_until=int(time.time()) + LEASE_SECONDS)
    )
    if session.execute(stmt).rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost()


def _start(
    session: Session, *, bits: int | None, holder: str, takeover: bool, auto: bool, actor: str
) -> crypto.IndexEpoch | None:
    """The building epoch to fill, claimed for ``holder``: resumed, or started if one is needed."""
    lock_epochs(session)
    live = crypto.live_epochs(session)
    building = next((e for e in live if e.building), None)
    asked = dict.fromkeys(COLUMNS, bits) if bits is not None else None
    if building is not None:
        if asked is None or all(building.width(c) == asked[c] for c in COLUMNS):
            return building if _claim(session, epoch=building.epoch, holder=holder, takeover=takeover) else None
        # Another width was asked for by hand: what was built of the old plan is dropped. Its number
        # stays taken (processes cache derived keys by epoch), and the next finish deletes its row.
        session.execute(update(IndexKey).where(IndexKey.epoch == building.epoch).values(state=ABANDONED))
        session.execute(delete(BlindIndexEntry).where(BlindIndexEntry.epoch == building.epoch))
    widths = asked or wanted_widths(session)
    if widths is None:
        if auto:
            return None
        widths = {c: crypto.active_epoch(session).width(c) for c in COLUMNS}  # a new key, the same widths
    epoch = crypto.new_index_epoch(session, bits=max(widths.values()), widths=widths, building=True)
    _claim(session, epoch=epoch, holder=holder, takeover=True)
    audit.record(session, actor=actor, action="keys.reindex", detail={"epoch": epoch, "widths": widths})
    return next(e for e in crypto.live_epochs(session) if e.epoch == epoch)


def _needed(session: Session) -> bool:
    """Whether the widener has anything to do: a rebuild to carry on, or a column out of its band."""
    return any(e.building for e in crypto.live_epochs(session)) or wanted_widths(session, sample=True) is not None


def _fill_batch(
    session: Session,
    *,
    target: crypto.IndexEpoch,
    model: Any,
    table: str,
    column: str,
    after: uuid.UUID | None,
    size: int,
) -> tuple[list[uuid.UUID], int]:
    """Index up to ``size`` records of one model not yet in the building epoch; (their ids, unreadable)."""
    new = aliased(BlindIndexEntry)
    old = aliased(BlindIndexEntry)
    active = crypto.active_epoch(session)
    done = exists().where(new.subject_id == model.id, new.column == column, new.epoch == target.epoch)
    stmt = (
        select(model.id, model.handle_ct, old.value_ct)
        .outerjoin(old, (old.subject_id == model.id) & (old.column == column) & (old.epoch == active.epoch))
        .where(model.handle_ct.is_not(None), ~done)
        .order_by(model.id)
        .limit(size)
    )
    if after is not None:
        stmt = stmt.where(model.id > after)
    rows = session.execute(stmt).all()
    # The batch's data keys in one query, kept referenced so each open finds its key in the identity
    # map instead of running a SELECT of its own (the map holds objects weakly).
    data_keys = session.scalars(select(DataKey).where(DataKey.subject_id.in_([r[0] for r in rows]))).all()
    key = crypto.epoch_key(session, column=column, epoch=target.epoch)
    width = target.width(column)
    skipped = 0
    entries = []
    for row_id, handle_ct, value_ct in rows:
        found = crypto.index_value_of(
            session, column=column, subject_id=row_id, value_ct=value_ct, table=table, handle_ct=handle_ct
        )
        if found is None:
            skipped += 1
            entries.append(BlindIndexEntry(subject_id=row_id, column=column, epoch=target.epoch, bucket=UNREADABLE))
            continue
        normalised, sealed = found
        bucket = blind_index.bucket(key, normalised, bits=width)
        entries.append(
            BlindIndexEntry(subject_id=row_id, column=column, epoch=target.epoch, bucket=bucket, value_ct=sealed)
        )
    session.add_all(entries)
    del data_keys  # held until here on purpose (see above)
    return [r[0] for r in rows], skipped


def _finish(session: Session, *, epoch: int, holder: str, actor: str, indexed: int) -> list[int]:
    """Make the building epoch active and retire the older ones, in one transaction."""
    made_active = session.execute(
        update(IndexKey)
        .where(IndexKey.epoch == epoch, IndexKey.state == crypto.BUILDING, IndexKey.builder == holder)
        .values(state=crypto.ACTIVE, builder=None, lease_until=None)
    )
    if made_active.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost()
    retired = sorted(session.scalars(select(IndexKey.epoch).where(IndexKey.epoch < epoch)))
    # The key rows go first: on PostgreSQL that waits for writers still holding them (FOR KEY SHARE),
    # so their entries are committed, and deleted, by the statement after it.
    session.execute(delete(IndexKey).where(IndexKey.epoch < epoch))
    session.execute(delete(BlindIndexEntry).where(BlindIndexEntry.epoch < epoch))
    session.execute(delete(BlindIndexEntry).where(BlindIndexEntry.bucket == UNREADABLE))
    audit.record(
        session,
        actor=actor,
        action="keys.reindex_done",
        detail={"epoch": epoch, "indexed": indexed, "retired": retired},
    )
    return retired


def new_holder() -> str:
    """A builder's name in the lease: this process and a random part, nothing about the machine."""
    return f"pid{os.getpid()}-{secrets.token_hex(6)}"


def reindex(
    *,
    engine: Engine,
    settings: Settings,
    keyring: Keyring,
    bits: int | None = None,
    batch_size: int = 2000,
    actor: str = "cli",
    progress: Callable[[int, int], None] | None = None,
    holder: str | None = None,
    auto: bool = False,
    takeover: bool = True,
    pause: float = 0.0,
    stop: threading.Event | None = None,
) -> ReindexResult | None:
    """Move every blind-index entry to a new epoch (new root key; ``bits`` or automatic widths); resumable.

    By hand (the defaults) it takes over an unfinished rebuild or starts one, and runs it to the end.
    ``auto`` starts one only when a column has left its band, and ``takeover=False`` leaves a rebuild
    whose lease another builder holds: both return None when there is nothing for them to do.
    """
    holder = holder or new_holder()
    if auto:
        # Asked without locks first: every server asks every minute, and a locking check would
        # hold up intake each time.
        with unit_of_work(engine) as session:
            _bound(session, settings, keyring)
            if not _needed(session):
                return None
    with unit_of_work(engine) as session:
        _bound(session, settings, keyring)
        target = _start(session, bits=bits, holder=holder, takeover=takeover, auto=auto, actor=actor)
    if target is None:
        return None

    total = 0
    with engine.connect() as conn:
        for model, _, _ in INDEXED:
            total += conn.scalar(select(func.count()).select_from(model).where(model.handle_ct.is_not(None))) or 0
    done = skipped = 0
    for model, table, column in INDEXED:
        after: uuid.UUID | None = None
        while True:
            if stop is not None and stop.is_set():
                return None
            with unit_of_work(engine) as session:
                _bound(session, settings, keyring)
                _renew(session, epoch=target.epoch, holder=holder)  # first, so a batch never outlives its lease
                ids, unreadable = _fill_batch(
                    session, target=target, model=model, table=table, column=column, after=after, size=batch_size
                )
            if not ids:
                break
            after = ids[-1]
            done += len(ids)
            skipped += unreadable
            if progress:
                progress(done, total)
            if pause:
                time.sleep(pause)

    with unit_of_work(engine) as session:
        _bound(session, settings, keyring)
        retired = _finish(session, epoch=target.epoch, holder=holder, actor=actor, indexed=done - skipped)
    widths = {c: target.width(c) for c in COLUMNS}
    return ReindexResult(
        epoch=target.epoch,
        bits=max(widths.values()),
        indexed=done - skipped,
        skipped=skipped,
        retired_epochs=retired,
        widths=widths,
    )


class IndexWidener:
    """The server's background builder: every ``interval`` seconds, widen or narrow the index if needed.

    Every worker of every server runs one; the lease lets one of them build at a time, and a killed
    one's rebuild is carried on by another once its lease runs out.
    """

    def __init__(self, *, engine: Engine, settings: Settings, keyring: Keyring, interval: float) -> None:
        self.engine, self.settings, self.keyring, self.interval = engine, settings, keyring, interval
        self.holder = new_holder()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="helpline-index-widener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def run_once(self) -> ReindexResult | None:
        # Small batches with a pause between them: a rebuild must not hold SQLite's write lock for long.
        return reindex(
            engine=self.engine,
            settings=self.settings,
            keyring=self.keyring,
            actor="system",
            holder=self.holder,
            auto=True,
            takeover=False,
            batch_size=200,
            pause=0.005,
            stop=self._stop,
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                result = self.run_once()
            except LeaseLost:
                continue
            except DBAPIError as exc:
                if not is_retryable(exc):
                    log.exception("blind-index rebuild stopped; it is retried in %s s", self.interval)
                    continue
                # A deadlock or serialization failure with a writer or a key rotation: nothing is lost (the
                # rebuild resumes where its last batch ended), so one line, as a replayed request gets.
                log.warning("blind-index rebuild met %s; it is retried in %s s", failure_name(exc), self.interval)
                continue
            except Exception:
                log.exception("blind-index rebuild stopped; it is retried in %s s", self.interval)
                continue
            if result is not None:
                log.info(
                    "blind index now at epoch %s, widths %s (%s indexed)",
                    result.epoch,
                    json.dumps(result.widths, sort_keys=True),
                    result.indexed,
                )
