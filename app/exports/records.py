"""The record-level file: one row per contact (and its case), k-anonymous over its quasi-identifiers.

Nothing sealed, no free text, no record code. The quasi-identifiers (period, region, channel, risk, case
status) are recoded with the standard statistical-disclosure-control toolkit: each has a ladder of
generalisations (period: month, quarter, half-year, year; the others: value, group), every node of the
lattice of ladder levels is tried, and in each the rows of combinations smaller than K get one value
blanked as ``*`` (local suppression) when that joins them into a group of K or more; only rows that even
then stay alone are dropped. The node kept is the one that loses the least information (generalisation
steps, blanked values and dropped rows, all counted per row), as ARX and sdcMicro choose. Only counts are held in memory: one streamed GROUP BY pass, then the rows are written class by
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


CHANNEL_GROUPS = {
    "phone": "voice",
    "in_person": "voice",
    "telegram": "messenger",
    "signal": "messenger",
    "whatsapp": "messenger",
    "email": "written",
    "referral": "other",
    "other": "other",
}
RISK_GROUPS = {"low": "lower", "medium": "lower", "high": "higher", "immediate": "higher"}
BLANK = "*"
QUASI = ("period", "region", "channel", "risk", "case_status")


def _period(month: tuple[int, int], level: int) -> str:
    year, m = month
    return (
        f"{year:04d}-{m:02d}",
        f"{year:04d}-Q{(m - 1) // 3 + 1}",
        f"{year:04d}-H{(m - 1) // 6 + 1}",
        f"{year:04d}",
    )[level]


def _grouped(groups: dict[str, str]):  # type: ignore[no-untyped-def]
    return lambda value, level: value if level == 0 else groups.get(value, "other")


# Each quasi-identifier's ladder of generalisations: level 0 is the value as recorded.
HIERARCHY = (
    (_period, 3),
    (_grouped(REGION_GROUPS), 1),
    (_grouped(CHANNEL_GROUPS), 1),
    (_grouped(RISK_GROUPS), 1),
    (_grouped(STATUS_GROUPS), 1),
)


# (received month as (year, month), region, channel, risk, case status)
Fine = tuple[tuple[int, int], str, str, str, str]
Coarse = tuple[str, str, str, str, str]
StrColumn = ColumnElement[str] | QueryableAttribute[str]


@dataclass
class Plan:
    levels: tuple[int, ...]  # generalisation level of each quasi-identifier (0 = as recorded)
    classes: dict[Coarse, int]  # the combinations that are written (``*`` = a blanked value), with sizes
    rows: int
    dropped: int
    suppressed_values: int
    information_loss: float

    @property
    def name(self) -> str:
        return ", ".join(f"{q}={lvl}" for q, lvl in zip(QUASI, self.levels, strict=True))


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


def recode(fine: Fine, levels: tuple[int, ...]) -> Coarse:
    """One fine combination at the given generalisation levels."""
    month, *rest = fine
    out = [_period(month, levels[0])]
    for (generalise, _), value, level in zip(HIERARCHY[1:], rest, levels[1:], strict=True):
        out.append(generalise(value, level))
    return tuple(out)  # type: ignore[return-value]


def _loss(levels: tuple[int, ...]) -> float:
    """Share of the detail lost per row by generalisation alone (each quasi-identifier weighs the same)."""
    return sum(lvl / top for lvl, (_, top) in zip(levels, HIERARCHY, strict=True)) / len(HIERARCHY)


MAX_BLANKS = 2  # values blanked in one row at most; a row that would need more is dropped
MAX_DROPPED = 0.05  # the share of rows the search accepts dropping, as ARX's suppression limit


def _suppress_locally(classes: Counter[Coarse], *, k: int) -> tuple[dict[Coarse, int], int, int]:
    """Blank values (``*``) in the rows of classes smaller than k, where that makes a group of k or more.

    Round by round (at most MAX_BLANKS), the column whose blanking rescues the most rows is blanked in
    every still-small combination. A blanked group is kept only if its rows held at least two different
    values in each blanked column, so no blank can be filled in from the rest of the file.
    Returns the classes to write, the rows dropped and the values blanked.
    """
    kept = {key: n for key, n in classes.items() if n >= k}
    # still-small combination (with blanks) -> the original combinations in it, with their counts
    small: dict[Coarse, Counter[Coarse]] = {key: Counter({key: n}) for key, n in classes.items() if n < k}
    where = {key: key for key in small}  # original combination -> the still-small combination holding it
    blanked_values = 0
    for round_ in range(1, MAX_BLANKS + 1):
        if not small:
            break
        best: tuple[int, int, dict[Coarse, Counter[Coarse]]] = (0, -1, {})
        for column in range(len(QUASI)):
            groups: dict[Coarse, Counter[Coarse]] = {}
            for key, members in small.items():
                if key[column] == BLANK or key.count(BLANK) >= round_:
                    continue
                blanked: Coarse = key[:column] + (BLANK,) + key[column + 1 :]  # type: ignore[assignment]
                groups.setdefault(blanked, Counter()).update(members)
            rescued = {b: m for b, m in groups.items() if sum(m.values()) >= k and _diverse(b, m)}
            total = sum(sum(m.values()) for m in rescued.values())
            if total > best[0]:
                best = (total, column, rescued)
        total, column, rescued = best
        if not total:
            break
        for b, members in rescued.items():
            kept[b] = kept.get(b, 0) + sum(members.values())
            blanked_values += sum(members.values()) * b.count(BLANK)
            for original in members:
                holder = where.pop(original)
                small[holder].pop(original)
                if not small[holder]:
                    del small[holder]
    dropped = sum(sum(m.values()) for m in small.values())
    return kept, dropped, blanked_values


def _diverse(key: Coarse, members: Counter[Coarse]) -> bool:
    return all(len({m[c] for m in members}) >= 2 for c, v in enumerate(key) if v == BLANK)


def plan(fine: Counter[Fine], *, k: int) -> Plan:
    """Search the whole generalisation lattice with local suppression; keep the least information loss.

    Loss per row is the share of generalisation steps taken (averaged over the quasi-identifiers), a
    blanked value costs that value in full, a dropped row costs the whole row. Each lattice node's counts
    are derived from a node one step finer, so every step groups fewer combinations than the last.
    """
    total = sum(fine.values())
    n_quasi = len(HIERARCHY)
    tops = [top for _, top in HIERARCHY]
    start = (0,) * n_quasi
    layer: dict[tuple[int, ...], Counter[Coarse]] = {start: Counter()}
    for key, n in fine.items():
        layer[start][recode(key, start)] += n
    best: Plan | None = None
    while layer:
        nxt: dict[tuple[int, ...], Counter[Coarse]] = {}
        for levels, classes in layer.items():
            # Each row of a small combination costs at least one blanked value: a bound that skips
            # the local suppression of nodes which cannot beat the best plan already within the limit.
            at_risk = sum(n for n in classes.values() if n < k)
            bound = _loss(levels) + at_risk / (total * n_quasi) if total else 0.0
            if best is not None and best.dropped <= MAX_DROPPED * total and bound >= best.information_loss:
                layer_next(nxt, levels, classes, tops)
                continue
            kept, dropped, blanked = _suppress_locally(classes, k=k)
            rows = total - dropped
            loss = (rows * _loss(levels) + blanked / n_quasi + dropped) / total if total else 0.0
            candidate = Plan(levels, kept, rows, dropped, blanked, loss)
            if best is None or _better(candidate, best, total):
                best = candidate
            layer_next(nxt, levels, classes, tops)
        layer = nxt
    assert best is not None
    return best


def layer_next(
    nxt: dict[tuple[int, ...], Counter[Coarse]], levels: tuple[int, ...], classes: Counter[Coarse], tops: list[int]
) -> None:
    """Add the lattice nodes one generalisation step above ``levels`` (each derived once)."""
    for q, top in enumerate(tops):
        if levels[q] >= top:
            continue
        up = levels[:q] + (levels[q] + 1,) + levels[q + 1 :]
        if up not in nxt:
            nxt[up] = _coarsen(classes, q, up)


def _better(a: Plan, b: Plan, total: int) -> bool:
    """Within the suppression limit the least information loss wins; outside it, fewer dropped rows."""
    limit = MAX_DROPPED * total
    if (a.dropped <= limit) != (b.dropped <= limit):
        return a.dropped <= limit
    if a.dropped > limit and a.dropped != b.dropped:
        return a.dropped < b.dropped
    return (a.information_loss, sum(a.levels)) < (b.information_loss, sum(b.levels))


def _coarsen(classes: Counter[Coarse], q: int, levels: tuple[int, ...]) -> Counter[Coarse]:
    out: Counter[Coarse] = Counter()
    generalise = _step(q, levels[q])
    for key, n in classes.items():
        out[key[:q] + (generalise(key[q]),) + key[q + 1 :]] += n  # type: ignore[operator]
    return out


def _step(q: int, level: int):  # type: ignore[no-untyped-def]
    """From a value at level-1 to level (the ladders are nested, so one step at a time is exact)."""
    if q == 0:

        def period(value: str) -> str:
            year = value[:4]
            if level == 1:
                return f"{year}-Q{(int(value[5:7]) - 1) // 3 + 1}"
            if level == 2:
                return f"{year}-H{(int(value[6]) - 1) // 2 + 1}"
            return year

        return period
    generalise = HIERARCHY[q][0]
    return lambda value: generalise(value, level)


def header_lines(plan: Plan, *, k: int, today: date) -> list[str]:
    return [
        "# helpline anonymised record-level file\n",
        f"# generated_on: {today.isoformat()}\n",
        f"# k: {k} (every combination of period, region, channel, risk and case_status has at least k rows)\n",
        f"# generalisation: {plan.name} (levels: period month/quarter/half-year/year; others value/group)\n",
        f"# rows: {plan.rows}\n",
        f"# dropped_rows: {plan.dropped} (in combinations smaller than k even with one value blanked)\n",
        f"# suppressed_values: {plan.suppressed_values} (written as {BLANK}, one per row at most)\n",
        f"# information_loss: {plan.information_loss:.4f} (0 = as recorded, 1 = nothing left)\n",
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
