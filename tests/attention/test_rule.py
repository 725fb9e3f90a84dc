"""One open entry per thing is the database's rule, not only the service's: a second open entry inserted
past the service is refused, and two workers raising the same thing at the same moment leave one entry and
one audit line (PostgreSQL, where writers run side by side)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import date

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from app import bootstrap
from app.attention import service as attention
from app.attention.models import AttentionItem
from app.audit.models import AuditEntry
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.db import make_engine, unit_of_work
from tests.conftest import BACKENDS, make_settings

# (kind, record_code, other_code, raised_by): one thing each, and the thing raised again by someone else.
THINGS = [
    ("immediate_danger", "K-0001", None, "aminat", "zaur"),
    ("duplicate", "K-0002", "K-0001", "aminat", "zaur"),
    ("duplicate", None, "K-0001", "aminat", "zaur"),
    ("duress", None, None, "aminat", "aminat"),
]


def _insert(session, kind: str, record_code: str | None, other_code: str | None, raised_by: str) -> uuid.UUID:
    item_id = uuid.uuid4()
    session.execute(
        insert(AttentionItem).values(
            id=item_id,
            kind=kind,
            raised_on=date(2026, 11, 30),
            raised_by=raised_by,
            record_code=record_code,
            other_code=other_code,
        )
    )
    return item_id


@pytest.mark.parametrize(("kind", "record_code", "other_code", "first", "again"), THINGS)
def test_the_database_refuses_a_second_open_entry_for_the_same_thing_until_the_first_is_resolved(
    session, kind, record_code, other_code, first, again
):
    item_id = _insert(session, kind, record_code, other_code, first)
    with pytest.raises(IntegrityError), session.begin_nested():
        _insert(session, kind, record_code, other_code, again)
    session.execute(update(AttentionItem).where(AttentionItem.id == item_id).values(resolved_on=date(2026, 12, 1)))
    _insert(session, kind, record_code, other_code, again)
    opened = session.scalar(select(func.count()).where(AttentionItem.resolved_on.is_(None)))
    assert (opened, session.scalar(select(func.count()).select_from(AttentionItem))) == (1, 2)


def test_the_database_keeps_apart_what_differs_in_kind_codes_or_for_no_record_the_raiser(session):
    rows = [
        ("immediate_danger", "K-0001", None, "aminat"),
        ("known_bad", "K-0001", None, "aminat"),
        ("immediate_danger", "K-0003", None, "aminat"),
        ("duplicate", "K-0002", None, "aminat"),
        ("duplicate", "K-0002", "K-0001", "aminat"),
        ("duplicate", None, "K-0002", "aminat"),
        ("duress", None, None, "aminat"),
        ("duress", None, None, "zaur"),
    ]
    for row in rows:
        _insert(session, *row)
    assert session.scalar(select(func.count()).where(AttentionItem.resolved_on.is_(None))) == 8


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL only: SQLite runs one writer at a time")
def test_two_workers_raising_the_same_thing_at_once_leave_one_entry_and_one_audit_line(
    database_url_factory, tmp_path
) -> None:
    settings = make_settings(tmp_path, database_url=database_url_factory("postgresql"))
    bootstrap.migrate(settings)
    engine = make_engine(settings)
    first_raised, release, second_raised = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def worker(name: str, *, hold: bool) -> None:
        try:
            with unit_of_work(engine) as session:
                crypto.bind(session, settings=settings, keyring=get_keyring(settings))
                attention.raise_item(session, kind="immediate_danger", raised_by=name, record_code="K-RACE-01")
                if hold:  # the first keeps its transaction open until the second has tried
                    first_raised.set()
                    release.wait(timeout=30)
                else:
                    second_raised.set()
        except BaseException as exc:  # what the test reports
            errors.append(exc)

    try:
        first = threading.Thread(target=worker, args=("aminat",), kwargs={"hold": True})
        first.start()
        assert first_raised.wait(timeout=30)
        second = threading.Thread(target=worker, args=("zaur",), kwargs={"hold": False})
        second.start()
        deadline = time.monotonic() + 10
        waiting = 0
        while time.monotonic() < deadline and not second_raised.is_set():
            with engine.connect() as probe:  # the second waits on the first's uncommitted entry
                waiting = probe.scalar(
                    text("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'")
                )
            if waiting:
                break
            time.sleep(0.05)
        release.set()
        first.join(timeout=30)
        second.join(timeout=30)
        assert errors == []
        with engine.connect() as conn:
            entries = conn.execute(
                select(AttentionItem.raised_by, AttentionItem.resolved_on).where(
                    AttentionItem.record_code == "K-RACE-01"
                )
            ).all()
            audited = conn.execute(
                select(AuditEntry.actor, AuditEntry.action).where(AuditEntry.target == "K-RACE-01")
            ).all()
        assert [tuple(e) for e in entries] == [("aminat", None)]
        assert [tuple(a) for a in audited] == [("aminat", "attention.immediate_danger")]
        assert waiting == 1  # the second really met the first's entry while it was still uncommitted
    finally:
        release.set()
        engine.dispose()
