"""Tables of wrapped keys and blind-index entries. No key here is usable without a KEK."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import BigInteger, Date, Index, Integer, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class DataKey(Base):
    """A subject's data key (DEK), wrapped under a KEK; deleting the row shreds the subject."""

    __tablename__ = "data_key"

    subject_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    key_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kek_id: Mapped[int] = mapped_column(BigInteger, index=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_on: Mapped[date] = mapped_column(Date)


class IndexKey(Base):
    """The blind-index root key of one epoch, wrapped under a KEK like any data key."""

    __tablename__ = "index_key"

    epoch: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kek_id: Mapped[int] = mapped_column(BigInteger, index=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_on: Mapped[date] = mapped_column(Date)
    # Bucket width of this epoch: part of the epoch, so a changed setting cannot move old entries.
    bits: Mapped[int] = mapped_column(Integer, server_default="12")
    # "active": complete, the one new entries and look-ups rely on. "building": filled in the
    # background; written to and consulted beside the active epoch until it is complete.
    state: Mapped[str] = mapped_column(String(16), server_default="active")
    # Per-column widths as JSON ({"contact.handle": 14, ...}); a column not named uses ``bits``.
    widths: Mapped[str | None] = mapped_column(String(512))
    # The lease of the one process building this epoch (unix seconds); a killed builder's lease runs out.
    builder: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[int | None] = mapped_column(BigInteger)


class BlindIndexEntry(Base):
    """A truncated HMAC of one subject's normalised value in one column and epoch."""

    __tablename__ = "blind_index_entry"
    # On SQLite the key is the table (no row id, no second index of the key to write per entry).
    __table_args__ = (
        Index("ix_blind_index_entry_lookup", "column", "epoch", "bucket"),
        {"sqlite_with_rowid": False},
    )

    subject_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    column: Mapped[str] = mapped_column(String(48), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(Integer)
    # The normalised value sealed under the subject's data key: a look-up compares candidates
    # without opening the record and re-normalising it. NULL for entries made before it existed.
    value_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
