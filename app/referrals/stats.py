"""Referrals made and accepted per month, by partner: exact for operations, frozen releases for analysts.

Coordinators and admins get the exact operational counts, live. Analysts get only what the release ledger
froze (``app.stats.ledger``): each released month's made and accepted series by partner, suppressed there
(no count from 1 to K-1 shown or worked out) and never recomputed, so a late acceptance or a second
question cannot change or difference a published month. A sum over months or partners is shown only when
every figure in it is shown, so it says nothing the frozen months did not. Counting rules:
``app.referrals.counts``.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app.auth.models import Role, User
from app.crypto import service as crypto
from app.errors import Forbidden
from app.referrals import counts
from app.stats import ledger, published
from app.stats.schemas import ReleaseRef

MEASURES = counts.MEASURES


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
    releases: list[ReleaseRef] = Field(
        default_factory=list, description="analysts: the frozen monthly releases these figures are from, in order"
    )


def _exact(cells: list[list[int]]) -> MeasureTable:
    return MeasureTable(
        cells=[list(row) for row in cells],
        month_totals=[sum(row) for row in cells],
        partner_totals=[sum(col) for col in zip(*cells, strict=True)] if cells else [],
        total=sum(map(sum, cells)),
    )


def _sum(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def _released(session: Session) -> ReferralStats:
    """The analysts' view: released months only, each exactly as frozen."""
    ledger.ensure_previous_month(session)
    rows = [
        (row, json.loads(row.published)[ledger.REFERRALS])
        for row in ledger.list_releases(session)
        if row.kind == "month" and json.loads(row.published).get(ledger.REFERRALS)
    ]
    partners = sorted({p for _, frozen in rows for p in frozen["partners"]})
    tables = {}
    for m in MEASURES:
        cells: list[list[int | None]] = []
        month_totals: list[int | None] = []
        for _, frozen in rows:
            shown = dict(zip(frozen["partners"], frozen[m]["cells"], strict=True))
            # A partner outside a month's grid did not exist then: it had no referral that month.
            cells.append([shown.get(p, 0) for p in partners])
            month_totals.append(frozen[m]["total"])
        tables[m] = MeasureTable(
            cells=cells,
            month_totals=month_totals,
            partner_totals=[_sum([row[j] for row in cells]) for j in range(len(partners))],
            total=_sum(month_totals),
        )
    return ReferralStats(
        months=[row.period for row, _ in rows],
        partners=partners,
        exact=False,
        k=rows[-1][0].k if rows else crypto.settings_of(session).suppression_k,
        releases=[published.ref(row) for row, _ in rows],
        **tables,
    )


def monthly(*, session: Session, actor: User) -> ReferralStats:
    """Referrals made and accepted per month and partner: exact and live for coordinators/admins, from the
    frozen releases for analysts."""
    if actor.role not in (Role.coordinator, Role.admin, Role.analyst):
        raise Forbidden()
    if actor.role == Role.analyst:
        return _released(session)
    found = counts.made_and_accepted(session)
    keys = set(found["made"]) | set(found["accepted"])
    months = sorted({m for m, _ in keys})
    partners = sorted({p for _, p in keys})
    tables = {m: _exact([[found[m].get((mo, p), 0) for p in partners] for mo in months]) for m in MEASURES}
    return ReferralStats(
        months=[ledger.month_label(mo) for mo in months],
        partners=partners,
        exact=True,
        k=crypto.settings_of(session).suppression_k,
        **tables,
    )
