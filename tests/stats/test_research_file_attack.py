"""The research file and the releases, attacked together: an analyst holds both, and must learn nothing small.

The releases give contacts and cases opened by month x region (and quarter, year), exact where shown. The
research file gives, for each of its classes, how many rows share that combination. A reader who knows the
method writes both as equations over the month x region x channel x risk x status counts (a blanked or
withheld class is the sum of the combinations the method could have put in it; the dropped rows are the
rest) and solves them together exactly, using also that counts are never negative (a figure of 0 makes
every count in it 0). The file fails if that determines any combination, at any grain, with a count from 1
to K-1, if a run of months for one region or all is pinned to 1..K-1, or if a blanked or withheld value
has only one value left it could be.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.exports import records
from app.stats import joint
from bench.records_sdc import published_of, released
from tests.stats.solver import Reader

K = 5
YEAR = 2025
TODAY = date(YEAR + 1, 1, 20)  # every month of 2025 is released, with its quarters and the year; January is not
REGIONS = ("chechnya", "dagestan", "moscow")
CHANNELS = ("phone", "telegram")
RISKS = ("low", "high")
STATUSES = ("no_case", "new", "evacuated")
MONTHS = [(YEAR, m) for m in range(1, 13)] + [(YEAR + 1, 1)]
Var = tuple[tuple[int, int], str, str, str, str]
DOMAIN: list[Var] = list(itertools.product(MONTHS, REGIONS, CHANNELS, RISKS, STATUSES))


def _field(seed: int, density: float, big: float) -> Counter[Var]:
    """Many small cells: most combinations empty, the rest 1 to 3, a few regions and months busier."""
    rnd = random.Random(seed)
    fine: Counter[Var] = Counter()
    for v in DOMAIN:
        weight = density * (1 + big * (v[1] == "chechnya")) / (1 + STATUSES.index(v[4]))
        if rnd.random() < weight:
            fine[v] = rnd.randint(1, 3) + (rnd.randint(0, 6) if rnd.random() < big / 4 else 0)
    return fine


class Attacker:
    def __init__(self, fine: Counter[Var]) -> None:
        self.truth = fine
        self.reader = Reader()

    def learn(self, members: list[Var], value: int) -> None:
        assert value == sum(self.truth[v] for v in members), "the reader's model of a figure is wrong"
        if value == 0:  # counts are never negative: every count in an empty figure is 0
            for v in members:
                self.reader.learn([v], 0)
        else:
            self.reader.learn(members, value)

    def determined(self, members: list[Var]) -> int | None:
        value = self.reader.determined(members)
        if value is not None:
            assert value == sum(self.truth[v] for v in members)  # the solver is right about what it claims
        return value


def _months(period: str) -> list[tuple[int, int]]:
    return [(d.year, d.month) for d in joint.months_of(period)]


def _learn_releases(attacker: Attacker, tables: dict) -> None:
    """The released contacts: counted by the day a contact came in and its region, as the file's rows are.

    (Cases opened, escapes and resettlements are dated by other events, so the file's rows are no sum of
    them; the file still treats cases opened as comparable, see ``records``.)
    """
    for period, by_measure in tables.items():
        months = _months(period)
        table = by_measure["contacts"]
        hidden = table.hidden or set()
        for r, value in table.cells.items():
            if r not in hidden:
                attacker.learn([v for v in DOMAIN if v[0] in months and v[1] == r], value)
        if joint.TOTAL not in hidden:
            attacker.learn([v for v in DOMAIN if v[0] in months], table.total)


def _file_classes(plan: records.Plan, published: records.Published) -> tuple[dict[tuple, list[Var]], list[Var]]:
    """Each written class with the combinations the method could have put in it; and those it could drop."""
    rules = records._Withholding(published, set(REGIONS))
    members: dict[tuple, list[Var]] = {key: [] for key in plan.classes}
    dropped: list[Var] = []
    for v in DOMAIN:
        if v[0] not in published.months:
            continue  # the file covers released months only
        key = records.recode(v, plan.levels)
        if not rules.total(key[0]):
            continue  # a period whose released total is hidden is left out
        if not rules.region(key[0], key[1], plan.levels[1]):
            key = (key[0], records.WITHHELD, *key[2:])
        if key in plan.classes:
            members[key].append(v)
            continue
        for column in plan.blank_columns:  # the first round whose blank would have taken it in
            blanked = key[:column] + (records.BLANK,) + key[column + 1 :]
            if blanked in plan.classes and not (column == records.STATUS and key[column] == records.NO_CASE):
                members[blanked].append(v)
                break
        else:
            dropped.append(v)
    return members, dropped


def _queries() -> dict[tuple, list[Var]]:
    """Every combination at any grain the file or the releases speak of (None: any value)."""
    quarters = [f"{YEAR}-Q{q}" for q in (1, 2, 3, 4)]
    halves = [f"{YEAR}-H1", f"{YEAR}-H2"]
    periods = [f"{YEAR}-{m:02d}" for m in range(1, 13)] + quarters + halves + [str(YEAR)]
    regions: list[tuple[str, ...] | None] = [(r,) for r in REGIONS] + [("chechnya", "dagestan"), None]
    out: dict[tuple, list[Var]] = {}
    for period, region, channel, risk, status in itertools.product(
        periods, regions, [*CHANNELS, None], [*RISKS, None], [*STATUSES, None]
    ):
        months = set(records.months_in(period))
        out[(period, region, channel, risk, status)] = [
            v
            for v in DOMAIN
            if v[0] in months
            and (region is None or v[1] in region)
            and channel in (None, v[2])
            and risk in (None, v[3])
            and status in (None, v[4])
        ]
    # Runs of months, for one region or all, of each released measure.
    for a in range(1, 13):
        for b in range(a, 13):
            for region in [*((r,) for r in REGIONS), None]:
                run = [
                    v for v in DOMAIN if v[0][0] == YEAR and a <= v[0][1] <= b and (region is None or v[1] in region)
                ]
                out[("run", a, b, region)] = run
    return out


QUERIES = _queries()


def attack(
    fine: Counter[Var], *, k: int = K, published: records.Published | None = None
) -> tuple[records.Plan, list[str]]:
    """Everything the analyst holds, solved together; returns the plan and what it gave away."""
    tables = released(fine, today=TODAY, k=k, regions=REGIONS)
    published = published or published_of(tables)
    plan = records.plan(fine, k=k, published=published)
    attacker, releases_only = Attacker(fine), Attacker(fine)
    _learn_releases(attacker, tables)
    _learn_releases(releases_only, tables)
    members, dropped = _file_classes(plan, published)
    for key, vs in members.items():
        attacker.learn(vs, plan.classes[key])
    attacker.learn(dropped, plan.dropped)
    found: list[str] = []
    for name, vs in QUERIES.items():
        truth = sum(fine[v] for v in vs)
        # What the releases give away on their own is theirs to answer for (tests/stats/test_attacks.py).
        if 0 < truth < k and attacker.determined(vs) is not None and releases_only.determined(vs) is None:
            found.append(f"{name} = {truth}")
    # A blanked or withheld value must keep at least two values it could be.
    for key, vs in members.items():
        for column, value in enumerate(key):
            if value not in (records.BLANK, records.WITHHELD):
                continue
            could_be = {v[column] for v in vs if attacker.determined([u for u in vs if u[column] == v[column]]) != 0}
            if len(could_be) < 2:
                found.append(f"{key}: the {records.QUASI[column]} hidden in {plan.classes[key]} rows is {could_be}")
    return plan, found


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=0, max_value=100_000),
    density=st.floats(min_value=0.03, max_value=0.4),
    big=st.floats(min_value=0.0, max_value=3.0),
)
def test_the_research_file_and_the_releases_together_determine_no_small_count(seed, density, big) -> None:
    fine = _field(seed, density, big)
    plan, found = attack(fine)
    assert found == [], found
    assert min(plan.classes.values(), default=K) >= K
    assert all(key[0] != records.BLANK and key[1] != records.BLANK for key in plan.classes)


def test_the_attack_finds_what_the_file_gave_away_when_it_ignored_the_releases(monkeypatch) -> None:
    # The method as it was before it took the releases into account: any column blanked (period and
    # region too), a case status blanked across rows with and without a case, every region written, and
    # however few rows of a period and region dropped. The same reader finds released-hidden counts in it:
    # e.g. a region's month, hidden in the release, given back by the file's classes and the year's figures.
    def diverse(key, members):  # type: ignore[no-untyped-def]
        return all(len({m[c] for m in members}) >= 2 for c, v in enumerate(key) if v == records.BLANK)

    monkeypatch.setattr(records, "SUPPRESSIBLE", (0, 1, 2, 3, 4))
    monkeypatch.setattr(records, "_diverse", diverse)
    monkeypatch.setattr(records, "_drop_more", lambda *args, **kw: 0)
    fine = _field(1, 0.15, 1.0)
    tables = released(fine, today=TODAY, k=K, regions=REGIONS)
    everything = records.Published(
        months=frozenset(MONTHS[:-1]),
        shown=frozenset((p, r) for p in tables for r in (*REGIONS, records.TOTAL)),
        regions=frozenset(REGIONS),
    )
    _, found = attack(fine, published=everything)
    assert any(name.startswith("('2025-") for name in found), found
    # And the file as written now, from the same data and releases, gives none of it back.
    monkeypatch.undo()
    assert attack(fine)[1] == []
