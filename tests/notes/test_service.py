"""The notes service itself: where each note and previous value goes, what it is sealed to, what is audited.

The envelope bindings (table, column, row) are stored format: a note written today must open with the
same names after an upgrade, so the tests open what is stored with the names written out here.
"""

from __future__ import annotations

import json
from datetime import date

from sqlalchemy import select, text, update

from app.audit.models import AuditEntry
from app.cases.models import Case
from app.contacts.models import Contact
from app.crypto import service as crypto
from app.notes import service as notes
from app.notes.models import FieldCorrection, RecordNote
from app.notes.schemas import CorrectionOut, NoteOut

INDEX = "contact.handle"


def _contact(session, factory, worker, **fields) -> Contact:
    values = {"alias": "Zelim", "handle": "+7 928 555-01-47", "notes": "first call", **fields}
    return session.get(Contact, factory.contact(worker, **values).id)


def _correct(session, actor, contact, changes: dict, *, index: bool = True) -> list[str]:
    """A correction of a contact, with its handle index named (as the contacts service does) unless not ``index``."""
    return notes.correct(
        session,
        actor=actor,
        kind="contact",
        record=contact,
        table="contact",
        changes=changes,
        index_column=INDEX if index else None,
    )


def _audit(session, target: str) -> list[tuple[str, str, dict]]:
    session.commit()  # pending entries are written at commit (a savepoint here)
    rows = session.execute(
        select(AuditEntry.actor, AuditEntry.action, AuditEntry.detail)
        .where(AuditEntry.target == target, AuditEntry.action.in_(("contact.note", "case.note", "contact.correct")))
        .order_by(AuditEntry.seq)
    )
    return [(actor, action, json.loads(detail)) for actor, action, detail in rows]


def _open(session, blob: bytes | None, *, table: str, column: str, row_id, subject_id) -> str | None:
    return crypto.open_field(session, blob, table=table, column=column, row_id=row_id, subject_id=subject_id)


def test_notes_take_places_from_one_per_record_sealed_to_their_own_row_and_audited(session, factory):
    worker = factory.user("caseworker")
    contact = _contact(session, factory, worker)
    case = session.get(Case, factory.case(worker, contact_id=contact.id).id)
    first = notes.add_note(session, actor=worker, kind="contact", record=contact, text="rang back 4410")
    notes.add_note(session, actor=worker, kind="contact", record=contact, text="safe for now 4410")
    on_case = notes.add_note(session, actor=worker, kind="case", record=case, text="bus on Monday")
    assert first == NoteOut(written_on=date.today(), author=worker.username, text="rang back 4410")
    assert on_case == NoteOut(written_on=date.today(), author=worker.username, text="bus on Monday")
    session.flush()
    rows = session.scalars(select(RecordNote).order_by(RecordNote.subject_id, RecordNote.position)).all()
    stored = {
        (r.subject_id, r.kind, r.position, r.written_on, r.author_id): _open(
            session, r.text_ct, table="record_note", column="text", row_id=r.id, subject_id=r.subject_id
        )
        for r in rows
    }
    assert stored == {
        (contact.id, "contact", 1, date.today(), worker.id): "rang back 4410",
        (contact.id, "contact", 2, date.today(), worker.id): "safe for now 4410",
        (case.id, "case", 1, date.today(), worker.id): "bus on Monday",
    }
    assert _audit(session, contact.code) == [
        (worker.username, "contact.note", {}),
        (worker.username, "contact.note", {}),
    ]
    assert _audit(session, case.code) == [(worker.username, "case.note", {})]


def test_notes_of_lists_oldest_first_with_authors_and_texts_only_when_asked(session, factory):
    worker, colleague = factory.user("caseworker"), factory.user("caseworker")
    contact = _contact(session, factory, worker)
    assert notes.notes_of(session, subject_id=contact.id, decrypt=True) == []
    notes.add_note(session, actor=worker, kind="contact", record=contact, text="one")
    notes.add_note(session, actor=colleague, kind="contact", record=contact, text="two")
    session.flush()
    today = date.today()
    assert notes.notes_of(session, subject_id=contact.id, decrypt=True) == [
        NoteOut(written_on=today, author=worker.username, text="one"),
        NoteOut(written_on=today, author=colleague.username, text="two"),
    ]
    assert notes.notes_of(session, subject_id=contact.id, decrypt=False) == [
        NoteOut(written_on=today, author=worker.username, text=None),
        NoteOut(written_on=today, author=colleague.username, text=None),
    ]


def test_a_correction_keeps_each_changed_previous_value_in_order_and_reports_only_those(session, factory):
    worker = factory.user("caseworker")
    contact = _contact(session, factory, worker)
    changed = _correct(session, worker, contact, {"alias": "Zelim", "handle": "@zelim_new", "notes": None})
    assert changed == ["handle", "notes"]
    again = _correct(session, worker, contact, {"alias": "Zelimkhan"})
    assert again == ["alias"]
    session.flush()
    rows = session.scalars(
        select(FieldCorrection).where(FieldCorrection.subject_id == contact.id).order_by(FieldCorrection.position)
    ).all()
    stored = [
        (
            r.kind,
            r.position,
            r.field,
            r.corrected_on,
            r.actor_id,
            _open(
                session, r.previous_ct, table="field_correction", column="previous", row_id=r.id, subject_id=contact.id
            ),
        )
        for r in rows
    ]
    today = date.today()
    assert stored == [
        ("contact", 1, "handle", today, worker.id, "+7 928 555-01-47"),
        ("contact", 2, "notes", today, worker.id, "first call"),
        ("contact", 3, "alias", today, worker.id, "Zelim"),
    ]
    # The new values are sealed where the record keeps them: its table, the field's column, its own row.
    current = {
        name: _open(
            session,
            getattr(contact, f"{name}_ct"),
            table="contact",
            column=name,
            row_id=contact.id,
            subject_id=contact.id,
        )
        for name in ("alias", "handle", "notes")
    }
    assert current == {"alias": "Zelimkhan", "handle": "@zelim_new", "notes": None}
    assert _audit(session, contact.code) == [
        (worker.username, "contact.correct", {"fields": ["handle", "notes"]}),
        (worker.username, "contact.correct", {"fields": ["alias"]}),
    ]


def test_a_correction_that_changes_nothing_writes_and_audits_nothing(session, factory):
    worker = factory.user("caseworker")
    contact = _contact(session, factory, worker)
    before = contact.alias_ct
    changed = _correct(session, worker, contact, {"alias": "Zelim", "notes": "first call"})
    assert changed == []
    assert contact.alias_ct == before
    session.flush()
    assert notes.corrections_of(session, subject_id=contact.id, decrypt=True) == []
    assert _audit(session, contact.code) == []


def test_a_corrected_handle_moves_the_index_only_when_the_caller_names_the_index(session, factory):
    worker = factory.user("caseworker")
    moved = _contact(session, factory, worker, handle="@moved_4410")
    kept = _contact(session, factory, worker, handle="@kept_4410")
    _correct(session, worker, moved, {"handle": "@moved_new_4410"})
    _correct(session, worker, kept, {"handle": "@kept_new_4410"}, index=False)
    session.flush()

    def found(value: str) -> list:
        return crypto.index_candidates(session, column=INDEX, value=value)

    assert (found("@moved_4410"), found("@moved_new_4410")) == ([], [moved.id])
    assert (found("@kept_4410"), found("@kept_new_4410")) == ([kept.id], [])


def test_only_the_handle_is_indexed_when_other_fields_change(session, factory):
    worker = factory.user("caseworker")
    contact = _contact(session, factory, worker, handle="@stays_4410", alias="Adam")
    _correct(session, worker, contact, {"alias": "@alias_4410"})
    session.flush()
    assert crypto.index_candidates(session, column=INDEX, value="@stays_4410") == [contact.id]
    assert crypto.index_candidates(session, column=INDEX, value="@alias_4410") == []


def test_corrections_of_lists_oldest_first_with_actors_and_previous_values_only_when_asked(session, factory):
    worker, colleague = factory.user("caseworker"), factory.user("caseworker")
    contact = _contact(session, factory, worker)
    for actor, alias in ((worker, "Zelimkhan"), (colleague, "Zelimkhan B.")):
        _correct(session, actor, contact, {"alias": alias})
    session.flush()
    today = date.today()
    assert notes.corrections_of(session, subject_id=contact.id, decrypt=True) == [
        CorrectionOut(field="alias", corrected_on=today, actor=worker.username, previous="Zelim"),
        CorrectionOut(field="alias", corrected_on=today, actor=colleague.username, previous="Zelimkhan"),
    ]
    assert notes.corrections_of(session, subject_id=contact.id, decrypt=False) == [
        CorrectionOut(field="alias", corrected_on=today, actor=worker.username, previous=None),
        CorrectionOut(field="alias", corrected_on=today, actor=colleague.username, previous=None),
    ]


def test_blank_for_shred_drops_the_notes_and_previous_values_of_that_record_only(session, factory):
    worker = factory.user("caseworker")
    shredded, other = _contact(session, factory, worker), _contact(session, factory, worker)
    for record in (shredded, other):
        notes.add_note(session, actor=worker, kind="contact", record=record, text="note 4410")
        _correct(session, worker, record, {"alias": "B"})
    session.flush()
    notes.blank_for_shred(session, subject_id=shredded.id)
    session.flush()
    texts = dict(session.execute(select(RecordNote.subject_id, RecordNote.text_ct)).all())
    previous = dict(session.execute(select(FieldCorrection.subject_id, FieldCorrection.previous_ct)).all())
    assert (texts[shredded.id], previous[shredded.id]) == (None, None)
    assert texts[other.id] is not None and previous[other.id] is not None


def test_notes_and_corrections_come_in_their_places_not_in_the_order_rows_were_stored(session, factory):
    worker = factory.user("caseworker")
    contact = _contact(session, factory, worker)
    for written in ("stored first", "stored second", "stored third"):
        notes.add_note(session, actor=worker, kind="contact", record=contact, text=written)
    for alias in ("Zelim B.", "Zelim C.", "Zelim D."):
        _correct(session, worker, contact, {"alias": alias})
    session.flush()
    # Swap the first and last places (through a free one: each place is unique per record).
    for model in (RecordNote, FieldCorrection):
        for old, new in ((1, 99), (3, 1), (99, 3)):
            session.execute(
                update(model).where(model.subject_id == contact.id, model.position == old).values(position=new)
            )
    # SQLite reads through the (record, place) index, in place order with or without ORDER BY; told to return
    # unordered rows backwards, it too shows a read that forgot to order them.
    sqlite = session.get_bind().dialect.name == "sqlite"
    if sqlite:
        session.execute(text("PRAGMA reverse_unordered_selects = ON"))
    try:
        texts = [n.text for n in notes.notes_of(session, subject_id=contact.id, decrypt=True)]
        previous = [c.previous for c in notes.corrections_of(session, subject_id=contact.id, decrypt=True)]
    finally:
        if sqlite:
            session.execute(text("PRAGMA reverse_unordered_selects = OFF"))
    assert texts == ["stored third", "stored second", "stored first"]
    assert previous == ["Zelim C.", "Zelim B.", "Zelim"]
