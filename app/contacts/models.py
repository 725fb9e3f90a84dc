"""Hotline contacts and the known-bad handle list. Free text lives only in sealed columns (``*_ct``)."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import Boolean, Date, ForeignKey, Index, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, new_id


class Contact(Base):
    __tablename__ = "contact"
    __table_args__ = (
        Index("ix_contact_recorded_by_received_on", "recorded_by_id", "received_on"),
        # Covering indexes for the record-level export's counts (it never reads the sealed rows themselves).
        # ``export_by_day`` leads with ``received_on``, so it also serves every range of days: a separate
        # index of that column alone would cost each intake one more page and serve nothing more.
        Index("ix_contact_export_by_day", "received_on", "region", "channel", "risk", "shredded_on"),
        Index("ix_contact_export_by_id", "id", "received_on", "region", "channel", "risk", "shredded_on"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    received_on: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(16))
    risk: Mapped[str] = mapped_column(String(16))
    # Comma-separated codes from a fixed list (no free text).
    needs: Mapped[str] = mapped_column(String(128), default="")
    outcome: Mapped[str | None] = mapped_column(String(32))
    possible_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    flagged_handle: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    alias_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    handle_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    notes_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    last_activity_on: Mapped[date] = mapped_column(Date)
    shredded_on: Mapped[date | None] = mapped_column(Date)
    shredded_by: Mapped[str | None] = mapped_column(String(64))


class FlaggedHandle(Base):
    """A handle known to be used for entrapment: kept as a blind index and a sealed value, never plain."""

    __tablename__ = "flagged_handle"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    handle_ct: Mapped[bytes] = mapped_column(LargeBinary)
    reason_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    added_by: Mapped[str] = mapped_column(String(64))
    added_on: Mapped[date] = mapped_column(Date)
