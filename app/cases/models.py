"""Evacuation cases and their status history. Free text lives only in sealed columns (``*_ct``)."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import Date, ForeignKey, Index, Integer, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, new_id


class Case(Base):
    __tablename__ = "evacuation_case"
    __table_args__ = (
        Index("ix_evacuation_case_assigned_to_status", "assigned_to_id", "status"),
        Index("ix_evacuation_case_contact_status", "contact_id", "status"),  # the record-level export's join
        # Invariants (migration 0011): one case per contact.
        Index("uq_evacuation_case_contact_id", "contact_id", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contact.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    region: Mapped[str] = mapped_column(String(32))
    opened_on: Mapped[date] = mapped_column(Date, index=True)
    opened_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    assigned_to_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    verified_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    verified_on: Mapped[date | None] = mapped_column(Date)
    first_contact_on: Mapped[date] = mapped_column(Date)
    evacuated_on: Mapped[date | None] = mapped_column(Date)
    resettled_on: Mapped[date | None] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    status_on: Mapped[date] = mapped_column(Date)
    full_name_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    handle_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    location_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    family_situation_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    notes_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    shredded_on: Mapped[date | None] = mapped_column(Date)
    shredded_by: Mapped[str | None] = mapped_column(String(64))
    # MAC over assignment and verification from the key provider; computed and checked by app.audit.seals.
    seal: Mapped[str | None] = mapped_column(String(80))


class CaseTransition(Base):
    """One step of a case's history: from, to, the day, who. Its note is sealed under the case's key."""

    __tablename__ = "case_transition"
    # Invariant (migration 0011): one entry per position; two moves decided on one read cannot both land.
    __table_args__ = (Index("uq_case_transition_case_id_position", "case_id", "position", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("evacuation_case.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    on: Mapped[date] = mapped_column(Date)
    actor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    note_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
