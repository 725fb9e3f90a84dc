"""The queue's own rules: what an entry holds, when a repeat is swallowed, the order coordinators see, who
resolves, and what is audited."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from app.attention import service as attention
from app.attention.models import AttentionItem
from app.attention.schemas import AttentionOut
from app.audit.models import AuditEntry
from app.errors import Forbidden, NotFound

CASE_ID = uuid.UUID("0123456789abcdef0123456789abcdef")


def _items(session) -> list[tuple]:
    """Every entry, sorted by kind, record, other record and raiser (a missing code first on both backends)."""
    session.flush()
    rows = session.execute(
        select(
            AttentionItem.kind,
            AttentionItem.raised_on,
            AttentionItem.raised_by,
            AttentionItem.record_code,
            AttentionItem.other_code,
            AttentionItem.case_id,
            AttentionItem.resolved_on,
            AttentionItem.resolved_by,
        ).execution_options(populate_existing=True)
    ).all()
    return sorted(rows, key=lambda r: (r.kind, r.record_code or "", r.other_code or "", r.raised_by))


def _audit(session) -> list[tuple]:
    session.commit()  # pending entries are written at commit (a savepoint here)
    rows = session.execute(
        select(AuditEntry.actor, AuditEntry.action, AuditEntry.target, AuditEntry.detail)
        .where(AuditEntry.action.startswith("attention."))
        .order_by(AuditEntry.seq)
    )
    return [(actor, action, target, json.loads(detail)) for actor, action, target, detail in rows]


def _only_open(session, coordinator) -> AttentionOut:
    session.flush()
    (item,) = attention.list_open(session=session, actor=coordinator).items
    return item


def _count(session) -> int:
    session.flush()
    return session.scalar(select(func.count()).select_from(AttentionItem))


def test_an_entry_holds_what_it_was_raised_with_and_is_audited(session):
    today = date.today()
    attention.raise_item(
        session, kind="verification_request", raised_by="aminat", record_code="C-0001", case_id=CASE_ID
    )
    attention.raise_item(session, kind="duplicate", raised_by="zaur", record_code="K-0002", other_code="K-0001")
    assert _items(session) == [
        ("duplicate", today, "zaur", "K-0002", "K-0001", None, None, None),
        ("verification_request", today, "aminat", "C-0001", None, CASE_ID, None, None),
    ]
    assert _audit(session) == [
        ("aminat", "attention.verification_request", "C-0001", {}),
        ("zaur", "attention.duplicate", "K-0002", {"other": "K-0001"}),
    ]


def test_an_unknown_kind_is_refused_and_leaves_nothing(session):
    with pytest.raises(ValueError, match=r"^unknown attention kind duress_typo$"):
        attention.raise_item(session, kind="duress_typo", raised_by="zaur", record_code="K-0001")
    assert _count(session) == 0
    assert _audit(session) == []


def test_an_open_entry_for_the_same_thing_is_not_repeated_whoever_raises_it(session):
    attention.raise_item(session, kind="immediate_danger", raised_by="aminat", record_code="K-0001")
    attention.raise_item(session, kind="immediate_danger", raised_by="zaur", record_code="K-0001")
    attention.raise_item(session, kind="duplicate", raised_by="aminat", record_code="K-0002", other_code="K-0001")
    attention.raise_item(session, kind="duplicate", raised_by="zaur", record_code="K-0002", other_code="K-0001")
    assert [(kind, by, code, other) for kind, _, by, code, other, *_ in _items(session)] == [
        ("duplicate", "aminat", "K-0002", "K-0001"),
        ("immediate_danger", "aminat", "K-0001", None),
    ]
    assert [action for _, action, _, _ in _audit(session)] == ["attention.immediate_danger", "attention.duplicate"]


def test_an_entry_differing_in_kind_record_or_other_record_is_a_new_one(session):
    attention.raise_item(session, kind="immediate_danger", raised_by="aminat", record_code="K-0001")
    attention.raise_item(session, kind="known_bad", raised_by="aminat", record_code="K-0001")
    attention.raise_item(session, kind="immediate_danger", raised_by="aminat", record_code="K-0003")
    attention.raise_item(session, kind="duplicate", raised_by="aminat", record_code="K-0002", other_code="K-0001")
    attention.raise_item(session, kind="duplicate", raised_by="aminat", record_code="K-0002", other_code="K-0003")
    attention.raise_item(session, kind="duplicate", raised_by="aminat", record_code="K-0002")
    assert [(kind, code, other) for kind, _, _, code, other, *_ in _items(session)] == [
        ("duplicate", "K-0002", None),
        ("duplicate", "K-0002", "K-0001"),
        ("duplicate", "K-0002", "K-0003"),
        ("immediate_danger", "K-0001", None),
        ("immediate_danger", "K-0003", None),
        ("known_bad", "K-0001", None),
    ]


def test_an_entry_about_no_record_is_one_per_person_who_raised_it(session):
    attention.raise_item(session, kind="duress", raised_by="aminat")
    attention.raise_item(session, kind="duress", raised_by="zaur")
    attention.raise_item(session, kind="duress", raised_by="aminat")
    assert [(kind, by, code) for kind, _, by, code, *_ in _items(session)] == [
        ("duress", "aminat", None),
        ("duress", "zaur", None),
    ]
    assert _audit(session) == [("aminat", "attention.duress", None, {}), ("zaur", "attention.duress", None, {})]


def test_a_resolved_entry_does_not_swallow_a_new_one(session, factory):
    coordinator = factory.user("coordinator")
    attention.raise_item(session, kind="immediate_danger", raised_by="aminat", record_code="K-0001")
    attention.resolve(session=session, actor=coordinator, item_id=_only_open(session, coordinator).id)
    attention.raise_item(session, kind="immediate_danger", raised_by="aminat", record_code="K-0001")
    assert _count(session) == 2
    assert [i.record_code for i in attention.list_open(session=session, actor=coordinator).items] == ["K-0001"]


def test_the_open_count_leaves_resolved_entries_out(session, factory):
    coordinator = factory.user("coordinator")
    assert attention.open_count(session) == 0
    for code in ("K-0001", "K-0002", "K-0003"):
        attention.raise_item(session, kind="immediate_danger", raised_by="aminat", record_code=code)
    session.flush()
    assert attention.open_count(session) == 3
    first = attention.list_open(session=session, actor=coordinator).items[0]
    attention.resolve(session=session, actor=coordinator, item_id=first.id)
    session.flush()
    assert attention.open_count(session) == 2


def test_coordinators_see_open_entries_oldest_first_then_by_kind_and_record(session, factory):
    coordinator = factory.user("coordinator")
    today = date.today()
    for kind, code in (
        ("known_bad", "K-0002"),
        ("duplicate", "K-0009"),
        ("known_bad", "K-0001"),
        ("immediate_danger", "K-0008"),
    ):
        attention.raise_item(session, kind=kind, raised_by="aminat", record_code=code, other_code=None)
    attention.raise_item(session, kind="verification_request", raised_by="zaur", record_code="C-0001", case_id=CASE_ID)
    session.flush()
    session.execute(
        update(AttentionItem).where(AttentionItem.record_code == "K-0008").values(raised_on=today - timedelta(days=2))
    )
    listed = attention.list_open(session=session, actor=coordinator)
    assert listed.total == 5
    assert [(i.kind, i.raised_on, i.raised_by, i.record_code, i.other_code, i.case_id) for i in listed.items] == [
        ("immediate_danger", today - timedelta(days=2), "aminat", "K-0008", None, None),
        ("duplicate", today, "aminat", "K-0009", None, None),
        ("known_bad", today, "aminat", "K-0001", None, None),
        ("known_bad", today, "aminat", "K-0002", None, None),
        ("verification_request", today, "zaur", "C-0001", None, CASE_ID),
    ]
    ids = set(session.scalars(select(AttentionItem.id)))
    assert {i.id for i in listed.items} == ids


def test_a_duplicate_lists_the_record_it_matched(session, factory):
    coordinator = factory.user("coordinator")
    attention.raise_item(session, kind="duplicate", raised_by="aminat", record_code="K-0002", other_code="K-0001")
    item = _only_open(session, coordinator)
    assert item.model_dump(exclude={"id"}) == {
        "kind": "duplicate",
        "raised_on": date.today(),
        "raised_by": "aminat",
        "case_id": None,
        "record_code": "K-0002",
        "other_code": "K-0001",
    }


@pytest.mark.parametrize("role", ["caseworker", "admin"])
def test_only_a_coordinator_lists_or_resolves(session, factory, role):
    someone, coordinator = factory.user(role), factory.user("coordinator")
    attention.raise_item(session, kind="immediate_danger", raised_by="aminat", record_code="K-0001")
    item = _only_open(session, coordinator)
    with pytest.raises(Forbidden):
        attention.list_open(session=session, actor=someone)
    with pytest.raises(Forbidden):
        attention.resolve(session=session, actor=someone, item_id=item.id)
    assert attention.open_count(session) == 1


def test_resolving_stamps_the_day_and_coordinator_audits_and_cannot_be_repeated(session, factory):
    coordinator = factory.user("coordinator")
    attention.raise_item(session, kind="known_bad", raised_by="aminat", record_code="K-0001")
    item = _only_open(session, coordinator)
    attention.resolve(session=session, actor=coordinator, item_id=item.id)
    assert _items(session) == [
        ("known_bad", date.today(), "aminat", "K-0001", None, None, date.today(), coordinator.username)
    ]
    with pytest.raises(NotFound):
        attention.resolve(session=session, actor=coordinator, item_id=item.id)
    with pytest.raises(NotFound):
        attention.resolve(session=session, actor=coordinator, item_id=uuid.uuid4())
    assert _audit(session) == [
        ("aminat", "attention.known_bad", "K-0001", {}),
        (coordinator.username, "attention.resolve", "K-0001", {"kind": "known_bad"}),
    ]


def test_a_case_whose_cause_went_away_closes_only_its_open_entries_of_that_kind(session, factory):
    coordinator = factory.user("coordinator")
    other_case = uuid.UUID("fedcba9876543210fedcba9876543210")
    attention.raise_item(
        session, kind="verification_request", raised_by="aminat", record_code="C-0001", case_id=CASE_ID
    )
    attention.raise_item(session, kind="immediate_danger", raised_by="aminat", record_code="C-0001", case_id=CASE_ID)
    attention.raise_item(
        session, kind="verification_request", raised_by="aminat", record_code="C-0002", case_id=other_case
    )
    session.flush()
    attention.resolve_for_case(session, case_id=CASE_ID, kind="verification_request", by="zaur")
    today = date.today()
    assert [(kind, code, on, by) for kind, _, _, code, _, _, on, by in _items(session)] == [
        ("immediate_danger", "C-0001", None, None),
        ("verification_request", "C-0001", today, "zaur"),
        ("verification_request", "C-0002", None, None),
    ]
    assert [
        code for code in (i.record_code for i in attention.list_open(session=session, actor=coordinator).items)
    ] == [
        "C-0001",
        "C-0002",
    ]
    # No audit of its own: the caller's action (the verification) is the audited one.
    assert [action for _, action, _, _ in _audit(session)] == [
        "attention.verification_request",
        "attention.immediate_danger",
        "attention.verification_request",
    ]


def test_closing_for_a_case_leaves_an_entry_already_resolved_as_it_was(session, factory):
    coordinator = factory.user("coordinator")
    attention.raise_item(
        session, kind="verification_request", raised_by="aminat", record_code="C-0001", case_id=CASE_ID
    )
    item = _only_open(session, coordinator)
    attention.resolve(session=session, actor=coordinator, item_id=item.id)
    session.flush()
    attention.resolve_for_case(session, case_id=CASE_ID, kind="verification_request", by="zaur")
    assert [by for *_, by in _items(session)] == [coordinator.username]


def test_an_entry_closed_for_its_case_in_the_same_transaction_does_not_swallow_a_new_one(session):
    # resolve_for_case changes ORM objects and writes no audit (so flushes nothing): raise_item must write
    # the closing before its insert meets the rule of one open entry per thing.
    attention.raise_item(
        session, kind="verification_request", raised_by="aminat", record_code="C-0001", case_id=CASE_ID
    )
    session.flush()
    attention.resolve_for_case(session, case_id=CASE_ID, kind="verification_request", by="zaur")
    attention.raise_item(
        session, kind="verification_request", raised_by="aminat", record_code="C-0001", case_id=CASE_ID
    )
    today = date.today()
    entries = [(kind, by, code, on, resolver) for kind, _, by, code, _, _, on, resolver in _items(session)]
    assert sorted(entries, key=lambda e: e[3] is not None) == [
        ("verification_request", "aminat", "C-0001", None, None),
        ("verification_request", "aminat", "C-0001", today, "zaur"),
    ]
