"""Remembered answers to API writes, by a hash of the caller and their Idempotency-Key."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class IdempotencyKey(Base):
    """One claimed key: who, which request (hashed), and the answer's status, id and code once done.

    Never the key itself (a hash keyed to its user) and never a body: an answer may hold a decrypted
    value, so only its status, id and record code are kept.
    """

    __tablename__ = "idempotency_key"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    status: Mapped[int | None] = mapped_column(Integer)
    answer_id: Mapped[str | None] = mapped_column(String(64))
    answer_code: Mapped[str | None] = mapped_column(String(32))


class FormToken(Base):
    """A web form's one-time token, spent by its first submission (a hash: the token is in the page)."""

    __tablename__ = "form_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    spent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
