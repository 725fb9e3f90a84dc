"""Demo data written in bulk keeps every protection: sealed, indexed, audited, row-sealed and counted.

Each test loads a fresh database of the backend for real (committed transactions, so the SQLite file is
what a disk would hold), then checks the result with the same functions and commands an operator uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, LargeBinary, String, Text, func, literal, select
from sqlalchemy.orm import Session

from app import bootstrap, demo
from app.attention.models import AttentionItem
from app.audit import seals
from app.audit import service as audit
from app.audit.models import AuditEntry
from app.auth.models import User
from app.cases.models import Case, CaseTransition
from app.config import Settings
from app.contacts import flagged
from app.contacts import service as contact_service
from app.contacts.models import Contact
from app.contacts.schemas import ContactIn
from app.crypto import blind_index
from app.crypto import service as crypto
from app.crypto.keyring import forget_keyrings, get_keyring
from app.crypto.models import BlindIndexEntry
from app.db import Base, make_engine, unit_of_work
from app.lifecycle import reindex
from app.stats import counters
from tests.conftest import make_settings

# Text the demo seals: none of it may reach the database in the clear.
PLAINTEXT = ("Demo Person", "Demo note", "Demo case note", "Demo Town", "Demo family", "demo-phone-", "demo_caller_")


@pytest.fixture
def install(backend: str, database_url_factory, tmp_path: Path) -> Iterator[tuple[Settings, Engine]]:
    forget_keyrings()
    settings = make_settings(tmp_path / "install", database_url=database_url_factory(backend))
    bootstrap.migrate(settings)
    engine = make_engine(settings)
    yield settings, engine
    engine.dispose()
    forget_keyrings()


def _units(settings: Settings, engine: Engine):
    @contextmanager
    def unit() -> Iterator[Session]:
        with unit_of_work(engine) as session:
            crypto.bind(session, settings=settings, keyring=get_keyring(settings))
            yield session

    return unit


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
    env |= {
        "HELPLINE_DATA_DIR": str(settings.data_dir),
        "HELPLINE_DATABASE_URL": settings.database_url,
        "HELPLINE_KEY_FILE": str(settings.key_path),
        "HELPLINE_SECURE_COOKIES": "false",
    }
    return subprocess.run([sys.executable, "-m", "app", *args], env=env, capture_output=True, text=True, check=False)


def _handles(session: Session) -> dict[str, str]:
    """Every contact's handle, decrypted, by contact code."""
    rows = session.execute(select(Contact.id, Contact.code, Contact.handle_ct).where(Contact.handle_ct.is_not(None)))
    return {
        code: crypto.open_field(session, blob, table="contact", column="handle", row_id=i, subject_id=i) or ""
        for i, code, blob in rows
    }


def _check_intake_answers(session: Session) -> None:
    """Replay intake's checks in the order the audit chain recorded the contacts: same flags, same queue."""
    order = session.scalars(
        select(AuditEntry.target).where(AuditEntry.action == "contact.record").order_by(AuditEntry.seq)
    )
    contacts = {c.code: c for c in session.scalars(select(Contact))}
    handles = _handles(session)
    known_bad = {blind_index.normalise_handle(h) for h in demo.KNOWN_BAD}
    earlier: dict[str, list[Contact]] = defaultdict(list)
    expected_queue: Counter[tuple[str, str | None, str | None]] = Counter()
    for code in order:
        contact = contacts[code]
        handle = handles.get(code)
        value = blind_index.normalise_handle(handle) if handle else None
        before = earlier[value] if value else []
        mine = [c for c in before if c.recorded_by_id == contact.recorded_by_id]
        assert contact.possible_duplicate == bool(mine), code
        assert contact.flagged_handle == (value in known_bad), code
        for other in before:
            if other.recorded_by_id != contact.recorded_by_id:
                expected_queue[("duplicate", code, other.code)] += 1
        if contact.flagged_handle:
            expected_queue[("known_bad", code, None)] += 1
        if contact.risk == "immediate":
            expected_queue[("immediate_danger", code, None)] += 1
        if value:
            earlier[value].append(contact)
    queue = Counter(
        tuple(row)
        for row in session.execute(select(AttentionItem.kind, AttentionItem.record_code, AttentionItem.other_code))
    )
    assert queue == expected_queue and sum(queue.values()) > 0


def _check_audit_trail(session: Session) -> None:
    """One entry for each thing the services would have audited, with the codes they would name."""
    actions = Counter(session.scalars(select(AuditEntry.action)))
    contacts = session.scalar(select(func.count()).select_from(Contact))
    cases = session.scalar(select(func.count()).select_from(Case))
    moves = session.scalar(select(func.count()).select_from(CaseTransition).where(CaseTransition.position > 0))
    verified = session.scalar(select(func.count()).select_from(Case).where(Case.verified_by_id.is_not(None)))
    with_outcome = session.scalar(select(func.count()).select_from(Contact).where(Contact.outcome.is_not(None)))
    assert actions["contact.record"] == contacts and actions["case.open"] == cases > 0
    assert actions["case.transition"] == moves > 0 and actions["case.verify"] == verified > 0
    assert actions["contact.outcome"] == with_outcome
    opened = session.execute(select(AuditEntry.target, AuditEntry.detail).where(AuditEntry.action == "case.open"))
    joined = session.execute(select(Case.code, Contact.code).join(Contact, Contact.id == Case.contact_id))
    case_of = {case: contact for case, contact in joined}
    for target, detail in opened:
        assert json.loads(detail)["contact"] == case_of[target]


def _plaintext_in_columns(session: Session, needles: tuple[str, ...] = PLAINTEXT) -> list[str]:
    """Every "table.column: text" where a stored value holds one of ``needles``, on either backend."""
    found = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if not isinstance(column.type, LargeBinary | String | Text):
                continue
            for needle in needles:
                if not isinstance(column.type, LargeBinary):
                    hit = column.contains(needle)
                elif session.get_bind().dialect.name == "postgresql":
                    hit = func.encode(column, "hex").contains(needle.encode().hex())
                else:
                    hit = func.instr(column, literal(needle.encode(), LargeBinary)) > 0
                if session.scalar(select(func.count()).select_from(table).where(hit)):
                    found.append(f"{table.name}.{column.name}: {needle}")
    return found


def test_demo_data_is_sealed_indexed_audited_sealed_and_counted(install) -> None:
    settings, engine = install
    units = _units(settings, engine)
    report = demo.generate(units, contacts=300, seed=5, batch=120, progress=False)
    assert report.contacts == 300 and report.cases > 50

    # The commands an operator runs.
    verified = _cli(settings, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "audit chain intact" in verified.stdout
    checked = _cli(settings, "stats", "check")
    assert checked.returncode == 0 and "agree" in checked.stdout, checked.stdout + checked.stderr

    with units() as session:
        keyring = crypto.keyring_of(session)
        assert audit.verify(session)[1] is None
        assert list(seals.broken_rows(session, keyring)) == []
        assert session.scalar(select(func.count()).select_from(Case).where(Case.seal.is_(None))) == 0
        assert counters.drift(session) == []
        _check_audit_trail(session)
        _check_intake_answers(session)

        # The index is at the width the widener would choose for what is in it: nothing left to rebuild.
        assert reindex.wanted_widths(session) is None
        indexed = session.scalar(select(func.count()).where(BlindIndexEntry.column == contact_service.INDEX_COLUMN))
        assert crypto.active_epoch(session).width(contact_service.INDEX_COLUMN) == reindex.auto_width(indexed)

        # A demo contact opens for its caseworker, and the duplicate check finds it by its handle.
        worker = session.scalar(select(User).where(User.username == demo.CASEWORKERS[0]))
        assert worker is not None
        mine = session.scalars(
            select(Contact).where(Contact.recorded_by_id == worker.id, Contact.handle_ct.is_not(None))
        ).first()
        assert mine is not None
        shown = contact_service.read_contact(session=session, actor=worker, contact_id=mine.id)
        assert shown.alias.startswith("Demo Person ") and shown.notes.startswith("Demo note ")
        assert shown.handle
        found = flagged.handle_matches(
            session, model=Contact, table="contact", column=contact_service.INDEX_COLUMN, value=shown.handle.upper()
        )
        assert mine.id in found
        again = contact_service.record_contact(
            session=session,
            actor=worker,
            data=ContactIn(
                received_on=mine.received_on,
                channel=mine.channel,
                region=mine.region,
                language="ru",
                risk="low",
                needs=["legal"],
                handle=shown.handle,
            ),
        )
        assert again.possible_duplicate and mine.code in {d.code for d in again.duplicate_of}
        session.rollback()

        assert _plaintext_in_columns(session) == []
        # The search finds what is stored in the clear (names of staff are not sealed).
        assert "audit_entry.actor: demo-caseworker-1" in _plaintext_in_columns(session, (demo.CASEWORKERS[0],))
    engine.dispose()
    if settings.database_url.startswith("sqlite"):
        path = Path(settings.database_url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert len(raw) > 500_000  # the file holds the rows (so the search below searched something)
        assert [t for t in PLAINTEXT if t.encode() in raw] == []


def test_a_second_load_checks_against_the_first(install) -> None:
    settings, engine = install
    units = _units(settings, engine)
    demo.generate(units, contacts=150, seed=1, batch=60, progress=False)
    with units() as session:
        before = session.scalar(select(func.count()).where(Contact.possible_duplicate.is_(True)))
    # The same seed again: the same handles, now also in the database before the load starts.
    second = demo.generate(units, contacts=80, seed=1, batch=60, progress=False)
    assert second.new_accounts == [] and second.contacts == 80
    with units() as session:
        assert audit.verify(session)[1] is None
        assert list(seals.broken_rows(session, crypto.keyring_of(session))) == []
        assert counters.drift(session) == []
        _check_audit_trail(session)
        _check_intake_answers(session)
        # The second load's first callers are the first load's (same seed), found through the index.
        after = session.scalar(select(func.count()).where(Contact.possible_duplicate.is_(True)))
        assert after is not None and before is not None and after >= before + 5
