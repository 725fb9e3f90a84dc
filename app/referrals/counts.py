"""Exact referral counts of one month, by partner: what the release ledger freezes for analysts.

Kept apart from ``app.referrals.stats`` (which reads the ledger back) so the ledger can read these
without an import cycle. A referral counts as made in the month it was sent and as accepted in the month
its partner accepted it (a referral accepted and later withdrawn still counts once).
"""

from __future__ import annotations

from collections import Counter
from datetime import date

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.referrals.models import Partner, Referral, ReferralStep

MEASURES = ("made", "accepted")


def made_and_accepted(
    session: Session, first: date | None = None, end: date | None = None
) -> dict[str, Counter[tuple[date, str]]]:
    """measure -> (first day of month, partner name) -> count, for days in [first, end) (all when None)."""
    out: dict[str, Counter[tuple[date, str]]] = {m: Counter() for m in MEASURES}
    made = select(Referral.sent_on, Partner.name).join(Partner, Partner.id == Referral.partner_id)
    accepted = (
        select(ReferralStep.on, Partner.name)
        .join(Referral, Referral.id == ReferralStep.referral_id)
        .join(Partner, Partner.id == Referral.partner_id)
        .where(ReferralStep.status == "accepted")
    )
    if first is not None and end is not None:
        made = made.where(Referral.sent_on >= first, Referral.sent_on < end)
        accepted = accepted.where(ReferralStep.on >= first, ReferralStep.on < end)
    for measure, query in (("made", made), ("accepted", accepted)):
        for day, name in session.execute(query):
            out[measure][(day.replace(day=1), name)] += 1
    return out


def month_grid(session: Session, first: date, end: date) -> tuple[list[str], dict[str, list[int]]]:
    """One month's fixed grid: every partner not removed (and any other that had a referral), sorted,
    with each measure's exact count per partner (zeros included)."""
    counts = made_and_accepted(session, first, end)
    names = set(
        session.scalars(select(Partner.name).where(or_(Partner.removed_on.is_(None), Partner.removed_on >= first)))
    )
    for counter in counts.values():
        names |= {name for _, name in counter}
    partners = sorted(names)
    return partners, {m: [counts[m].get((first, p), 0) for p in partners] for m in MEASURES}
