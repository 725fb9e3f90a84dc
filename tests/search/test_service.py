"""Search through the service: exactly which records a query finds, in which order, how many records it opens
to compare and which, and that a record the caseworker may not read is neither found nor opened."""

from __future__ import annotations

import itertools
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.audit.models import AuditEntry
from app.auth.models import User
from app.cases import service as case_service
from app.cases.models import Case
from app.contacts import service as contact_service
from app.contacts.models import Contact
from app.crypto import service as crypto
from app.search import service as search_service
from app.search.schemas import Hit, SearchResult
from tests.factories import Factory


def _day(days_ago: int) -> date:
    return date.today() - timedelta(days=days_ago)


def _search(session: Session, actor: User, query: str, *, alias: bool = False) -> SearchResult:
    return search_service.search(session=session, actor=actor, query=query, alias=alias)


def _lookups(session: Session, actor: User) -> list[str | None]:
    """The targets of the ``contact.lookup`` entries of ``actor``, oldest first."""
    return list(
        session.scalars(
            select(AuditEntry.target)
            .where(AuditEntry.actor == actor.username, AuditEntry.action == "contact.lookup")
            .order_by(AuditEntry.seq)
        )
    )


def _opened_by(session: Session, actor: User, query: str, *, alias: bool = False) -> tuple[SearchResult, list[str]]:
    """The search's result and the codes it audited as opened, sorted."""
    before = len(_lookups(session, actor))
    result = _search(session, actor, query, alias=alias)
    return result, sorted(str(target) for target in _lookups(session, actor)[before:])


def test_a_code_finds_exactly_that_contact_or_case_with_its_day(session: Session, factory: Factory) -> None:
    worker = factory.user("caseworker")
    first = factory.contact(worker, received_on=_day(9))
    second = factory.contact(worker, received_on=_day(5))
    case = factory.case(worker, contact_id=second.id, opened_on=_day(3))
    later = factory.case(worker, opened_on=_day(2))

    assert _search(session, worker, first.code).hits == [
        Hit(kind="contact", id=first.id, code=first.code, on=_day(9), matched="code")
    ]
    assert _search(session, worker, second.code).hits == [
        Hit(kind="contact", id=second.id, code=second.code, on=_day(5), matched="code")
    ]
    assert _search(session, worker, case.code).hits == [
        Hit(kind="case", id=case.id, code=case.code, on=_day(3), matched="code")
    ]
    typed = _search(session, worker, f"  {later.code.lower()} ")
    assert typed.query == later.code.lower()
    assert typed.hits == [Hit(kind="case", id=later.id, code=later.code, on=_day(2), matched="code")]
    assert _search(session, worker, "H-0000-00" if first.code != "H-0000-00" else "H-0000-01").hits == []


def test_a_code_finds_only_what_the_caseworker_may_read(session: Session, factory: Factory) -> None:
    mine, theirs = factory.user("caseworker"), factory.user("caseworker")
    factory.contact(mine, received_on=_day(4))
    factory.case(mine, opened_on=_day(3))  # records of their own, so a search that ignored the code would find one
    their_contact = factory.contact(theirs, received_on=_day(6))
    their_case = factory.case(theirs, opened_on=_day(5))
    handed = factory.case(theirs, opened_on=_day(2))
    case_service.assign(session=session, actor=factory.user("coordinator"), case_id=handed.id, username=mine.username)
    handed_contact = session.execute(select(Contact.code, Contact.received_on).where(Contact.id == handed.contact_id))
    code, received = handed_contact.one()

    result, opened = _opened_by(session, mine, their_contact.code)
    assert (result.hits, opened) == ([], [])
    result, opened = _opened_by(session, mine, their_case.code)
    assert (result.hits, opened) == ([], [])
    # A case handed to them, and the contact it came from, are theirs to read now.
    assert _search(session, mine, handed.code).hits == [
        Hit(kind="case", id=handed.id, code=handed.code, on=_day(2), matched="code")
    ]
    assert _search(session, mine, code).hits == [
        Hit(kind="contact", id=handed.contact_id, code=code, on=received, matched="code")
    ]


def test_a_handle_finds_contacts_then_cases_each_once_and_opens_only_own_candidates(
    session: Session, factory: Factory
) -> None:
    mine, theirs = factory.user("caseworker"), factory.user("caseworker")
    contact = factory.contact(mine, handle="+7 928 555-01-47", received_on=_day(8))
    case = factory.case(mine, opened_on=_day(6), handle="8 (928) 555 01 47")
    factory.contact(mine, handle="@someone_else", received_on=_day(7))
    their_contact = factory.contact(theirs, handle="89285550147", received_on=_day(5))
    their_case = factory.case(theirs, opened_on=_day(4), handle="+79285550147")

    result, opened = _opened_by(session, mine, "89285550147")
    assert result.hits == [
        Hit(kind="contact", id=contact.id, code=contact.code, on=_day(8), matched="handle"),
        Hit(kind="case", id=case.id, code=case.code, on=_day(6), matched="handle"),
    ]
    assert opened == sorted([contact.code, case.code])
    assert their_contact.code not in opened and their_case.code not in opened

    # The other caseworker finds their own two, and only those.
    result, opened = _opened_by(session, theirs, "+7 928 555 01 47")
    assert [(h.kind, h.code) for h in result.hits] == [("contact", their_contact.code), ("case", their_case.code)]
    assert opened == sorted([their_contact.code, their_case.code])


def test_a_record_stamped_shredded_is_not_opened_even_with_its_ciphertext_left(
    session: Session, factory: Factory
) -> None:
    worker = factory.user("caseworker")
    kept = factory.contact(worker, alias="Aslan", handle="@aslan_k", received_on=_day(5))
    stamped = factory.contact(worker, alias="Aslan B.", handle="@aslan_k", received_on=_day(4))
    case = factory.case(worker, opened_on=_day(3), handle="@aslan_k")
    kept_case = factory.case(worker, opened_on=_day(2), handle="@aslan_k")
    # A shred destroys the key and the index entries too; the stamp alone must already keep the record out.
    session.execute(update(Contact).where(Contact.id == stamped.id).values(shredded_on=_day(1)))
    session.execute(update(Case).where(Case.id == case.id).values(shredded_on=_day(1)))

    result, opened = _opened_by(session, worker, "@ASLAN_K")
    assert [(h.kind, h.code) for h in result.hits] == [("contact", kept.code), ("case", kept_case.code)]
    assert opened == sorted([kept.code, kept_case.code])
    result, opened = _opened_by(session, worker, "aslan", alias=True)
    assert [h.code for h in result.hits] == [kept.code]
    assert opened == [kept.code]


def test_alias_hits_come_newest_first_then_by_code(session: Session, factory: Factory) -> None:
    worker = factory.user("caseworker")
    old = factory.contact(worker, alias="Madina A.", received_on=_day(20))
    same_day = [factory.contact(worker, alias=f"madina {n}", received_on=_day(4)) for n in range(3)]
    # Codes whose order is neither the order of recording nor its reverse.
    for contact, code in zip(same_day, ("H-0002-AA", "H-0003-AA", "H-0001-AA"), strict=True):
        session.execute(update(Contact).where(Contact.id == contact.id).values(code=code))
    newest = factory.contact(worker, alias="MADINA", received_on=_day(1))
    zarema = factory.contact(worker, alias="Zarema", received_on=_day(2))
    factory.contact(worker, received_on=_day(0))  # no alias: nothing to open

    result, opened = _opened_by(session, worker, "  MaDiNa ", alias=True)
    assert result.query == "MaDiNa"
    assert result.hits[0] == Hit(
        kind="contact", id=newest.id, code=newest.code, on=_day(1), matched="alias", alias="MADINA"
    )
    assert [(h.code, h.on, h.alias) for h in result.hits] == [
        (newest.code, _day(1), "MADINA"),
        ("H-0001-AA", _day(4), "madina 2"),
        ("H-0002-AA", _day(4), "madina 0"),
        ("H-0003-AA", _day(4), "madina 1"),
        (old.code, _day(20), "Madina A."),
    ]
    assert opened == sorted([old.code, newest.code, zarema.code, "H-0001-AA", "H-0002-AA", "H-0003-AA"])


def test_alias_search_opens_only_the_newest_hundred_readable_aliases(session: Session, factory: Factory) -> None:
    worker, other = factory.user("caseworker"), factory.user("caseworker")
    oldest = factory.contact(worker, alias="Aslan", received_on=_day(30))
    last_in_scope = factory.contact(worker, alias="Aslan B.", received_on=_day(29))
    newer = [factory.contact(worker, alias=f"Zarema {n}", received_on=_day(10)) for n in range(99)]
    # Newer still, but none of these is searched, so none takes a place in the hundred.
    for _ in range(3):
        factory.contact(worker, received_on=_day(1))
    factory.contact(other, alias="Aslan C.", received_on=_day(1))

    result, opened = _opened_by(session, worker, "aslan", alias=True)
    assert result.alias_scope == 100
    assert [h.code for h in result.hits] == [last_in_scope.code]
    assert len(opened) == 100
    assert opened == sorted([last_in_scope.code, *(c.code for c in newer)])
    assert oldest.code not in opened


def test_a_query_is_trimmed_and_cut_and_an_empty_one_opens_nothing(session: Session, factory: Factory) -> None:
    worker = factory.user("caseworker")
    factory.contact(worker, alias="Zelimkhan", handle="@zelim", received_on=_day(3))
    for query in ("", "   "):
        for alias in (False, True):
            result, opened = _opened_by(session, worker, query, alias=alias)
            assert (result.query, result.hits, opened) == ("", [], [])
    long = "x" * 199 + "yz" + "w" * 10
    assert _search(session, worker, f"  {long}").query == "x" * 199 + "y"


def test_a_name_is_looked_up_by_alias_only_when_asked(session: Session, factory: Factory) -> None:
    worker = factory.user("caseworker")
    zelim = factory.contact(worker, alias="Zelimkhan", received_on=_day(3))
    before = len(_lookups(session, worker))
    unasked = search_service.search(session=session, actor=worker, query="zelim")
    assert (unasked.hits, _lookups(session, worker)[before:]) == ([], [])
    result, opened = _opened_by(session, worker, "zelim", alias=True)
    assert ([h.code for h in result.hits], opened) == ([zelim.code], [zelim.code])


def test_handle_hits_come_newest_first_then_by_code(
    session: Session, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ids rising in the order of recording: without an order of its own the search would give the rows in
    # the order they were written or of their ids, oldest first here, and not the order asked for.
    ids = (uuid.UUID(int=(0xA5 << 120) + n) for n in itertools.count())
    monkeypatch.setattr(crypto, "new_subject_id", lambda: next(ids))
    worker = factory.user("caseworker")
    oldest = factory.contact(worker, handle="@twin_k", received_on=_day(9))
    same_day = [factory.contact(worker, handle="@TWIN_K", received_on=_day(3)) for _ in range(2)]
    for contact, code in zip(same_day, ("H-0002-BB", "H-0001-BB"), strict=True):
        session.execute(update(Contact).where(Contact.id == contact.id).values(code=code))
    newest = factory.contact(worker, handle="twin_k", received_on=_day(1))
    older_case = factory.case(worker, opened_on=_day(6), handle="@twin_k")
    newer_case = factory.case(worker, opened_on=_day(2), handle="@twin_k")
    # Two cases of one day, opened in the reverse order of their codes.
    real = contact_service.new_code
    codes = iter(("C-0002-BB", "C-0001-BB"))
    monkeypatch.setattr(contact_service, "new_code", lambda prefix: next(codes) if prefix == "C" else real(prefix))
    for _ in range(2):
        factory.case(worker, opened_on=_day(4), handle="@twin_k")
    monkeypatch.setattr(contact_service, "new_code", real)

    result = _search(session, worker, "@twin_k")
    assert [(h.kind, h.code, h.on) for h in result.hits] == [
        ("contact", newest.code, _day(1)),
        ("contact", "H-0001-BB", _day(3)),
        ("contact", "H-0002-BB", _day(3)),
        ("contact", oldest.code, _day(9)),
        ("case", newer_case.code, _day(2)),
        ("case", "C-0001-BB", _day(4)),
        ("case", "C-0002-BB", _day(4)),
        ("case", older_case.code, _day(6)),
    ]
