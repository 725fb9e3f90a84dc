"""Append-only notes and corrections of sealed fields, for contacts and cases alike.

The callers (the contacts and cases services) load the record and check that the actor may read it;
these functions seal, write the history and audit. Notes and previous values are sealed under the
record's own data key, so a shred of the record makes them unreadable together with it.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.models import User
from app.crypto import service as crypto
from app.notes.models import FieldCorrection, RecordNote
from app.notes.schemas import CorrectionOut, NoteOut

NOTE_TABLE = "record_note"
CORRECTION_TABLE = "field_correction"


def _next_position(session: Session, model: type[RecordNote] | type[FieldCorrection], subject_id: uuid.UUID) -> int:
    # Two writers racing for one place: the unique constraint refuses the second (a retried unit of work).
    last = session.scalar(select(func.max(model.position)).where(model.subject_id == subject_id))
    return (last or 0) + 1


def add_note(session: Session, *, actor: User, kind: str, record: Any, text: str) -> NoteOut:
    """Append a note to ``record`` (a loaded contact or case the actor may read), sealed and audited."""
    note_id = crypto.new_subject_id()
    key = crypto.current_subject_key(session, subject_id=record.id)
    today = crypto.settings_of(session).today()
    session.add(
        RecordNote(
            id=note_id,
            subject_id=record.id,
            kind=kind,
            position=_next_position(session, RecordNote, record.id),
            written_on=today,
            author_id=actor.id,
            text_ct=crypto.seal_field(session, text, key=key, table=NOTE_TABLE, column="text", row_id=note_id),
        )
    )
    audit.record(session, actor=actor.username, action=f"{kind}.note", target=record.code)
    return NoteOut(written_on=today, author=actor.username, text=text)


def correct(
    session: Session,
    *,
    actor: User,
    kind: str,
    record: Any,
    table: str,
    changes: dict[str, str | None],
    index_column: str | None = None,
) -> list[str]:
    """Replace sealed fields of ``record``, keeping each previous value sealed in its history; audited.

    Returns the names of the fields that really changed (a value sent unchanged leaves no history).
    """
    key = crypto.current_subject_key(session, subject_id=record.id)
    today = crypto.settings_of(session).today()
    changed: list[str] = []
    position = _next_position(session, FieldCorrection, record.id)
    for name, value in changes.items():
        old_blob = getattr(record, f"{name}_ct")
        old = crypto.open_field(session, old_blob, table=table, column=name, row_id=record.id, subject_id=record.id)
        if old == value:
            continue
        correction_id = crypto.new_subject_id()
        session.add(
            FieldCorrection(
                id=correction_id,
                subject_id=record.id,
                kind=kind,
                position=position + len(changed),
                field=name,
                corrected_on=today,
                actor_id=actor.id,
                previous_ct=crypto.seal_field(
                    session, old, key=key, table=CORRECTION_TABLE, column="previous", row_id=correction_id
                ),
            )
        )
        setattr(
            record,
            f"{name}_ct",
            crypto.seal_field(session, value, key=key, table=table, column=name, row_id=record.id),
        )
        if name == "handle" and index_column is not None:
            crypto.drop_index_entries(session, subject_id=record.id, column=index_column)
            crypto.add_index_entry(session, subject_id=record.id, column=index_column, value=value)
        changed.append(name)
    if changed:
        audit.record(
            session, actor=actor.username, action=f"{kind}.correct", target=record.code, detail={"fields": changed}
        )
    return changed


def _names(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    return {row[0]: row[1] for row in session.execute(select(User.id, User.username).where(User.id.in_(ids)))}


def notes_of(session: Session, *, subject_id: uuid.UUID, decrypt: bool) -> list[NoteOut]:
    """A record's notes, oldest first; texts only when ``decrypt`` (the caller has audited the read)."""
    rows = session.scalars(
        select(RecordNote).where(RecordNote.subject_id == subject_id).order_by(RecordNote.position)
    ).all()
    names = _names(session, {r.author_id for r in rows})
    return [
        NoteOut(
            written_on=r.written_on,
            author=names.get(r.author_id),
            text=crypto.open_field(
                session, r.text_ct, table=NOTE_TABLE, column="text", row_id=r.id, subject_id=subject_id
            )
            if decrypt
            else None,
        )
        for r in rows
    ]


def corrections_of(session: Session, *, subject_id: uuid.UUID, decrypt: bool) -> list[CorrectionOut]:
    """A record's corrections, oldest first; previous values only when ``decrypt``."""
    rows = session.scalars(
        select(FieldCorrection).where(FieldCorrection.subject_id == subject_id).order_by(FieldCorrection.position)
    ).all()
    names = _names(session, {r.actor_id for r in rows})
    return [
        CorrectionOut(
            field=r.field,
            corrected_on=r.corrected_on,
            actor=names.get(r.actor_id),
            previous=crypto.open_field(
                session, r.previous_ct, table=CORRECTION_TABLE, column="previous", row_id=r.id, subject_id=subject_id
            )
            if decrypt
            else None,
        )
        for r in rows
    ]


def blank_for_shred(session: Session, *, subject_id: uuid.UUID) -> None:
    """Drop the ciphertexts of a shredded record's notes and history (their key is gone already)."""
    session.execute(update(RecordNote).where(RecordNote.subject_id == subject_id).values(text_ct=None))
    session.execute(update(FieldCorrection).where(FieldCorrection.subject_id == subject_id).values(previous_ct=None))
