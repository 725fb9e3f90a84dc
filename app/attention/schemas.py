"""The attention queue as it comes out: kinds and record codes, never a sealed value."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel


class AttentionOut(BaseModel):
    id: uuid.UUID
    kind: str
    raised_on: date
    raised_by: str
    case_id: uuid.UUID | None = None
    record_code: str | None = None
    other_code: str | None = None


class AttentionList(BaseModel):
    items: list[AttentionOut]
    total: int
    limit: int
    offset: int
