"""What goes in and out of the cases domain. Inputs forbid unknown fields; outputs name what they hold."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from app.cases.workflow import CaseStatus
from app.contacts.schemas import CorrectionOut, Day, Handle, LongText, NoteOut, PastDay, ShortText


class CaseFields(BaseModel):
    """The sealed fields of a case, all optional at opening."""

    model_config = ConfigDict(extra="forbid")

    full_name: ShortText = None
    handle: Handle = None
    location: ShortText = None
    family_situation: LongText = None
    notes: LongText = None


class CaseIn(CaseFields):
    contact_id: uuid.UUID
    opened_on: PastDay | None = Field(default=None, description="defaults to today; not before the contact")


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: CaseStatus
    on: Day
    note: LongText = None


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(pattern=r"^[\w.\-]{1,64}$", description="the caseworker's user name")


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on: PastDay | None = Field(default=None, description="defaults to today")


class CaseSummary(BaseModel):
    """A case without any decrypted field: what lists and coordinators get."""

    id: uuid.UUID
    code: str
    status: CaseStatus
    region: str
    contact_id: uuid.UUID
    first_contact_on: date
    opened_on: date
    status_on: date
    evacuated_on: date | None
    resettled_on: date | None
    closed_on: date | None
    assigned_to: str | None
    verified: bool
    shredded: bool = False


class TransitionOut(BaseModel):
    position: int
    from_status: CaseStatus | None
    to_status: CaseStatus
    on: date
    actor: str | None
    note: str | None = None


class CaseDetail(CaseSummary):
    """A case with its history; sealed fields and notes opened only for its assigned caseworker."""

    redacted: bool
    contact_code: str
    opened_by: str | None
    verified_by: str | None
    verified_on: date | None
    allowed_transitions: list[CaseStatus]
    history: list[TransitionOut]
    full_name: str | None = None
    handle: str | None = None
    location: str | None = None
    family_situation: str | None = None
    notes: str | None = None
    # Appended notes and earlier values of corrected fields; texts only when not redacted.
    added_notes: list[NoteOut] = Field(default_factory=list)
    corrections: list[CorrectionOut] = Field(default_factory=list)
    verification_requested: bool = False


class CasePage(BaseModel):
    items: list[CaseSummary]
    total: int
    limit: int
    offset: int
