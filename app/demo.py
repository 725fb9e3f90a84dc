"""Synthetic demo data: realistic proportions, obviously fake text, every protection of real records.

The demo accounts and known-bad entries go through the services; contacts, cases and their histories go
through ``app.bulk``, which seals, indexes, audits and counts them as the services do, a batch of
contacts per transaction (a hundred thousand contacts take minutes, not an hour).

About half of the contacts become cases and about half of those reach ``evacuated``; contacts are spread
over the last twelve months and every status change happens after the case opened and not in the future.
The same ``seed`` gives the same data (record codes stay random: they are drawn like real ones).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm import tqdm

from app.auth import service as auth_service
from app.auth.models import Role, User
from app.auth.service import NewAccount
from app.bulk import BulkWriter
from app.cases import service as case_service
from app.cases.schemas import CaseFields
from app.cases.workflow import CaseStatus
from app.contacts import flagged
from app.contacts import service as contact_service
from app.contacts.schemas import ContactIn, FlaggedHandleIn, Outcome
from app.crypto import service as crypto
from app.errors import Conflict
from app.lifecycle import reindex

CASEWORKERS = ("demo-caseworker-1", "demo-caseworker-2", "demo-caseworker-3", "demo-caseworker-4")
COORDINATOR = "demo-coordinator"
ANALYST = "demo-analyst"  # so exports and published statistics can be tried from the demo alone
KNOWN_BAD = ("@demo_known_bad_1", "@demo_known_bad_2", "@demo_known_bad_3")
BATCH = 1000
DAYS_BACK = 365

# Weighted towards the North Caucasus, where the callers of such hotlines mostly are.
REGION_WEIGHTS = {
    "chechnya": 34,
    "dagestan": 14,
    "ingushetia": 9,
    "north_caucasus_other": 7,
    "moscow": 11,
    "st_petersburg": 6,
    "russia_other": 10,
    "abroad": 5,
    "unknown": 4,
}
CHANNEL_WEIGHTS = {
    "telegram": 34,
    "phone": 20,
    "signal": 12,
    "whatsapp": 12,
    "referral": 9,
    "email": 5,
    "in_person": 3,
    "other": 5,
}
RISK_WEIGHTS = {"low": 12, "medium": 33, "high": 37, "immediate": 18}
NEED_ODDS = {
    "evacuation": 0.7,
    "shelter": 0.4,
    "legal": 0.35,
    "psychological": 0.3,
    "documents": 0.25,
    "medical": 0.2,
    "financial": 0.15,
    "other": 0.05,
}
LANGUAGE_WEIGHTS = {"ru": 72, "ce": 12, "av": 5, "inh": 4, "en": 4, "uk": 3}
CASE_ODDS = {"low": 0.2, "medium": 0.45, "high": 0.6, "immediate": 0.75}
OTHER_OUTCOMES = {"info_only": 40, "referred": 35, "no_follow_up": 25}
# Where a case ends up: half on the way to safety, half stopping somewhere else.
ENDINGS = {
    "evacuated": 50,
    "verifying": 8,
    "planning": 8,
    "in_transit": 4,
    "rejected": 6,
    "declined": 9,
    "lost_contact": 10,
    "paused": 5,
}
# Days each step takes, (shortest, longest).
STEP_DAYS = {
    "verifying": (0, 6),
    "planning": (1, 12),
    "in_transit": (1, 10),
    "evacuated": (1, 6),
    "resettled": (10, 60),
    "closed": (5, 60),
    "rejected": (1, 10),
    "declined": (1, 20),
    "lost_contact": (3, 30),
    "paused": (2, 20),
}


@dataclass
class DemoReport:
    contacts: int = 0
    cases: int = 0
    evacuated: int = 0
    seconds: float = 0.0
    new_accounts: list[NewAccount] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.contacts / self.seconds if self.seconds else 0.0


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def ensure_staff(session: Session) -> tuple[list[User], User, list[NewAccount]]:
    """The demo caseworkers, coordinator and analyst, created if absent; new accounts are returned once."""
    created: list[NewAccount] = []

    def account(name: str, role: Role) -> User:
        user = session.scalar(select(User).where(User.username == name))
        if user is None:
            new = auth_service.create_user(session, actor="demo-data", username=name, role=role.value)
            created.append(new)
            return new.user
        if user.role != role.value or not user.active:
            raise Conflict(f"account {name!r} exists but is not an active {role.value}; remove or rename it")
        return user

    workers = [account(name, Role.caseworker) for name in CASEWORKERS]
    coordinator = account(COORDINATOR, Role.coordinator)
    account(ANALYST, Role.analyst)
    for handle in KNOWN_BAD:
        if not flagged.flagged_entries_for(session, handle=handle):
            flagged.add_flagged_handle(
                session=session,
                actor=coordinator,
                data=FlaggedHandleIn(handle=handle, reason="Demo entry: synthetic known-bad handle"),
            )
    session.flush()
    return workers, coordinator, created


class _Generator:
    def __init__(self, rng: random.Random, today: date, regions: tuple[str, ...]) -> None:
        self.rng = rng
        self.today = today
        self.regions = {r: REGION_WEIGHTS.get(r, 3) for r in regions}
        self.handles: list[str] = []
        self.serial = 0

    def handle(self, channel: str) -> str | None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.01:
            return rng.choice(KNOWN_BAD)
        if roll < 0.06 and self.handles:
            return rng.choice(self.handles)  # the same person calling again
        if roll < 0.10:
            return None
        n = self.serial
        made = {
            "phone": f"demo-phone-{n:07d}",
            "email": f"demo{n:07d}@example.invalid",
            "referral": f"demo-referral-{n:07d}",
            "in_person": f"demo-visit-{n:07d}",
        }.get(channel, f"@demo_caller_{n:07d}")
        self.handles.append(made)
        return made

    def contact(self) -> ContactIn:
        rng = self.rng
        self.serial += 1
        n = self.serial
        channel = _pick(rng, CHANNEL_WEIGHTS)
        needs = [need for need, odds in NEED_ODDS.items() if rng.random() < odds] or ["other"]
        return ContactIn(
            received_on=self.today - timedelta(days=rng.randrange(DAYS_BACK)),
            channel=channel,  # type: ignore[arg-type]
            region=_pick(rng, self.regions),
            language=_pick(rng, LANGUAGE_WEIGHTS),
            risk=_pick(rng, RISK_WEIGHTS),  # type: ignore[arg-type]
            needs=needs,  # type: ignore[arg-type]
            alias=f"Demo Person {n}",
            handle=self.handle(channel),
            notes=f"Demo note {n}: synthetic data for demonstration only.",
        )

    def case_fields(self, n: int) -> CaseFields:
        return CaseFields(
            full_name=f"Demo Person {n}",
            handle=None,
            location=f"Demo Town {self.rng.randrange(1, 60)}",
            family_situation=f"Demo family situation {n}",
            notes=f"Demo case note {n}: synthetic data for demonstration only.",
        )

    def path(self) -> list[str]:
        """The statuses a case will pass through after ``new``, by its ending."""
        rng = self.rng
        ending = _pick(rng, ENDINGS)
        main = ["verifying", "planning", "in_transit", "evacuated"]
        if ending == "evacuated":
            roll = rng.random()
            extra = ["resettled", "closed"] if roll < 0.2 else ["resettled"] if roll < 0.45 else []
            return [*main, *extra]
        if ending in main:
            return main[: main.index(ending) + 1]
        if ending == "rejected":
            return ["verifying", "rejected"] + (["closed"] if rng.random() < 0.5 else [])
        stop = rng.randrange(0, 4)  # declined, lost or paused after new, verifying, planning or in transit
        return [*main[:stop], ending]

    def step_day(self, status: str, after: date) -> date:
        low, high = STEP_DAYS[status]
        return after + timedelta(days=self.rng.randint(low, high))


def expected_index_rows(contacts: int) -> dict[str, int]:
    """Blind-index rows this load adds per column: nine contacts in ten give a handle, cases and the
    known-bad list none beyond the demo's own three."""
    return {
        contact_service.INDEX_COLUMN: contacts * 9 // 10,
        case_service.INDEX_COLUMN: 0,
        flagged.INDEX_COLUMN: len(KNOWN_BAD),
    }


def generate(
    session_factory: Callable[[], AbstractContextManager[Session]],
    *,
    contacts: int,
    seed: int | None = None,
    batch: int = BATCH,
    progress: bool = True,
) -> DemoReport:
    """Write ``contacts`` synthetic contacts (and their cases) in transactions of ``batch`` contacts."""
    rng = random.Random(seed)
    report = DemoReport()
    started = time.perf_counter()
    with session_factory() as session:
        # Before the first entry, so the index is written once at the width the widener would pick.
        reindex.size_empty_columns(session, expected=expected_index_rows(contacts), actor="demo-data")
    with session_factory() as session:
        workers, coordinator, report.new_accounts = ensure_staff(session)
        worker_ids = [w.id for w in workers]
        coordinator_id = coordinator.id
        today = crypto.settings_of(session).today()
        regions = crypto.settings_of(session).regions
        writer = BulkWriter(session)
    gen = _Generator(rng, today, regions)
    # disable=None: no bar when stderr is not a terminal (a pipe or a log file would get its redraws).
    bar = tqdm(total=contacts, file=sys.stderr, unit="contact", disable=None if progress else True, desc="demo data")
    try:
        for start in range(0, contacts, batch):
            size = min(batch, contacts - start)
            with session_factory() as session:
                staff = [session.get(User, i) for i in worker_ids]
                coord = session.get(User, coordinator_id)
                assert coord is not None and all(staff)
                with writer.batch(session):
                    for _ in range(size):
                        _one(writer, gen, rng.choice(staff), coord, report)  # type: ignore[arg-type]
            bar.update(size)
    finally:
        bar.close()
    report.seconds = time.perf_counter() - started
    return report


def _one(writer: BulkWriter, gen: _Generator, worker: User, coordinator: User, report: DemoReport) -> None:
    rng = gen.rng
    data = gen.contact()
    made = writer.record_contact(actor=worker, data=data)
    contact = made.contact
    report.contacts += 1
    if made.flagged_handle:
        writer.set_outcome(actor=worker, contact=contact, outcome=Outcome.suspected_infiltration.value)
        return
    if made.possible_duplicate and rng.random() < 0.5:
        writer.set_outcome(actor=worker, contact=contact, outcome=Outcome.duplicate.value)
        return
    if rng.random() >= CASE_ODDS[data.risk.value]:
        outcome = _pick(rng, OTHER_OUTCOMES)
        if rng.random() < 0.85:  # some contacts are still waiting for a decision
            writer.set_outcome(actor=worker, contact=contact, outcome=outcome)
        return
    opened = min(data.received_on + timedelta(days=rng.randint(0, 3)), gen.today)
    case = writer.open_case(actor=worker, contact=contact, data=gen.case_fields(gen.serial), on=opened)
    report.cases += 1
    day = opened
    for status in gen.path():
        nxt = gen.step_day(status, day)
        if nxt > gen.today:
            break  # recent cases are still on their way
        if status in ("planning", "in_transit") and not case_service.is_verified(case):
            writer.verify(actor=coordinator, case=case, on=day)
        writer.transition(actor=worker, case=case, to=status, on=nxt)
        day = nxt
    if case.status == CaseStatus.evacuated or case.evacuated_on is not None:
        report.evacuated += 1


def iter_accounts(report: DemoReport) -> Iterator[str]:
    """Lines announcing the demo accounts created in this run (shown once, like create-user)."""
    for account in report.new_accounts:
        yield f"created {account.user.role} {account.user.username}"
        yield f"  password: {account.password}"
        yield f"  {account.otpauth_uri}"
