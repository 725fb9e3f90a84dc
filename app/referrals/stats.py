"""Referrals made and accepted per month, by partner, under the same disclosure rules as other statistics.

Coordinators and admins get the exact operational counts. Analysts get closed months only, each measure
released as a month × partner table through ``app.stats.disclosure.protect_table``: no count from 1 to K-1
is shown or can be worked out from the totals. A referral counts as made in the month it was sent and as
accepted in the month its partner accepted it (a referral accepted and later withdrawn still counts once).
"""

from __future__ import annotations

from collections import Counter
from datetime import date

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import Role, User
from app.crypto import service as crypto
from app.errors import Forbidden
from app.referrals.models import Partner, Referral, ReferralStep
from app.stats import disclosure

MEASURES = ("made", "accepted")


class MeasureTable(BaseModel):
    """Rows are months, columns partners; None is a suppressed figure."""

    cells: list[list[int | None]]
    month_totals: list[int | None]
    partner_totals: list[int | None]
    total: int | None


class ReferralStats(BaseModel):
    months: list[str]
    partners: list[str]
    made: MeasureTable
    accepted: MeasureTable
    exact: bool
    k: int


def _month(day: date) -> str:
    return day.strftime("%Y-%m")


def _exact(cells: list[list[int]]) -> MeasureTable:
    return MeasureTable(
        cells=[list(row) for row in cells],
        month_totals=[sum(row) for row in cells],
        partner_totals=[sum(col) for col in zip(*cells, strict=True)] if cells else [],
        total=sum(map(sum, cells)),
    )


def _protected(cells: list[list[int]], k: int) -> MeasureTable:
    released = disclosure.protect_table(cells, k=k)
    return MeasureTable(
        cells=released.cells,
        month_totals=released.row_totals,
        partner_totals=released.col_totals,
        total=released.grand_total,
    )


def monthly(*, session: Session, actor: User) -> ReferralStats:
    """Referrals made and accepted per month and partner: exact for coordinators/admins, protected for analysts."""
    if actor.role not in (Role.coordinator, Role.admin, Role.analyst):
        raise Forbidden()
    settings = crypto.settings_of(session)
    exact = actor.role != Role.analyst
    this_month = _month(settings.today())
    made: Counter[tuple[str, str]] = Counter()
    for sent_on, name in session.execute(
        select(Referral.sent_on, Partner.name).join(Partner, Partner.id == Referral.partner_id)
    ):
        made[(_month(sent_on), name)] += 1
    accepted: Counter[tuple[str, str]] = Counter()
    for on, name in session.execute(
        select(ReferralStep.on, Partner.name)
        .join(Referral, Referral.id == ReferralStep.referral_id)
        .join(Partner, Partner.id == Referral.partner_id)
        .where(ReferralStep.status == "accepted")
    ):
        accepted[(_month(on), name)] += 1
    keys = set(made) | set(accepted)
    if not exact:  # an open month is still moving: analysts see closed months only
        keys = {key for key in keys if key[0] < this_month}
    months = sorted({m for m, _ in keys})
    partners = sorted({p for _, p in keys})
    tables = {}
    for measure, counts in (("made", made), ("accepted", accepted)):
        cells = [[counts.get((m, p), 0) for p in partners] for m in months]
        tables[measure] = _exact(cells) if exact or not cells else _protected(cells, settings.suppression_k)
    return ReferralStats(months=months, partners=partners, exact=exact, k=settings.suppression_k, **tables)
