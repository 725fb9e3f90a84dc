"""The coordinators' "needs attention" queue: one table, one entry per thing to look at.

A kind is a name in ``KINDS`` and nothing more: a new alarm (a duress sign-in, say) is one more entry
there and a call to ``raise_item`` where it happens. Entries hold record codes, days and user names —
what coordinators may see anyway — never a sealed value. An entry stays open until a coordinator
resolves it, or its cause goes away (a verification request ends when the case is verified).
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.attention.models import OPEN, THING, AttentionItem
from app.attention.schemas import AttentionList, AttentionOut
from app.audit import service as audit
from app.auth.models import Role, User
from app.crypto import service as crypto
from app.db import insert_on_conflict, new_id
from app.errors import Forbidden, NotFound

# Every kind of entry; pages show each by its name in app/web/labels.py (ATTENTION).
KINDS = ("verification_request", "immediate_danger", "known_bad", "duplicate", "duress")


def _require_coordinator(user: User) -> None:
    if user.role != Role.coordinator:
        raise Forbidden()


def raise_item(
    session: Session,
    *,
    kind: str,
    raised_by: str,
    record_code: str | None = None,
    other_code: str | None = None,
    case_id: uuid.UUID | None = None,
) -> None:
    """Put an entry in the queue (once: an open entry for the same thing is not repeated); audited when it is new.

    "The same thing" is ``uq_attention_item_open_thing`` (app/attention/models.py): the insert goes
    ``ON CONFLICT DO NOTHING`` against it, so a repeat, or a rival worker's entry raised at the same moment,
    leaves the one entry there and no second audit line. One statement either way, no look-up first.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown attention kind {kind}")  # a programming error, never user input
    # An entry this transaction resolved through the ORM must be resolved in the table before the insert
    # meets the index (nothing to write, as on intake's Core path, costs nothing).
    session.flush()
    # Core, no ORM object: the row is new and nothing in this transaction holds it as an object.
    conn = session.connection()
    inserted = conn.execute(
        _insert(conn.dialect.name),
        {
            "id": new_id(),
            "kind": kind,
            "raised_on": crypto.settings_of(session).today(),
            "raised_by": raised_by,
            "record_code": record_code,
            "other_code": other_code,
            "case_id": case_id,
            "resolved_on": None,
            "resolved_by": None,
        },
    ).first()
    if inserted is None:
        return
    detail = {"other": other_code} if other_code else None
    audit.record(session, actor=raised_by, action=f"attention.{kind}", target=record_code, detail=detail)


@functools.cache
def _insert(dialect: str) -> Any:
    """The insert for ``dialect``, built at its first use and kept."""
    insert = insert_on_conflict(dialect)
    # The conflict target is the one index, so any other conflict still fails loudly. RETURNING says whether
    # the row went in (a cursor's rowcount is not reliable on every driver).
    return (
        insert(AttentionItem)
        .on_conflict_do_nothing(index_elements=list(THING), index_where=OPEN)
        .returning(AttentionItem.id)
    )


def open_count(session: Session) -> int:
    """How many entries are open (the number beside "Needs attention" in the navigation)."""
    return (
        session.scalar(select(func.count()).select_from(AttentionItem).where(AttentionItem.resolved_on.is_(None))) or 0
    )


def list_open(*, session: Session, actor: User, limit: int = 50, offset: int = 0) -> AttentionList:
    """A page of the open entries, oldest first, and how many are open in all (coordinators only)."""
    _require_coordinator(actor)
    open_items = AttentionItem.resolved_on.is_(None)
    total = session.scalar(select(func.count()).select_from(AttentionItem).where(open_items)) or 0
    rows = session.scalars(
        select(AttentionItem)
        .where(open_items)
        # The id last: entries raised the same day about the same record keep one order from page to page.
        .order_by(AttentionItem.raised_on, AttentionItem.kind, AttentionItem.record_code, AttentionItem.id)
        .limit(limit)
        .offset(offset)
    ).all()
    items = [
        AttentionOut(
            id=r.id,
            kind=r.kind,
            raised_on=r.raised_on,
            raised_by=r.raised_by,
            case_id=r.case_id,
            record_code=r.record_code,
            other_code=r.other_code,
        )
        for r in rows
    ]
    return AttentionList(items=items, total=total, limit=limit, offset=offset)


def resolve(*, session: Session, actor: User, item_id: uuid.UUID) -> None:
    """Mark an entry dealt with (coordinators only); audited."""
    _require_coordinator(actor)
    item = session.get(AttentionItem, item_id)
    if item is None or item.resolved_on is not None:
        raise NotFound()
    item.resolved_on = crypto.settings_of(session).today()
    item.resolved_by = actor.username
    audit.record(
        session, actor=actor.username, action="attention.resolve", target=item.record_code, detail={"kind": item.kind}
    )


def resolve_for_case(session: Session, *, case_id: uuid.UUID, kind: str, by: str) -> None:
    """Close a case's open entries of ``kind`` because their cause went away (no audit of its own)."""
    for item in session.scalars(
        select(AttentionItem).where(
            AttentionItem.case_id == case_id, AttentionItem.kind == kind, AttentionItem.resolved_on.is_(None)
        )
    ):
        item.resolved_on = crypto.settings_of(session).today()
        item.resolved_by = by
