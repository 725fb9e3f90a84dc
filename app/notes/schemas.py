"""Notes and corrections as they go in and come out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.contacts.schemas import NOTES_MAX, CorrectionOut, Handle, LongText, NoteOut, ShortText

__all__ = ["CaseCorrectionIn", "ContactCorrectionIn", "CorrectionOut", "NoteIn", "NoteOut"]


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=NOTES_MAX)


class ContactCorrectionIn(BaseModel):
    """New values for a contact's sealed fields; only the fields sent change (send null to clear one)."""

    model_config = ConfigDict(extra="forbid")

    alias: ShortText = None
    handle: Handle = None
    notes: LongText = None


class CaseCorrectionIn(BaseModel):
    """New values for a case's sealed fields; only the fields sent change (send null to clear one)."""

    model_config = ConfigDict(extra="forbid")

    full_name: ShortText = None
    handle: Handle = None
    location: ShortText = None
    family_situation: LongText = None
    notes: LongText = None
