"""Finding one's own records: by code, by handle through the blind indexes, by alias.

Nothing outside what the caseworker may read is ever decrypted: the handle look-up narrows the
index's candidates to visible records before opening any, and the alias search opens only the
caseworker's own newest records. Every record opened is audited as a ``contact.lookup`` and counts
towards the bulk-read alarm, so a search cannot be used to read in bulk either.
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import Role, User
from app.cases import permissions
from app.cases import service as case_service
from app.cases.models import Case
from app.contacts import flagged
from app.contacts import service as contact_service
from app.contacts.models import Contact
from app.crypto import service as crypto
from app.errors import Forbidden
from app.search.schemas import Hit, SearchResult

CODE = re.compile(r"^[HC]-[0-9A-Z]{4}-[0-9A-Z]{2}$")
ALIAS_SCOPE = 100  # newest visible contacts whose alias a search opens


def _by_code(session: Session, actor: User, code: str) -> list[Hit]:
    hits = []
    contact = session.execute(
        select(Contact.id, Contact.received_on).where(Contact.code == code, permissions.contacts_visible_to(actor))
    ).first()
    if contact is not None:
        hits.append(Hit(kind="contact", id=contact[0], code=code, on=contact[1], matched="code"))
    case = session.execute(
        select(Case.id, Case.opened_on).where(Case.code == code, permissions.cases_visible_to(actor))
    ).first()
    if case is not None:
        hits.append(Hit(kind="case", id=case[0], code=code, on=case[1], matched="code"))
    return hits


def _by_handle(session: Session, actor: User, handle: str) -> list[Hit]:
    hits = []
    contacts = flagged.handle_matches(
        session,
        model=Contact,
        table="contact",
        column=contact_service.INDEX_COLUMN,
        value=handle,
        reader=actor,
        where=permissions.contacts_visible_to(actor) & Contact.shredded_on.is_(None),
    )
    # Newest first, then by code, as the alias search: the same query always lists in the same order.
    for row_id, code, day in session.execute(
        select(Contact.id, Contact.code, Contact.received_on)
        .where(Contact.id.in_(contacts))
        .order_by(Contact.received_on.desc(), Contact.code)
    ):
        hits.append(Hit(kind="contact", id=row_id, code=code, on=day, matched="handle"))
    cases = flagged.handle_matches(
        session,
        model=Case,
        table=case_service.TABLE,
        column=case_service.INDEX_COLUMN,
        value=handle,
        reader=actor,
        where=permissions.cases_visible_to(actor) & Case.shredded_on.is_(None),
    )
    for row_id, code, day in session.execute(
        select(Case.id, Case.code, Case.opened_on).where(Case.id.in_(cases)).order_by(Case.opened_on.desc(), Case.code)
    ):
        hits.append(Hit(kind="case", id=row_id, code=code, on=day, matched="handle"))
    return hits


def _by_alias(session: Session, actor: User, text: str) -> list[Hit]:
    rows = session.execute(
        select(Contact.id, Contact.code, Contact.received_on, Contact.alias_ct)
        .where(permissions.contacts_visible_to(actor), Contact.shredded_on.is_(None), Contact.alias_ct.is_not(None))
        .order_by(Contact.received_on.desc(), Contact.code)
        .limit(ALIAS_SCOPE)
    ).all()
    permissions.record_decrypted_reads(session, user=actor, action="contact.lookup", targets=[r[1] for r in rows])
    wanted = text.casefold()
    hits = []
    for row_id, code, day, blob in rows:
        alias = crypto.open_field(session, blob, table="contact", column="alias", row_id=row_id, subject_id=row_id)
        if alias is not None and wanted in alias.casefold():
            hits.append(Hit(kind="contact", id=row_id, code=code, on=day, matched="alias", alias=alias))
    return hits


def search(*, session: Session, actor: User, query: str, alias: bool = False) -> SearchResult:
    """The caseworker's records matching ``query``: a code, a handle (any spelling), or with ``alias`` a name."""
    if actor.role != Role.caseworker:
        raise Forbidden()
    text = query.strip()[:200]
    hits: list[Hit] = []
    if CODE.match(text.upper()):
        hits = _by_code(session, actor, text.upper())
    elif text:
        hits = _by_alias(session, actor, text) if alias else _by_handle(session, actor, text)
    unique: dict[tuple[str, uuid.UUID], Hit] = {}
    for hit in hits:
        unique.setdefault((hit.kind, hit.id), hit)
    return SearchResult(query=text, hits=list(unique.values()), alias_scope=ALIAS_SCOPE)
