"""Crypto-shredding one contact or case: its data key and blind-index entries go, its ciphertexts are nulled.

Enums, dates and codes stay, so every aggregate count is unchanged; ``shredded_on``/``shredded_by`` say
when and by whom. The caller commits, then calls ``scrub_storage`` so freed pages do not linger.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

import app.models  # noqa: F401  (every mapper, so relationships resolve in a bare CLI process)
from app.audit import service as audit
from app.cases import service as case_service
from app.cases.models import Case, CaseTransition
from app.contacts import service as contact_service
from app.contacts.models import Contact
from app.crypto import service as crypto
from app.errors import Conflict
from app.notes import service as notes_service
from app.referrals.models import Consent

log = logging.getLogger(__name__)

CONTACT_SEALED = ("alias_ct", "handle_ct", "notes_ct")
CASE_SEALED = ("full_name_ct", "handle_ct", "location_ct", "family_situation_ct", "notes_ct")
# Tables whose rows a shred rewrites or deletes: what a PostgreSQL VACUUM after it must cover.
TOUCHED_TABLES = (
    "data_key",
    "blind_index_entry",
    "contact",
    "evacuation_case",
    "case_transition",
    "record_note",
    "field_correction",
    "referral_consent",
)


@dataclass(frozen=True)
class ShredInfo:
    on: date
    by: str


def shred_info(record: Contact | Case) -> ShredInfo | None:
    """When and by whom a contact or case was shredded, or None if it was not."""
    if record.shredded_on is None:
        return None
    return ShredInfo(on=record.shredded_on, by=record.shredded_by or "unknown")


def _already(kind: str, record: Contact | Case) -> Conflict:
    info = shred_info(record)
    assert info is not None
    return Conflict(f"{kind} {record.code} was already shredded on {info.on.isoformat()} by {info.by}")


def _shred_record(
    session: Session, *, kind: str, record: Contact | Case, columns: tuple[str, ...], actor: str, reason: str
) -> None:
    """Destroy one subject's key and index entries, blank its sealed columns, stamp and audit it."""
    if record.shredded_on is not None:
        raise _already(kind, record)
    crypto.shred_subject(session, subject_id=record.id)
    notes_service.blank_for_shred(session, subject_id=record.id)
    for column in columns:
        setattr(record, column, None)
    record.shredded_on = crypto.settings_of(session).today()
    record.shredded_by = actor
    audit.record(session, actor=actor, action=f"{kind}.shred", target=record.code, detail={"reason": reason})


def shred_case_record(session: Session, *, actor: str, case: Case, reason: str) -> None:
    """Shred one loaded case in the caller's transaction (its transition notes too); audited."""
    _shred_record(session, kind="case", record=case, columns=CASE_SEALED, actor=actor, reason=reason)
    session.execute(update(CaseTransition).where(CaseTransition.case_id == case.id).values(note_ct=None))
    # Consent terms are sealed with the case; its referrals keep only their unsealed facts.
    session.execute(update(Consent).where(Consent.case_id == case.id).values(terms_ct=None))


def shred_contact_record(session: Session, *, actor: str, contact: Contact, reason: str) -> None:
    """Shred one loaded contact in the caller's transaction; its cases are separate subjects and stay."""
    _shred_record(session, kind="contact", record=contact, columns=CONTACT_SEALED, actor=actor, reason=reason)


def shred_case(*, session: Session, actor: str, code: str, with_contact: bool = False) -> list[str]:
    """Crypto-shred a case by code (and, if asked, the contact it came from); returns the codes shredded."""
    case = case_service.get_case_by_code(session=session, code=code)
    shred_case_record(session, actor=actor, case=case, reason="request")
    done = [case.code]
    if with_contact:
        contact = session.get(Contact, case.contact_id)
        if contact is not None and contact.shredded_on is None:
            shred_contact_record(session, actor=actor, contact=contact, reason="request")
            done.append(contact.code)
    session.flush()
    return done


def shred_contact(*, session: Session, actor: str, code: str, with_cases: bool = False) -> list[str]:
    """Crypto-shred a contact by code (and, if asked, every case opened from it); returns the codes shredded."""
    contact = contact_service.get_contact_by_code(session=session, code=code)
    shred_contact_record(session, actor=actor, contact=contact, reason="request")
    done = [contact.code]
    if with_cases:
        cases = session.scalars(
            select(Case).where(Case.contact_id == contact.id, Case.shredded_on.is_(None)).order_by(Case.code)
        )
        for case in cases:
            shred_case_record(session, actor=actor, case=case, reason="request")
            done.append(case.code)
    session.flush()
    return done


def scrub_storage(engine: Engine) -> bool:
    """After a committed shred: fold the SQLite WAL into the (secure_delete) file and truncate it, or VACUUM
    the touched PostgreSQL tables. Returns False if SQLite could not finish (a reader held old pages)."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            busy = (cursor.fetchone() or (0,))[0]
            cursor.close()
        finally:
            raw.close()
        if busy:
            log.warning("WAL checkpoint incomplete: a reader is open; it completes at the next checkpoint")
        return not busy
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM " + ", ".join(TOUCHED_TABLES))
    return True
