"""The known-bad list: handles persecutors use to pose as people in need, kept sealed and blind-indexed.

Nobody reads a listed handle back: coordinators add and remove entries and see who added them, when and
why. Intake only learns "this handle is on the list".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.models import Role, User
from app.cases import permissions
from app.contacts.models import FlaggedHandle
from app.contacts.schemas import FlaggedHandleIn, FlaggedHandleList, FlaggedHandleOut
from app.crypto import blind_index
from app.crypto import service as crypto
from app.crypto.models import DataKey
from app.errors import Conflict, Forbidden, NotFound

INDEX_COLUMN = "flagged_handle.handle"


def handle_matches(
    session: Session,
    *,
    model: Any,
    table: str,
    column: str,
    value: str,
    exclude: uuid.UUID | None = None,
    reader: User | None = None,
    where: Any = None,
    candidates: Sequence[uuid.UUID] | None = None,
) -> list[uuid.UUID]:
    """Ids of ``model`` rows whose sealed handle equals ``value`` after normalisation (via the blind index).

    With ``reader``, every candidate decrypted is audited as a ``contact.lookup`` by them and counts
    towards their bulk-read alarm (429 past it), whether it matched or not. ``where`` narrows the
    candidates before anything is decrypted (a search decrypts only what its caller may read).
    ``candidates`` are the index's candidates when the caller looked them up already (intake looks up
    both columns in one query).
    """
    if candidates is None:
        candidates = crypto.index_candidates(session, column=column, value=value)
    ids = [i for i in candidates if i != exclude]
    if not ids:
        return []
    # The candidates and their wrapped data keys in one query. The rows keep the DataKey objects
    # referenced (the identity map holds them weakly), so open_field finds each key without a SELECT.
    stmt = select(model.id, model.handle_ct, DataKey).join(DataKey, DataKey.subject_id == model.id)
    stmt = stmt.where(model.id.in_(ids))
    if where is not None:
        stmt = stmt.where(where)
    rows = session.execute(stmt).all()
    if reader is not None:
        codes = session.scalars(select(model.code).where(model.id.in_({r[0] for r in rows}))).all()
        permissions.record_decrypted_reads(session, user=reader, action="contact.lookup", targets=sorted(codes))
    wanted = blind_index.normalise_handle(value)  # once, not once per candidate
    found: list[uuid.UUID] = []
    for row_id, blob, _key in rows:
        if row_id in found:
            continue  # a subject with several data keys comes once per key
        try:
            plain = crypto.open_field(session, blob, table=table, column="handle", row_id=row_id, subject_id=row_id)
        except crypto.ShreddedError:
            continue
        if plain is not None and blind_index.same_value(blind_index.normalise_handle(plain), wanted):
            found.append(row_id)
    del rows  # held until here on purpose (see above)
    return found


def flagged_entries_for(
    session: Session, *, handle: str, candidates: Sequence[uuid.UUID] | None = None
) -> list[uuid.UUID]:
    """Ids of known-bad list entries matching ``handle``."""
    return handle_matches(
        session,
        model=FlaggedHandle,
        table="flagged_handle",
        column=INDEX_COLUMN,
        value=handle,
        candidates=candidates,
    )


def _require_coordinator(user: User) -> None:
    if user.role != Role.coordinator:
        raise Forbidden()


def _out(session: Session, entry: FlaggedHandle) -> FlaggedHandleOut:
    reason = crypto.open_field(
        session, entry.reason_ct, table="flagged_handle", column="reason", row_id=entry.id, subject_id=entry.id
    )
    return FlaggedHandleOut(id=entry.id, added_by=entry.added_by, added_on=entry.added_on, reason=reason)


def add_flagged_handle(*, session: Session, actor: User, data: FlaggedHandleIn) -> FlaggedHandleOut:
    """Put a handle on the known-bad list (sealed, blind-indexed); 409 if it is already there."""
    _require_coordinator(actor)
    if flagged_entries_for(session, handle=data.handle):
        raise Conflict("this handle is already on the list")
    entry_id = crypto.new_subject_id()
    key = crypto.create_subject_key(session, subject_id=entry_id)
    sealed = crypto.seal_field(session, data.handle, key=key, table="flagged_handle", column="handle", row_id=entry_id)
    assert sealed is not None
    entry = FlaggedHandle(
        id=entry_id,
        handle_ct=sealed,
        reason_ct=crypto.seal_field(
            session, data.reason, key=key, table="flagged_handle", column="reason", row_id=entry_id
        ),
        added_by=actor.username,
        added_on=crypto.settings_of(session).today(),
    )
    session.add(entry)
    crypto.add_index_entry(session, subject_id=entry_id, column=INDEX_COLUMN, value=data.handle)
    session.flush()
    audit.record(session, actor=actor.username, action="flagged_handle.add", target=entry_id.hex)
    return FlaggedHandleOut(id=entry.id, added_by=entry.added_by, added_on=entry.added_on, reason=data.reason)


def list_flagged_handles(*, session: Session, actor: User) -> FlaggedHandleList:
    """Every entry with who added it, when and why; never the handle itself."""
    _require_coordinator(actor)
    entries: Sequence[FlaggedHandle] = session.scalars(
        select(FlaggedHandle).order_by(FlaggedHandle.added_on.desc(), FlaggedHandle.id)
    ).all()
    audit.record(session, actor=actor.username, action="flagged_handle.list", detail={"entries": len(entries)})
    return FlaggedHandleList(items=[_out(session, e) for e in entries], total=len(entries))


def remove_flagged_handle(*, session: Session, actor: User, entry_id: uuid.UUID) -> None:
    """Take an entry off the list: its key and index entry are destroyed with the row."""
    _require_coordinator(actor)
    entry = session.get(FlaggedHandle, entry_id)
    if entry is None:
        raise NotFound()
    crypto.shred_subject(session, subject_id=entry.id)
    session.delete(entry)
    session.flush()
    audit.record(session, actor=actor.username, action="flagged_handle.remove", target=entry_id.hex)
