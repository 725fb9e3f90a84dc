"""The release ledger: frozen published tables, and the privacy budget each month has spent."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Date, DateTime, Float, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, new_id


class StatsRelease(Base):
    """One frozen table set (a month, a quarter or a year): written once, never recomputed or changed."""

    __tablename__ = "stats_release"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    # "2026-03", "2026-Q1" or "2026": unique, so two requests racing to release a period publish one.
    period: Mapped[str] = mapped_column(String(8), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    first_on: Mapped[date] = mapped_column(Date)
    last_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    k: Mapped[int] = mapped_column(Integer)
    epsilon: Mapped[float | None] = mapped_column(Float)
    # What is published: every figure, None where suppressed (JSON).
    published: Mapped[str] = mapped_column(Text)
    # The counts suppression was decided on (noisy ones when noise is on), so later releases can be
    # suppressed jointly with this one without re-reading rows that may have changed since.
    basis: Mapped[str] = mapped_column(Text)


class StatsBudget(Base):
    """The differential-privacy loss spent on one month's counts, across every release that used them."""

    __tablename__ = "stats_budget"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    epsilon_spent: Mapped[float] = mapped_column(Float)
