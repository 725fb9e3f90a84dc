"""Search results: records the caseworker may open, and why each matched."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel


class Hit(BaseModel):
    kind: str  # "contact" or "case"
    id: uuid.UUID
    code: str
    on: date
    matched: str  # "code", "handle" or "alias"
    alias: str | None = None


class SearchResult(BaseModel):
    query: str
    hits: list[Hit]
    # Alias search opens at most this many of the newest records; older ones were not searched.
    alias_scope: int
