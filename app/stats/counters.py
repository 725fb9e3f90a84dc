"""Day-level counts kept in the same transaction as every write, so dashboards never scan records.

The contacts and cases services call these hooks; the statistics work fills them in.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from app.cases.models import Case
from app.contacts.models import Contact


def contact_recorded(session: Session, *, contact: Contact) -> None:
    """Count a new contact on its received day (by channel, region, risk, flags)."""


def contact_outcome_changed(session: Session, *, contact: Contact, old: str | None, new: str | None) -> None:
    """Move a contact between outcome counts."""


def case_opened(session: Session, *, case: Case) -> None:
    """Count a newly opened case on its opening day."""


def case_moved(session: Session, *, case: Case, from_status: str | None, to_status: str, on: date) -> None:
    """Count a status change; the first arrival at ``evacuated`` counts as an escape on ``on``."""
