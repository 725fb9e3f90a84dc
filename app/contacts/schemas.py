"""What goes in and out of the contacts domain. Inputs forbid unknown fields; outputs name what they hold."""

from __future__ import annotations

import enum
import uuid
from datetime import date
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

NAME_MAX = 200
NOTES_MAX = 20_000


class Channel(enum.StrEnum):
    phone = "phone"
    telegram = "telegram"
    signal = "signal"
    whatsapp = "whatsapp"
    email = "email"
    referral = "referral"
    in_person = "in_person"
    other = "other"


class Risk(enum.StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    immediate = "immediate"


class Need(enum.StrEnum):
    evacuation = "evacuation"
    shelter = "shelter"
    legal = "legal"
    medical = "medical"
    psychological = "psychological"
    documents = "documents"
    financial = "financial"
    other = "other"


class Outcome(enum.StrEnum):
    info_only = "info_only"
    referred = "referred"
    case_opened = "case_opened"
    no_follow_up = "no_follow_up"
    duplicate = "duplicate"
    suspected_infiltration = "suspected_infiltration"


def _no_numbers(value: Any) -> Any:
    # Pydantic's lax mode would read 0 as 1970-01-01; a date must be written as a date.
    if isinstance(value, int | float | bool):
        raise ValueError("must be a date written as YYYY-MM-DD")
    return value


def _not_in_future(value: date) -> date:
    if value > date.today():
        raise ValueError("must not be in the future")
    return value


def _blank_is_none(value: Any) -> Any:
    # Web forms send empty fields as "": that means "not given", not an empty secret.
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _findable(value: str | None) -> str | None:
    # A handle with no letter or digit ("@", "+", "-") is nothing once written the usual way: every such handle
    # would be the same one to the duplicate check and the known-bad list.
    if value is not None and not any(ch.isalnum() for ch in value):
        raise ValueError("a phone number or handle needs at least one letter or digit")
    return value


Day = Annotated[date, BeforeValidator(_no_numbers)]
PastDay = Annotated[date, BeforeValidator(_no_numbers), AfterValidator(_not_in_future)]
ShortText = Annotated[Annotated[str, Field(max_length=NAME_MAX)] | None, BeforeValidator(_blank_is_none)]
LongText = Annotated[Annotated[str, Field(max_length=NOTES_MAX)] | None, BeforeValidator(_blank_is_none)]
Handle = Annotated[ShortText, AfterValidator(_findable)]
LANGUAGE_PATTERN = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})?$"
# Region codes are configured identifiers; anything else (a NUL byte, say) never reaches a query.
REGION_PATTERN = r"^[A-Za-z0-9_\-]{1,32}$"


class ContactIn(BaseModel):
    """A hotline contact as the caseworker records it; alias, handle and notes are sealed at rest."""

    model_config = ConfigDict(extra="forbid")

    received_on: PastDay
    channel: Channel
    region: str = Field(min_length=1, max_length=32, description="a code from the configured region list")
    language: str = Field(pattern=LANGUAGE_PATTERN, max_length=16, description="a short language code, e.g. ru, ce")
    risk: Risk
    needs: list[Need] = Field(default_factory=list, max_length=len(Need))
    alias: ShortText = None
    handle: Handle = None
    notes: LongText = None


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Outcome


class NoteOut(BaseModel):
    """A note appended to a contact or case: the day, who wrote it, and the text (absent when redacted)."""

    written_on: date
    author: str | None
    text: str | None = None


class CorrectionOut(BaseModel):
    """One earlier value of a sealed field, replaced on ``corrected_on`` by ``actor``."""

    field: str
    corrected_on: date
    actor: str | None
    previous: str | None = None


class DuplicateRef(BaseModel):
    """An earlier contact with the same handle that the caseworker may open."""

    id: uuid.UUID
    code: str


class ContactSummary(BaseModel):
    """A contact without any decrypted field: what lists and non-readers get."""

    id: uuid.UUID
    code: str
    received_on: date
    channel: Channel
    region: str
    language: str
    risk: Risk
    needs: list[Need]
    outcome: Outcome | None
    possible_duplicate: bool
    flagged_handle: bool
    recorded_by: str | None = None
    case_id: uuid.UUID | None = None
    shredded: bool = False
    # Set at intake only: the earlier contacts with this handle that the caseworker may read.
    duplicate_of: list[DuplicateRef] = Field(default_factory=list)


class ContactDetail(ContactSummary):
    """A contact with its sealed fields opened, for its reader; ``redacted`` when they stay closed."""

    redacted: bool
    alias: str | None = None
    handle: str | None = None
    notes: str | None = None
    # Appended notes and earlier values of corrected fields; texts only when not redacted.
    added_notes: list[NoteOut] = Field(default_factory=list)
    corrections: list[CorrectionOut] = Field(default_factory=list)


class ContactPage(BaseModel):
    items: list[ContactSummary]
    total: int
    limit: int
    offset: int


class FlaggedHandleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    handle: Annotated[str, Field(min_length=1, max_length=NAME_MAX), AfterValidator(_findable)]
    reason: LongText = None


class FlaggedHandleOut(BaseModel):
    """An entry of the known-bad list: never its handle."""

    id: uuid.UUID
    added_by: str
    added_on: date
    reason: str | None = None


class FlaggedHandleList(BaseModel):
    items: list[FlaggedHandleOut]
    total: int


class ErrorBody(BaseModel):
    """Every error: ``{"detail": ...}`` — a message, a list of field errors (422), or a structured conflict."""

    detail: Any


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "not signed in, or the token expired"},
    403: {"model": ErrorBody, "description": "not allowed for your role"},
    404: {"model": ErrorBody, "description": "unknown, or not yours to see"},
    409: {"model": ErrorBody, "description": "conflicts with the record's state"},
    422: {"model": ErrorBody, "description": "invalid input; names the field, never echoes its value"},
    429: {"model": ErrorBody, "description": "too many decrypted reads in the last hour (recorded)"},
}
