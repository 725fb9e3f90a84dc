"""The append-only audit log, chained by HMAC under a key from the key provider."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class AuditEntry(Base):
    """Who did what to which record code. Never an IP address, never a decrypted value."""

    __tablename__ = "audit_entry"
    # The hourly limits (bulk reads, intake) count one person's recent entries of a few actions: this
    # keeps that count to their own rows of the last hour however long the log grows.
    __table_args__ = (Index("ix_audit_entry_actor_action_at", "actor", "action", "at"),)

    # On SQLite an INTEGER primary key is the row id itself: an entry writes its table page and no
    # separate index of ``seq`` (one page less per audited transaction). Still 64-bit there.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    # HMAC-SHA256 link under the audit key of integrity root ``key_id`` (see app.audit.link);
    # NULL only on entries written before the chain was keyed, until ``helpline migrate`` re-links them.
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[int | None] = mapped_column(BigInteger)
