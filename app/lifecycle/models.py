"""Bookkeeping for key rotation and re-encryption, so an interrupted run resumes where it stopped."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class KeyRotation(Base):
    """One ``keys rotate`` (kind "rewrap") or ``keys rotate --reencrypt`` (kind "reencrypt") run.

    Holds ids and counts only: no key material, no record content.
    """

    __tablename__ = "key_rotation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    # rewrap: the KEK every data key is being moved under.
    target_kek_id: Mapped[int | None] = mapped_column(BigInteger)
    # reencrypt: the last subject id handled (subjects are walked in id order).
    cursor: Mapped[str | None] = mapped_column(String(36))
    done: Mapped[int] = mapped_column(BigInteger, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
