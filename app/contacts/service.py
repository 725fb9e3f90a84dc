"""Hotline contacts: intake, duplicate and known-bad checks, need-to-know reads, lists, outcomes."""

from __future__ import annotations

import secrets
import uuid
from datetime import date
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.attention import service as attention
from app.audit import seals
from app.audit import service as audit
from app.auth.models import Role, User
from app.cases import permissions
from app.cases.models import Case
from app.contacts import flagged
from app.contacts.models import Contact
from app.contacts.schemas import (
    ContactDetail,
    ContactIn,
    ContactPage,
    ContactSummary,
    DuplicateRef,
    Outcome,
    Risk,
)
from app.crypto import service as crypto
from app.db import insert_on_conflict
from app.errors import Conflict, Forbidden, HelplineError, Invalid, NotFound
from app.notes import service as notes_service
from app.notes.schemas import ContactCorrectionIn, NoteOut
from app.stats import counters

INDEX_COLUMN = "contact.handle"
SEALED = ("alias", "handle", "notes")

# Crockford base32 without I, L, O, U: readable over a bad phone line, no look-alikes.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_ATTEMPTS = 8


def new_code(prefix: str) -> str:
    """A random record code like ``H-7K3Q-9M`` (30 bits; not a sequence, says nothing about order)."""
    chars = "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))
    return f"{prefix}-{chars[:4]}-{chars[4:]}"


def insert_with_code(session: Session, row: Any, *, prefix: str) -> None:
    """Insert ``row`` with a fresh random code, drawing again if the code is already taken."""
    for _ in range(CODE_ATTEMPTS):
        row.code = new_code(prefix)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            return
        except IntegrityError:
            continue
    raise HelplineError("could not draw a free record code; try again")


def _insert_contact_stmt(dialect: str) -> Any:
    insert = insert_on_conflict(dialect)
    # RETURNING says whether the row went in (a cursor's rowcount is not reliable on every driver).
    return insert(Contact).on_conflict_do_nothing(index_elements=["code"]).returning(Contact.id)


# Built once. ON CONFLICT on the code only: a taken code inserts nothing and is drawn again, without a
# SAVEPOINT (on PostgreSQL a failed INSERT would abort the whole transaction); any other conflict fails.
_INSERT_CONTACT = {dialect: _insert_contact_stmt(dialect) for dialect in ("postgresql", "sqlite")}


def insert_contact(session: Session, values: dict[str, Any], *, draw: Any = None) -> None:
    """Insert a contact row (Core, no ORM flush) with a fresh random code in ``values["code"]``."""
    conn = session.connection()
    stmt = _INSERT_CONTACT[conn.dialect.name]
    keyring = crypto.keyring_of(session)
    for _ in range(CODE_ATTEMPTS):
        values["code"] = (draw or new_code)("H")
        seals.seal_insert(keyring, Contact, values)  # Core passes no ORM hook: a sealed table is sealed here
        if conn.execute(stmt, values).first() is not None:
            return
    raise HelplineError("could not draw a free record code; try again")


def validate_region(session: Session, region: str, *, field: str = "region") -> None:
    regions = crypto.settings_of(session).regions
    if region not in regions:
        raise Invalid.field(field, "unknown region; use one of: {regions}", regions=", ".join(regions))


def validate_language(session: Session, language: str) -> None:
    languages = crypto.settings_of(session).languages
    if language.lower() not in languages:
        raise Invalid.field("language", "unknown language; choose one from the list")


def _not_future(session: Session, day: date, *, field: str) -> None:
    if day > crypto.settings_of(session).today():
        raise Invalid.field(field, "must not be in the future")


def record_contact(*, session: Session, actor: User, data: ContactIn, rate_limited: bool = True) -> ContactSummary:
    """Record a hotline contact, sealed under its own key; flags a repeat caller or a known-bad handle.

    No membership oracle: ``possible_duplicate`` and ``duplicate_of`` speak only of records the caseworker
    may read already. A match with anyone else's record goes silently to the coordinators' queue with
    both codes, so the answer for a handle another caseworker recorded is the answer for a new one.
    Every candidate the check decrypts is audited and counted against the bulk-read alarm, and intake
    itself is rate-limited per caseworker. A known-bad hit is shown (it protects the caseworker) and
    always alerts the coordinators. ``rate_limited=False`` is for synthetic demo data only.
    """
    if actor.role != Role.caseworker:
        raise Forbidden()
    if rate_limited:
        permissions.check_intake_rate(session, user=actor)
    validate_region(session, data.region)
    validate_language(session, data.language)
    _not_future(session, data.received_on, field="received_on")
    contact_id = crypto.new_subject_id()
    matches: list[uuid.UUID] = []
    hits: list[uuid.UUID] = []
    if data.handle:
        # Both look-ups (earlier contacts, the known-bad list), every live epoch of each, in one query.
        found = crypto.index_matches_many(session, columns=(INDEX_COLUMN, flagged.INDEX_COLUMN), value=data.handle)
        matches = flagged.handle_matches(
            session,
            model=Contact,
            table="contact",
            column=INDEX_COLUMN,
            value=data.handle,
            reader=actor if rate_limited else None,
            candidates=[*found[INDEX_COLUMN][0], *found[INDEX_COLUMN][1]],
        )
        bad = found[flagged.INDEX_COLUMN]
        hits = flagged.flagged_entries_for(session, handle=data.handle, candidates=[*bad[0], *bad[1]])
    seen: list[tuple[uuid.UUID, str]] = []
    others: list[str] = []
    if matches:
        visible = permissions.contacts_visible_to(actor)
        for row_id, code, readable in session.execute(
            select(Contact.id, Contact.code, visible).where(Contact.id.in_(matches)).order_by(Contact.code)
        ):
            (seen.append((row_id, code)) if readable else others.append(code))
    key = crypto.create_subject_key(session, subject_id=contact_id)
    values: dict[str, Any] = {
        "id": contact_id,
        "received_on": data.received_on,
        "channel": data.channel.value,
        "region": data.region,
        "language": data.language.lower(),
        "risk": data.risk.value,
        "needs": ",".join(sorted({n.value for n in data.needs})),
        "outcome": None,
        "possible_duplicate": bool(seen),
        "flagged_handle": bool(hits),
        "recorded_by_id": actor.id,
        "last_activity_on": data.received_on,
        "shredded_on": None,
        "shredded_by": None,
    }
    for name in SEALED:
        values[f"{name}_ct"] = crypto.seal_field(
            session, getattr(data, name), key=key, table="contact", column=name, row_id=contact_id
        )
    insert_contact(session, values)
    # Not added to the session: the row is written; this object only answers and counts.
    contact = Contact(**values)
    crypto.add_index_entry(session, subject_id=contact_id, column=INDEX_COLUMN, value=data.handle)
    audit.record(
        session,
        actor=actor.username,
        action="contact.record",
        target=contact.code,
        detail={"channel": contact.channel, "region": contact.region, "risk": contact.risk},
    )
    if hits:
        audit.record(
            session,
            actor=actor.username,
            action="contact.flagged_handle",
            target=contact.code,
            detail={"entries": [h.hex for h in hits]},
        )
        attention.raise_item(session, kind="known_bad", raised_by=actor.username, record_code=contact.code)
    for code in others:
        attention.raise_item(
            session,
            kind="duplicate",
            raised_by=actor.username,
            record_code=contact.code,
            other_code=code,
        )
    if contact.risk == Risk.immediate:
        attention.raise_item(session, kind="immediate_danger", raised_by=actor.username, record_code=contact.code)
    counters.contact_recorded(session, contact=contact)
    summary = _summary(contact, recorded_by=actor.username, case_id=None)
    summary.duplicate_of = [DuplicateRef(id=i, code=c) for i, c in seen]
    return summary


def _summary(contact: Contact, *, recorded_by: str | None, case_id: uuid.UUID | None) -> ContactSummary:
    return ContactSummary(
        id=contact.id,
        code=contact.code,
        received_on=contact.received_on,
        channel=contact.channel,  # type: ignore[arg-type]
        region=contact.region,
        language=contact.language,
        risk=contact.risk,  # type: ignore[arg-type]
        needs=[n for n in contact.needs.split(",") if n],  # type: ignore[misc]
        outcome=contact.outcome,  # type: ignore[arg-type]
        possible_duplicate=contact.possible_duplicate,
        flagged_handle=contact.flagged_handle,
        recorded_by=recorded_by,
        case_id=case_id,
        shredded=contact.shredded_on is not None,
    )


def _with_context(stmt: Select[Any]) -> Select[Any]:
    case_id = select(Case.id).where(Case.contact_id == Contact.id).limit(1).scalar_subquery()
    return stmt.add_columns(User.username, case_id).outerjoin(User, User.id == Contact.recorded_by_id)


def get_contact_for(*, session: Session, actor: User, contact_id: uuid.UUID) -> Contact:
    """The contact if ``actor`` may see it; 403 for roles without contacts, 404 for the rest."""
    permissions.require_contact_access(actor)
    contact = session.scalar(select(Contact).where(Contact.id == contact_id, permissions.contacts_visible_to(actor)))
    if contact is None:
        raise NotFound()
    if contact.recorded_by_id != actor.id and actor.role == Role.caseworker:
        # Seen through a case assigned to the actor: load that case, so its seal is checked (app.audit.seals)
        # and an assignment forged by SQL opens no contact either.
        session.scalars(select(Case).where(Case.contact_id == contact.id, Case.assigned_to_id == actor.id)).all()
    return contact


def get_contact_by_code(*, session: Session, code: str) -> Contact:
    """A contact by its record code, without permission checks (command line only)."""
    contact = session.scalar(select(Contact).where(Contact.code == code.strip().upper()))
    if contact is None:
        raise NotFound(f"no contact {code}")
    return contact


def _context_of(session: Session, contact: Contact) -> tuple[str | None, uuid.UUID | None]:
    row = session.execute(_with_context(select(Contact.id).where(Contact.id == contact.id))).one()
    return row[1], row[2]


def contact_view(*, session: Session, actor: User, contact_id: uuid.UUID) -> ContactDetail:
    """A visible contact without its sealed fields (no decryption, nothing to audit)."""
    contact = get_contact_for(session=session, actor=actor, contact_id=contact_id)
    recorded_by, case_id = _context_of(session, contact)
    base = _summary(contact, recorded_by=recorded_by, case_id=case_id)
    return ContactDetail(**base.model_dump(), redacted=True, **_history(session, contact, decrypt=False))


def _history(session: Session, contact: Contact, *, decrypt: bool) -> dict[str, Any]:
    return {
        "added_notes": notes_service.notes_of(session, subject_id=contact.id, decrypt=decrypt),
        "corrections": notes_service.corrections_of(session, subject_id=contact.id, decrypt=decrypt),
    }


def read_contact(*, session: Session, actor: User, contact_id: uuid.UUID) -> ContactDetail:
    """A visible contact with its sealed fields opened for a caseworker; the read is audited and throttled."""
    contact = get_contact_for(session=session, actor=actor, contact_id=contact_id)
    recorded_by, case_id = _context_of(session, contact)
    base = _summary(contact, recorded_by=recorded_by, case_id=case_id)
    if not permissions.may_decrypt_contact(actor) or contact.shredded_on is not None:
        return ContactDetail(**base.model_dump(), redacted=True, **_history(session, contact, decrypt=False))
    permissions.record_decrypted_read(session, user=actor, action="contact.read", target=contact.code)
    opened = {
        name: crypto.open_field(
            session,
            getattr(contact, f"{name}_ct"),
            table="contact",
            column=name,
            row_id=contact.id,
            subject_id=contact.id,
        )
        for name in SEALED
    }
    return ContactDetail(**base.model_dump(), redacted=False, **opened, **_history(session, contact, decrypt=True))


def aliases_for(*, session: Session, actor: User, contact_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The aliases of the listed contacts that ``actor`` recorded, each opening audited and counted."""
    if actor.role != Role.caseworker or not contact_ids:
        return {}
    rows = session.execute(
        select(Contact.id, Contact.code, Contact.alias_ct).where(
            Contact.id.in_(contact_ids),
            Contact.recorded_by_id == actor.id,
            Contact.shredded_on.is_(None),
            Contact.alias_ct.is_not(None),
        )
    ).all()
    permissions.record_decrypted_reads(session, user=actor, action="contact.lookup", targets=[r[1] for r in rows])
    opened = {
        row_id: crypto.open_field(session, blob, table="contact", column="alias", row_id=row_id, subject_id=row_id)
        for row_id, _code, blob in rows
    }
    return {row_id: alias for row_id, alias in opened.items() if alias is not None}


def _for_amending(session: Session, actor: User, contact_id: uuid.UUID) -> Contact:
    contact = get_contact_for(session=session, actor=actor, contact_id=contact_id)
    if not permissions.may_decrypt_contact(actor):
        raise Forbidden("only a caseworker who may read this contact can add to it")
    if contact.shredded_on is not None:
        raise Conflict("this contact was shredded")
    return contact


def add_note(*, session: Session, actor: User, contact_id: uuid.UUID, text: str) -> NoteOut:
    """Append a note to a contact its reader may open: sealed under the contact's key, dated, audited."""
    contact = _for_amending(session, actor, contact_id)
    contact.last_activity_on = max(contact.last_activity_on, crypto.settings_of(session).today())
    return notes_service.add_note(session, actor=actor, kind="contact", record=contact, text=text)


def correct_contact(
    *, session: Session, actor: User, contact_id: uuid.UUID, data: ContactCorrectionIn
) -> ContactDetail:
    """Correct a contact's sealed fields (those sent); each previous value stays sealed in its history."""
    contact = _for_amending(session, actor, contact_id)
    changes = {name: getattr(data, name) for name in data.model_fields_set if name in SEALED}
    notes_service.correct(
        session,
        actor=actor,
        kind="contact",
        record=contact,
        table="contact",
        changes=changes,
        index_column=INDEX_COLUMN,
    )
    session.flush()
    return read_contact(session=session, actor=actor, contact_id=contact_id)


def list_contacts(
    *,
    session: Session,
    actor: User,
    region: str | None = None,
    outcome: str | None = None,
    received_from: date | None = None,
    received_to: date | None = None,
    limit: int = 50,
    offset: int = 0,
) -> ContactPage:
    """A page of the contacts ``actor`` may see, newest first, without any decrypted field."""
    permissions.require_contact_access(actor)
    conditions = [permissions.contacts_visible_to(actor)]
    if region is not None:
        conditions.append(Contact.region == region)
    if outcome is not None:
        conditions.append(Contact.outcome == outcome)
    if received_from is not None:
        conditions.append(Contact.received_on >= received_from)
    if received_to is not None:
        conditions.append(Contact.received_on <= received_to)
    total = session.scalar(select(func.count()).select_from(Contact).where(*conditions)) or 0
    stmt = (
        _with_context(select(Contact).where(*conditions))
        .order_by(Contact.received_on.desc(), Contact.code)
        .limit(limit)
        .offset(offset)
    )
    items = [_summary(c, recorded_by=name, case_id=cid) for c, name, cid in session.execute(stmt)]
    return ContactPage(items=items, total=total, limit=limit, offset=offset)


def set_outcome(*, session: Session, actor: User, contact_id: uuid.UUID, outcome: str) -> ContactSummary:
    """Record what came of a contact (its recorder only); ``case_opened`` comes from opening a case."""
    contact = get_contact_for(session=session, actor=actor, contact_id=contact_id)
    if contact.recorded_by_id != actor.id:
        raise Forbidden("only the caseworker who recorded this contact sets its outcome")
    new = Outcome(outcome).value
    if new == Outcome.case_opened:
        raise Invalid.field("outcome", "open a case from this contact instead")
    # Only opening a case sets case_opened, and nothing else unsets it: no need to look for the case.
    if contact.outcome == Outcome.case_opened:
        raise Conflict("a case is open from this contact; its outcome stays case_opened")
    change_outcome(session, actor=actor, contact=contact, outcome=new)
    return _summary(contact, recorded_by=actor.username, case_id=None)


def change_outcome(session: Session, *, actor: User, contact: Contact, outcome: str, on: date | None = None) -> None:
    """Set the outcome, keeping the stats hooks and the audit log in step (used by case opening too)."""
    old = contact.outcome
    if old == outcome:
        return
    contact.outcome = outcome
    contact.last_activity_on = max(contact.last_activity_on, on or crypto.settings_of(session).today())
    # No flush of its own: audit.record flushes this change together with its entry.
    audit.record(
        session,
        actor=actor.username,
        action="contact.outcome",
        target=contact.code,
        detail={"from": old, "to": outcome},
    )
    counters.contact_outcome_changed(session, contact=contact, old=old, new=outcome)
