"""The retention policy: what is past it gets crypto-shredded (rows stay, so counts do not change).

- a case closed more than ``retention_closed_case_days`` ago, or declined/rejected that long ago;
- a contact whose last activity is older than ``retention_contact_days`` and that has no case which
  stays (no case at all, or only cases already shredded or shredded in the same run).
Defaults: 365 and 730 days. Open cases, and the contacts behind them, are never purged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.cases.models import Case
from app.config import Settings
from app.contacts.models import Contact
from app.lifecycle import shred

ENDED_WITHOUT_CLOSING = ("declined", "rejected")


@dataclass
class PurgePlan:
    """What a purge shreds: ids for the run, codes (never contents) for people to read."""

    case_ids: list[uuid.UUID] = field(default_factory=list)
    case_codes: list[str] = field(default_factory=list)
    contact_ids: list[uuid.UUID] = field(default_factory=list)
    contact_codes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.case_ids or self.contact_ids)


def plan_purge(*, session: Session, settings: Settings, today: date | None = None) -> PurgePlan:
    """The cases and contacts past the retention policy on ``today``, ordered by code."""
    today = today or settings.today()
    case_cutoff = today - timedelta(days=settings.retention_closed_case_days)
    contact_cutoff = today - timedelta(days=settings.retention_contact_days)
    plan = PurgePlan()
    cases = session.execute(
        select(Case.id, Case.code)
        .where(
            Case.shredded_on.is_(None),
            or_(
                and_(Case.status == "closed", Case.closed_on < case_cutoff),
                and_(Case.status.in_(ENDED_WITHOUT_CLOSING), Case.status_on < case_cutoff),
            ),
        )
        .order_by(Case.code)
    ).all()
    plan.case_ids = [row[0] for row in cases]
    plan.case_codes = [row[1] for row in cases]
    going = set(plan.case_ids)
    candidates = session.execute(
        select(Contact.id, Contact.code)
        .where(Contact.shredded_on.is_(None), Contact.last_activity_on < contact_cutoff)
        .order_by(Contact.code)
    ).all()
    staying: set[uuid.UUID] = set()
    ids = [row[0] for row in candidates]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for case_id, contact_id in session.execute(
            select(Case.id, Case.contact_id).where(Case.contact_id.in_(chunk), Case.shredded_on.is_(None))
        ):
            if case_id not in going:
                staying.add(contact_id)
    for contact_id, code in candidates:
        if contact_id not in staying:
            plan.contact_ids.append(contact_id)
            plan.contact_codes.append(code)
    return plan


def purge(*, session: Session, actor: str, plan: PurgePlan) -> PurgePlan:
    """Shred exactly what ``plan`` lists, in the caller's transaction; each shred and the run are audited."""
    for case_id in plan.case_ids:
        case = session.get(Case, case_id)
        assert case is not None
        shred.shred_case_record(session, actor=actor, case=case, reason="retention")
    for contact_id in plan.contact_ids:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        shred.shred_contact_record(session, actor=actor, contact=contact, reason="retention")
    audit.record(
        session,
        actor=actor,
        action="retention.purge",
        detail={"cases": len(plan.case_ids), "contacts": len(plan.contact_ids)},
    )
    session.flush()
    return plan
