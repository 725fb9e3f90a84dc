"""What goes in and out of the referrals domain. Inputs forbid unknown fields; outputs hold no field value."""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from app.contacts.schemas import PastDay

PARTNER_NAME = r"^[\w.\-]{1,64}$"


class ReferralField(StrEnum):
    """What a referral can carry: the case's and its contact's fields, each chosen on its own."""

    full_name = "full_name"
    handle = "handle"
    location = "location"
    family_situation = "family_situation"
    case_notes = "case_notes"
    alias = "alias"
    contact_handle = "contact_handle"
    contact_notes = "contact_notes"
    region = "region"
    language = "language"
    risk = "risk"
    needs = "needs"


class How(StrEnum):
    spoken = "spoken"
    written = "written"
    intermediary = "intermediary"


class ReferralStatus(StrEnum):
    pending = "pending"  # waiting for a coordinator's approval (HELPLINE_REFERRAL_APPROVAL)
    sent = "sent"
    accepted = "accepted"
    declined = "declined"
    completed = "completed"
    withdrawn = "withdrawn"


# (pending →) sent → accepted / declined → completed, or withdrawn while still open.
NEXT: dict[str, frozenset[str]] = {
    "pending": frozenset({"sent", "withdrawn"}),
    "sent": frozenset({"accepted", "declined", "withdrawn"}),
    "accepted": frozenset({"completed", "withdrawn"}),
    "declined": frozenset(),
    "completed": frozenset(),
    "withdrawn": frozenset(),
}
OPEN = frozenset({"pending", "sent", "accepted"})
# A package exists only for a referral that has been sent and not ended.
DELIVERABLE = frozenset({"sent", "accepted"})
# What a receiving organisation may answer with (withdrawal is the sender's alone).
ANSWERS = ("accepted", "declined", "completed")


class PartnerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=PARTNER_NAME)
    age_recipient: str = Field(min_length=10, max_length=128)
    verify_key: str = Field(min_length=10, max_length=64)


class PartnerOut(BaseModel):
    name: str
    age_recipient: str
    verify_key: str
    inbox_url: str | None = None
    added_on: date


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partner: str = Field(pattern=PARTNER_NAME)
    given_on: PastDay
    how: How
    fields: list[ReferralField] = Field(min_length=1, max_length=len(ReferralField))


class ConsentOut(BaseModel):
    id: uuid.UUID
    partner: str
    given_on: date | None = None
    how: How | None = None
    fields: list[ReferralField] = []
    recorded_on: date
    withdrawn_on: date | None = None


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on: PastDay | None = None


class ReferralIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partner: str = Field(pattern=PARTNER_NAME)
    fields: list[ReferralField] = Field(min_length=1, max_length=len(ReferralField))
    consent_id: uuid.UUID


class StepOut(BaseModel):
    status: ReferralStatus
    on: date
    source: str
    actor: str


class ReferralOut(BaseModel):
    id: uuid.UUID
    code: str
    status: ReferralStatus
    partner: str
    case_id: uuid.UUID
    case_code: str
    fields: list[ReferralField]
    consent_id: uuid.UUID
    sent_on: date
    status_on: date
    recipient: str
    steps: list[StepOut] = []


class StatusIn(BaseModel):
    """A move made by hand: the partner said so by phone, or the caseworker withdraws the referral.

    A partner's signed answer is imported with ``helpline referral import-answer`` instead: it is
    encrypted to this organisation's age identity, which the server does not hold.
    """

    model_config = ConfigDict(extra="forbid")

    to: ReferralStatus
    on: PastDay | None = None


class ReceivedOut(BaseModel):
    code: str
    partner: str
    case_id: uuid.UUID | None
    case_code: str | None
    imported_on: date
    status: str
    fields: list[str]
