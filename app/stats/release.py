"""Stored noisy releases: a table published with differential-privacy noise is drawn once and kept.

Asking again for the same table returns the stored numbers, so repeated requests cannot be averaged to wash
the noise out (OpenDP's sampler cannot be seeded, so storing is the only way to repeat a release).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import Date, Float, String, Text, Uuid, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.db import Base, new_id


class DpRelease(Base):
    """One noisy release, keyed by what was asked for (grid, range, K, epsilon)."""

    __tablename__ = "dp_release"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    params: Mapped[str] = mapped_column(Text)
    epsilon: Mapped[float] = mapped_column(Float)
    # Noisy counts only: nothing here is finer than what the release itself publishes.
    payload: Mapped[str] = mapped_column(Text)
    released_on: Mapped[date] = mapped_column(Date)


def release_key(params: dict[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def stored_or_new(
    session: Session, *, params: dict[str, Any], epsilon: float, today: date, draw: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], date]:
    """The stored release for ``params``, or a freshly drawn one stored now; with the day it was drawn."""
    key = release_key(params)
    found = session.execute(select(DpRelease.payload, DpRelease.released_on).where(DpRelease.key == key)).first()
    if found is not None:
        return json.loads(found[0]), found[1]
    payload = draw()
    row = DpRelease(
        key=key,
        params=json.dumps(params, sort_keys=True, default=str),
        epsilon=epsilon,
        payload=json.dumps(payload, sort_keys=True),
        released_on=today,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        # Another request drew the same release first: publish theirs, never two different draws.
        found = session.execute(select(DpRelease.payload, DpRelease.released_on).where(DpRelease.key == key)).one()
        return json.loads(found[0]), found[1]
    return payload, today
