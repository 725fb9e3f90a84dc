"""Entries of the coordinators' queue: codes, kinds and days only, never a sealed value."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import Date, Index, String, Uuid
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
