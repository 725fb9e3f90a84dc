"""What an export states about itself in its header block."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel


class AggregateHeader(BaseModel):
    report: str = "helpline aggregate report"
    period_from: date
    period_to: date
    k: int
    noise: bool
    epsilon: float | None
    generated_on: date
    releases: list[str]


class RecordsHeader(BaseModel):
    report: str = "helpline anonymised record-level file"
    generated_on: date
    k: int
    generalisation: str
    rows: int
    dropped_rows: int
