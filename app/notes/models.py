"""Notes and corrections: sealed under the data key of the record they belong to, so a shred takes them too."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import Date, ForeignKey, Integer, LargeBinary, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, new_id


class RecordNote(Base):
    """One append-only note on a contact or a case (``kind``); never edited, dated by day."""

    __tablename__ = "record_note"
    # Append-only, in order: two notes written at once cannot take the same place.
    __table_args__ = (UniqueConstraint("subject_id", "position"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    # The contact's or case's id: also the subject whose data key seals the text.
    subject_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer)
    written_on: Mapped[date] = mapped_column(Date)
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    text_ct: Mapped[bytes | None] = mapped_column(LargeBinary)


class FieldCorrection(Base):
    """A sealed field's value before a correction: the record's history of what it used to say."""

    __tablename__ = "field_correction"
    __table_args__ = (UniqueConstraint("subject_id", "position"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    subject_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer)
    field: Mapped[str] = mapped_column(String(32))
    corrected_on: Mapped[date] = mapped_column(Date)
    actor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    previous_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
