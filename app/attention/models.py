"""Entries of the coordinators' queue: codes, kinds and days only, never a sealed value."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import ColumnElement, Date, Index, String, Uuid, func, literal_column
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, new_id


class AttentionItem(Base):
    """Something a coordinator should look at; open until resolved. ``kind`` names what (see the service)."""

    __tablename__ = "attention_item"
    __table_args__ = (Index("ix_attention_item_open", "resolved_on", "kind"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    raised_on: Mapped[date] = mapped_column(Date)
    case_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # Record codes only: the record the entry is about, and the one it matched (duplicates).
    record_code: Mapped[str | None] = mapped_column(String(16))
    other_code: Mapped[str | None] = mapped_column(String(16))
    raised_by: Mapped[str] = mapped_column(String(64))
    resolved_on: Mapped[date | None] = mapped_column(Date)
    resolved_by: Mapped[str | None] = mapped_column(String(64))


# The thing an entry is about, as the queue tells two entries apart: its kind, both record codes (a missing
# code equal to a missing code, which a plain unique index would not do: record codes are never empty), and,
# for an entry about no record (a duress sign-in), the person who raised it. The last expression is that
# person when both codes are missing and otherwise a code already in the key, so it adds nothing there.
# Written into the SQL, not bound: SQLite matches an ON CONFLICT target to the index by its text.
_EMPTY: ColumnElement[str] = literal_column("''")
THING = (
    AttentionItem.kind,
    func.coalesce(AttentionItem.record_code, _EMPTY),
    func.coalesce(AttentionItem.other_code, _EMPTY),
    func.coalesce(AttentionItem.record_code, AttentionItem.other_code, AttentionItem.raised_by),
)
OPEN = AttentionItem.resolved_on.is_(None)

# The invariant "one open entry per thing" (migration 0014); raise_item inserts ON CONFLICT against it, so two
# workers raising the same thing at the same moment leave one entry.
Index("uq_attention_item_open_thing", *THING, unique=True, sqlite_where=OPEN, postgresql_where=OPEN)
