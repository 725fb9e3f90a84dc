"""The record-level file: one row per contact (and its case), k-anonymous over its quasi-identifiers.

Nothing sealed, no free text, no record code. The quasi-identifiers (period, region, channel, risk, case
status) are recoded for the whole file along one ladder — month, then region groups, then quarters, then
status groups — until no combination is smaller than K; rows in combinations still smaller are dropped and
counted. Only counts are held in memory: one streamed GROUP BY pass, then the rows are written class by
class (so the order says nothing about dates or entry order), each with a fresh random id.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from sqlalchemy import ColumnElement, String, func, select, type_coerce
from sqlalchemy.orm import QueryableAttribute, Session

from app.cases.models import Case
from app.contacts.models import Contact

COLUMNS = ("row_id", "period", "region", "channel", "risk", "case_status")
NO_CASE = "no_case"

REGION_GROUPS = {
    "chechnya": "north_caucasus",
    "dagestan": "north_caucasus",
    "ingushetia": "north_caucasus",
    "north_caucasus_other": "north_caucasus",
    "moscow": "russia",
    "st_petersburg": "russia",
    "russia_other": "russia",
    "abroad": "abroad",
    "unknown": "unknown",
}
STATUS_GROUPS = {
    NO_CASE: NO_CASE,
    "new": "open",
    "verifying": "open",
    "planning": "open",
    "in_transit": "open",
    "paused": "open",
    "lost_contact": "open",
    "evacuated": "evacuated",
    "resettled": "evacuated",
    "closed": "ended",
    "declined": "ended",
    "rejected": "ended",
}


@dataclass(frozen=True)
class Level:
    name: str
    quarter: bool
    region_group: bool
    status_group: bool


LADDER = (
    Level("period=month, region, case_status", quarter=False, region_group=False, status_group=False),
    Level("period=month, region=group, case_status", quarter=False, region_group=True, status_group=False),
    Level("period=quarter, region=group, case_status", quarter=True, region_group=True, status_group=False),
    Level("period=quarter, region=group, case_status=group", quarter=True, region_group=True, status_group=True),
)

# (received month as (year, month), region, channel, risk, case status)
Fine = tuple[tuple[int, int], str, str, str, str]
Coarse = tuple[str, str, str, str, str]
StrColumn = ColumnElement[str] | QueryableAttribute[str]


@dataclass
class Plan:
    level: Level
    classes: dict[Coarse, int]  # the combinations that are written, with their sizes
    rows: int
    dropped: int


def count_fine(session: Session, *, batch: int = 2_000) -> Counter[Fine]:
    """Counts of the quasi-identifiers at month level, grouped in the database (no row is kept here).

    Two grouped reads over covering indexes, so the contact rows (with their sealed columns) are never read:
    every live contact by day, region, channel and risk (in index order, no sort), and every case by status
    joined to its contact. A contact without a case is a contact minus its case; one with a case is counted
    once per case. Should a contact ever hold more than one case, the single joined query is used instead.
    """
    sqlite = session.get_bind().dialect.name == "sqlite"
    if session.scalar(select(func.count(Case.contact_id) - func.count(Case.contact_id.distinct()))):
        return _count_joined(session, sqlite=sqlite, batch=batch)
    # Each group comes back as one text key ("YYYY-MM-DD<US>region<US>channel<US>risk"): fewer values to
    # sort and to fetch than five columns, and no date parsing per group.
    day = type_coerce(Contact.received_on, String) if sqlite else func.to_char(Contact.received_on, "YYYY-MM-DD")
    contacts = (
        select(_joined(day, Contact.region, Contact.channel, Contact.risk), func.count())
        .where(Contact.shredded_on.is_(None))
        .group_by(Contact.received_on, Contact.region, Contact.channel, Contact.risk)
    )
    no_case: Counter[str] = Counter()  # "YYYY-MM<US>region<US>channel<US>risk"
    for key, n in session.execute(contacts, execution_options={"yield_per": batch}):
        no_case[key[:7] + key[10:]] += n
    case_key = _joined(func.substr(day, 1, 7), Contact.region, Contact.channel, Contact.risk, Case.status)
    cases = (
        select(case_key.label("case_key"), func.count())
        .select_from(Case)
        .join(Contact, Contact.id == Case.contact_id)
        .where(Contact.shredded_on.is_(None))
        .group_by("case_key")  # by its name: the separators are bound parameters, repeated they would differ
    )
    counts: Counter[Fine] = Counter()
    fine = _Parts()
    for key, n in session.execute(cases, execution_options={"yield_per": batch}):
        head, _, status = key.rpartition(SEP)
        counts[fine(head, status)] += n
        no_case[head] -= n
    for head, n in no_case.items():
        if n > 0:  # a combination whose every contact has a case has no no_case rows
            counts[fine(head, NO_CASE)] = n
    return counts


SEP = "\x1f"  # ASCII unit separator: never part of a region, channel, risk or status


def _joined(first: StrColumn, *rest: StrColumn) -> ColumnElement[str]:
    expr: ColumnElement[str] = first + SEP
    for i, part in enumerate(rest):
        expr = expr + part if i == len(rest) - 1 else expr + part + SEP
    return expr


class _Parts:
    """Fine keys from text keys, sharing one object per distinct month and value (tens of thousands of keys)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.months: dict[str, tuple[int, int]] = {}

    def __call__(self, head: str, status: str) -> Fine:
        ym, region, channel, risk = head.split(SEP)
        month = self.months.get(ym)
        if month is None:
            month = self.months[ym] = (int(ym[:4]), int(ym[5:7]))
        v = self.values.setdefault
        return month, v(region, region), v(channel, channel), v(risk, risk), v(status, status)


def _month(sqlite: bool) -> ColumnElement[str]:
    # SQLite stores a date as its ISO text; PostgreSQL formats it. Either way "YYYY-MM".
    if sqlite:
        return func.substr(type_coerce(Contact.received_on, String), 1, 7)
    return func.to_char(Contact.received_on, "YYYY-MM")


def _count_joined(session: Session, *, sqlite: bool, batch: int) -> Counter[Fine]:
    """The same counts in one LEFT JOIN (a contact with several cases is one row per case)."""
    month = _month(sqlite)
    status = func.coalesce(Case.status, NO_CASE)
    query = (
        select(month, Contact.region, Contact.channel, Contact.risk, status, func.count())
        .select_from(Contact)
        .outerjoin(Case, Case.contact_id == Contact.id)
        .where(Contact.shredded_on.is_(None))
        .group_by(month, Contact.region, Contact.channel, Contact.risk, status)
    )
    counts: Counter[Fine] = Counter()
    for ym, region, channel, risk, case_status, n in session.execute(query, execution_options={"yield_per": batch}):
        counts[((int(ym[:4]), int(ym[5:7])), region, channel, risk, case_status)] += n
    return counts


def recode(fine: Fine, level: Level) -> Coarse:
    (year, month), region, channel, risk, status = fine
    period = f"{year:04d}-Q{(month - 1) // 3 + 1}" if level.quarter else f"{year:04d}-{month:02d}"
    if level.region_group:
        region = REGION_GROUPS.get(region, "other")
    if level.status_group:
        status = STATUS_GROUPS.get(status, "other")
    return period, region, channel, risk, status


def plan(fine: Counter[Fine], *, k: int) -> Plan:
    """Climb the ladder until every combination has at least k rows; at the top, drop the small ones."""
    total = sum(fine.values())
    for level in LADDER:
        classes: Counter[Coarse] = Counter()
        for key, n in fine.items():
            classes[recode(key, level)] += n
        if all(n >= k for n in classes.values()) or level is LADDER[-1]:
            kept = {key: n for key, n in classes.items() if n >= k}
            rows = sum(kept.values())
            return Plan(level=level, classes=kept, rows=rows, dropped=total - rows)
    raise AssertionError("unreachable: the ladder ends in a return")


def header_lines(plan: Plan, *, k: int, today: date) -> list[str]:
    return [
        "# helpline anonymised record-level file\n",
        f"# generated_on: {today.isoformat()}\n",
        f"# k: {k} (every combination of period, region, channel, risk and case_status has at least k rows)\n",
        f"# generalisation: {plan.level.name}\n",
        f"# rows: {plan.rows}\n",
        f"# dropped_rows: {plan.dropped} (in combinations smaller than k after generalisation)\n",
        ",".join(COLUMNS) + "\n",
    ]


def rows(plan: Plan, *, chunk_rows: int = 4096) -> Iterator[tuple[str, int]]:
    """CSV text in chunks with the number of rows in each; row ids are random and fresh for this export."""
    for key in sorted(plan.classes):
        suffix = "," + ",".join(key) + "\n"
        remaining = plan.classes[key]
        while remaining:
            n = min(remaining, chunk_rows)
            ids = os.urandom(8 * n).hex()  # 16 hex digits per row, from the operating system's CSPRNG
            yield suffix.join([ids[i : i + 16] for i in range(0, 16 * n, 16)]) + suffix, n
            remaining -= n
