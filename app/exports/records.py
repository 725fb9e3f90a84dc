"""The record-level file: one row per contact (and its case), k-anonymous over its quasi-identifiers.

Nothing sealed, no free text, no record code. The quasi-identifiers (period, region, channel, risk, case
status) are recoded with the standard statistical-disclosure-control toolkit: each has a ladder of
generalisations (period: month, quarter, half-year, year; the others: value, group), every node of the
lattice of ladder levels is tried, and in each the rows of combinations smaller than K get one value
blanked as ``*`` (local suppression) when that joins them into a group of K or more; only rows that even
then stay alone are dropped. The node kept is the one that loses the least information (generalisation
steps, blanked values and dropped rows, all counted per row), as ARX and sdcMicro choose. Only counts are
held in memory: one streamed GROUP BY pass, then the rows are written class by class (so the order says
nothing about dates or entry order), each with a fresh random id.

The file is read beside the frozen releases, which publish contacts and cases opened by month x region
(and quarter, year). Its rows per period and region are such a count too, so the file must never state one
the releases keep back: it covers released months only; a region is written only for a period whose
figure for that region the releases show (otherwise it reads ``withheld``, pooled with the other
withheld regions of that period); a period whose total the releases hide is left out; local suppression
never touches period or region (a blank there would be undone by subtracting the file's rows from the
released figure), and a blanked case status hides which status, never whether there is a case (the
released cases opened would tell the blanked rows with a case from those without).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from functools import partial

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
WITHHELD = "withheld"  # region of a period whose figure for it the releases do not show
QUASI = ("period", "region", "channel", "risk", "case_status")
SUPPRESSIBLE = (2, 3, 4)  # local suppression blanks channel, risk or case status; never period or region


def _period(month: tuple[int, int], level: int) -> str:
    year, m = month
    return (
        f"{year:04d}-{m:02d}",
        f"{year:04d}-Q{(m - 1) // 3 + 1}",
        f"{year:04d}-H{(m - 1) // 6 + 1}",
        f"{year:04d}",
    )[level]


def _grouped(groups: dict[str, str], value: str, level: int) -> str:
    # Its groups bound with partial, not a closure made at import, where mutation testing could not reach it.
    return value if level == 0 else groups.get(value, "other")


# Each quasi-identifier's ladder of generalisations: level 0 is the value as recorded.
HIERARCHY = (
    (_period, 3),
    (partial(_grouped, REGION_GROUPS), 1),
    (partial(_grouped, CHANNEL_GROUPS), 1),
    (partial(_grouped, RISK_GROUPS), 1),
    (partial(_grouped, STATUS_GROUPS), 1),
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
    dropped: int  # rows of combinations smaller than k that no blank could save
    suppressed_values: int
    information_loss: float
    withheld_values: int = 0  # regions written as ``withheld``
    left_out: int = 0  # rows outside the released months, or in a period whose released total is hidden
    blank_columns: tuple[int, ...] = ()  # the column blanked in each round of local suppression, in order
    periods: tuple[str, ...] = ()  # the periods the file covers (each: its released months only)

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


TOTAL = ""  # the all-regions figure of a period, in ``Published``


def months_in(period: str) -> list[tuple[int, int]]:
    """The months a period label (2026-03, 2026-Q1, 2026-H1, 2026) spans."""
    year = int(period[:4])
    if len(period) == 4:
        return [(year, m) for m in range(1, 13)]
    if period[5] == "Q":
        q = int(period[6])
        return [(year, 3 * (q - 1) + m) for m in (1, 2, 3)]
    if period[5] == "H":
        h = int(period[6])
        return [(year, 6 * (h - 1) + m) for m in range(1, 7)]
    return [(year, int(period[5:7]))]


def _parts(period: str) -> list[str]:
    """The released tables a period is made of, one step down (year and half-year: quarters; quarter: months)."""
    year = period[:4]
    if len(period) == 4:
        return [f"{year}-Q{q}" for q in (1, 2, 3, 4)]
    if period[5] == "H":
        h = int(period[6])
        return [f"{year}-Q{2 * (h - 1) + q}" for q in (1, 2)]
    if period[5] == "Q":
        return [f"{y:04d}-{m:02d}" for y, m in months_in(period)]
    return []


@dataclass(frozen=True)
class Published:
    """What the frozen releases show of contacts and cases opened, by period and region.

    ``shown`` holds (release period, region) for every figure shown in all the measures the file can be
    compared with, and (period, TOTAL) for every shown total; ``months`` the released months.
    """

    months: frozenset[tuple[int, int]]
    shown: frozenset[tuple[str, str]]
    regions: frozenset[str]

    @classmethod
    def of(cls, releases: dict[str, list[tuple[dict[str, int | None], int | None]]]) -> Published:
        """From each release period's tables (cells by region, total), one per comparable measure."""
        shown: set[tuple[str, str]] = set()
        regions: set[str] = set()
        for period, tables in releases.items():
            names = set().union(*(t[0] for t in tables)) if tables else set()
            regions |= names
            shown |= {(period, r) for r in names if all(t[0].get(r) is not None for t in tables)}
            shown |= {(period, TOTAL)} if tables and all(t[1] is not None for t in tables) else set()
        months = frozenset(months_in(p)[0] for p in releases if len(p) == 7 and p[5] != "Q")
        return cls(months=months, shown=frozenset(shown), regions=frozenset(regions))

    def known(self, period: str, region: str) -> bool:
        """Whether the releases pin down the count of ``region`` (or TOTAL) over the released months of ``period``."""
        months = months_in(period)
        if not any(m in self.months for m in months):
            return True  # the file holds no row there
        if (period, region) in self.shown and all(m in self.months for m in months):
            return True
        parts = _parts(period)
        return bool(parts) and all(self.known(p, region) for p in parts)


class _Withholding:
    """Which (period, region) pairs the file may state, remembered per pair (the lattice asks often)."""

    def __init__(self, published: Published, regions: set[str]) -> None:
        self.published = published
        self.members: dict[str, set[str]] = {}
        for r in regions | published.regions:
            self.members.setdefault(REGION_GROUPS.get(r, "other"), set()).add(r)
        self.cache: dict[tuple[str, str, int], bool] = {}

    def total(self, period: str) -> bool:
        return self._ask(period, TOTAL, 0)

    def region(self, period: str, region: str, level: int) -> bool:
        return self._ask(period, region, level)

    def _ask(self, period: str, region: str, level: int) -> bool:
        key = (period, region, level)
        answer = self.cache.get(key)
        if answer is None:
            names = self.members.get(region, {region}) if level else {region}
            answer = self.cache[key] = all(self.published.known(period, r) for r in names)
        return answer


def _withhold(classes: Counter[Coarse], levels: tuple[int, ...], rules: _Withholding) -> tuple[Counter[Coarse], int]:
    """The classes as the releases let them be written, and the rows left out (period total hidden)."""
    out: Counter[Coarse] = Counter()
    left = 0
    for key, n in classes.items():
        period, region = key[0], key[1]
        if not rules.total(period):
            left += n
            continue
        if not rules.region(period, region, levels[1]):
            key = (period, WITHHELD, *key[2:])  # type: ignore[assignment]
        out[key] += n
    return out, left


def recode(fine: Fine, levels: tuple[int, ...]) -> Coarse:
    """One fine combination at the given generalisation levels."""
    month, *rest = fine
    out = [_period(month, levels[0])]
    for (generalise, _), value, level in zip(HIERARCHY[1:], rest, levels[1:], strict=True):
        out.append(generalise(value, level))
    return tuple(out)  # type: ignore[return-value]


def _loss(levels: tuple[int, ...]) -> float:
    """Share of the detail lost per row by generalisation alone (each quasi-identifier weighs the same).

    Each ladder ends, above its last level, in the value blanked or withheld (nothing left): a column at
    level ``lvl`` of ``top`` has lost ``lvl / (top + 1)`` of its detail, a blanked one all of it.
    """
    return sum(_column_loss(levels, q) for q in range(len(HIERARCHY))) / len(HIERARCHY)


def _column_loss(levels: tuple[int, ...], q: int) -> float:
    return levels[q] / (HIERARCHY[q][1] + 1)


def _blank_cost(kept: dict[Coarse, int], levels: tuple[int, ...]) -> float:
    """What the blanked and withheld values lose beyond the generalisation, in values (each column is 1)."""
    cost = 0.0
    for key, n in kept.items():
        for q, value in enumerate(key):
            if value in (BLANK, WITHHELD):
                cost += n * (1 - _column_loss(levels, q))
    return cost


MAX_BLANKS = 2  # values blanked in one row at most; a row that would need more is dropped
MAX_DROPPED = 0.05  # the share of rows the search accepts dropping, as ARX's suppression limit


def _suppress_locally(classes: Counter[Coarse], *, k: int) -> tuple[dict[Coarse, int], int, int, tuple[int, ...]]:
    """Blank values (``*``) in the rows of classes smaller than k, where that makes a group of k or more.

    Round by round (at most MAX_BLANKS), the column whose blanking rescues the most rows is blanked in
    every still-small combination (channel, risk or case status only). A blanked group is kept only if
    its rows held at least two different values in each blanked column, so no blank can be filled in from
    the rest of the file, and a blanked case status only among rows that all have a case.
    Returns the classes to write, the rows dropped, the values blanked and the column of each round.
    """
    kept = {key: n for key, n in classes.items() if n >= k}
    # still-small combination (with blanks) -> the original combinations in it, with their counts
    small: dict[Coarse, Counter[Coarse]] = {key: Counter({key: n}) for key, n in classes.items() if n < k}
    where = {key: key for key in small}  # original combination -> the still-small combination holding it
    blanked_values = 0
    columns: list[int] = []
    for round_ in range(1, MAX_BLANKS + 1):
        if not small:
            break
        best: tuple[int, int, dict[Coarse, Counter[Coarse]]] = (0, -1, {})
        for column in SUPPRESSIBLE:
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
        columns.append(column)
        for b, members in rescued.items():
            kept[b] = kept.get(b, 0) + sum(members.values())
            blanked_values += sum(members.values()) * b.count(BLANK)
            for original in members:
                holder = where.pop(original)
                small[holder].pop(original)
                if not small[holder]:
                    del small[holder]
    lost: Counter[tuple[str, str]] = Counter()  # rows dropped, by period and region
    for members in small.values():
        for original, n in members.items():
            lost[original[:2]] += n
    for block, n in lost.items():
        if 0 < n < k:
            blanked_values -= _drop_more(kept, block, n, k=k)
    dropped = sum(classes.values()) - sum(kept.values())
    return kept, dropped, blanked_values, tuple(columns)


def _drop_more(kept: dict[Coarse, int], block: tuple[str, str], dropped: int, *, k: int) -> int:
    """Drop the smallest written classes of a period and region until its dropped rows are k or more.

    The releases give each period's figure for a region, so what the file writes of it tells how many of
    its rows were dropped; were that 1 to k-1, and the combinations no class of the file holds few, that
    small count would be theirs. Returns the blanked values dropped with them.
    """
    blanked = 0
    for key in sorted((key for key in kept if key[:2] == block), key=lambda key: (kept[key], key)):
        if dropped >= k:
            break
        n = kept.pop(key)
        dropped += n
        blanked += n * key.count(BLANK)
    return blanked


STATUS = QUASI.index("case_status")


def _diverse(key: Coarse, members: Counter[Coarse]) -> bool:
    if key[STATUS] == BLANK and any(m[STATUS] == NO_CASE for m in members):
        return False  # with or without a case is what the released cases opened would tell apart
    return all(len({m[c] for m in members}) >= 2 for c, v in enumerate(key) if v == BLANK)


def plan(fine: Counter[Fine], *, k: int, published: Published) -> Plan:
    """Search the whole generalisation lattice with local suppression; keep the least information loss.

    Loss per row is the share of generalisation steps taken (averaged over the quasi-identifiers), a
    blanked or withheld value costs that value in full, a dropped or left-out row costs the whole row.
    Each lattice node's counts are derived from a node one step finer, so every step groups fewer
    combinations than the last; what the releases do not show is withheld from each node's classes.
    """
    total = sum(fine.values())
    n_quasi = len(HIERARCHY)
    tops = [top for _, top in HIERARCHY]
    start = (0,) * n_quasi
    layer: dict[tuple[int, ...], Counter[Coarse]] = {start: Counter()}
    unreleased = 0
    for key, n in fine.items():
        if key[0] in published.months:
            layer[start][recode(key, start)] += n
        else:
            unreleased += n
    rules = _Withholding(published, {key[1] for key in fine})
    best: Plan | None = None
    while layer:
        nxt: dict[tuple[int, ...], Counter[Coarse]] = {}
        for levels, raw in layer.items():
            layer_next(nxt, levels, raw, tops)
            classes, left = _withhold(raw, levels, rules)
            left += unreleased
            # Each row of a small combination costs at least one blanked value: a bound that skips
            # the local suppression of nodes which cannot beat the best plan already within the limit.
            at_risk = sum(n for n in classes.values() if n < k)
            cheapest = min(1 - _column_loss(levels, q) for q in SUPPRESSIBLE)
            bound = _loss(levels) + at_risk * cheapest / (total * n_quasi) if total else 0.0
            if best is not None and _within(best, total) and bound >= best.information_loss:
                continue
            kept, dropped, blanked, columns = _suppress_locally(classes, k=k)
            withheld = sum(n for key, n in kept.items() if key[1] == WITHHELD)
            rows = total - dropped - left
            lost = rows * _loss(levels) + _blank_cost(kept, levels) / n_quasi + dropped + left
            loss = lost / total if total else 0.0
            periods = tuple(sorted({key[0] for key in kept}))
            candidate = Plan(levels, kept, rows, dropped, blanked, loss, withheld, left, columns, periods)
            if best is None or _better(candidate, best, total):
                best = candidate
        layer = nxt
    assert best is not None
    return best


def _within(plan: Plan, total: int) -> bool:
    return plan.dropped + plan.left_out <= MAX_DROPPED * total


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
    """Within the suppression limit the least information loss wins; outside it, fewer rows lost."""
    if _within(a, total) != _within(b, total):
        return _within(a, total)
    lost_a, lost_b = a.dropped + a.left_out, b.dropped + b.left_out
    if not _within(a, total) and lost_a != lost_b:
        return lost_a < lost_b
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
    covered = [m for p in plan.periods for m in months_in(p)]
    span = (
        f"{covered[0][0]:04d}-{covered[0][1]:02d} to {covered[-1][0]:04d}-{covered[-1][1]:02d}" if covered else "none"
    )
    return [
        "# helpline anonymised record-level file\n",
        f"# generated_on: {today.isoformat()}\n",
        f"# k: {k} (every combination of period, region, channel, risk and case_status has at least k rows)\n",
        f"# generalisation: {plan.name} (levels: period month/quarter/half-year/year; others value/group)\n",
        f"# periods: {' '.join(plan.periods) or 'none'} (contacts received in released months only, {span})\n",
        f"# rows: {plan.rows}\n",
        f"# dropped_rows: {plan.dropped} (in combinations smaller than k even with one value blanked)\n",
        f"# suppressed_values: {plan.suppressed_values} (channel, risk or case_status written as {BLANK}, "
        "one per row at most; a blanked case_status is always a case)\n",
        f"# withheld_regions: {plan.withheld_values} (region written as {WITHHELD} where the released "
        "statistics hide that period's figure for it)\n",
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
