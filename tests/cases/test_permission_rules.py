"""Each rule of app/cases/permissions.py against its written-out answer, role by role and limit by limit.

The expected answers below are the table in the module's docstring typed out again, not computed from
the functions under test.
"""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.auth.models import User
from app.cases import permissions
from app.cases.models import Case
from app.contacts.models import Contact
from app.crypto import service as crypto
from app.errors import Forbidden, TooManyRequests

ROLES = ("caseworker", "coordinator", "admin", "analyst")


def _user(role: str) -> User:
    return User(id=uuid.uuid4(), username=f"{role}-x", role=role)


def _case(*, assigned: User | None, opener: User | None = None) -> Case:
    return Case(
        id=uuid.uuid4(),
        assigned_to_id=assigned.id if assigned else None,
        opened_by_id=(opener or User(id=uuid.uuid4())).id,
    )


@pytest.mark.parametrize(
    ("role", "contacts", "cases"),
    [
        ("caseworker", True, True),
        ("coordinator", False, True),
        ("admin", True, False),
        ("analyst", False, False),
    ],
)
def test_which_roles_touch_contacts_and_cases(role: str, contacts: bool, cases: bool) -> None:
    user = _user(role)
    for check, allowed in ((permissions.require_contact_access, contacts), (permissions.require_case_access, cases)):
        if allowed:
            check(user)
        else:
            with pytest.raises(Forbidden):
                check(user)
    assert permissions.may_decrypt_contact(user) is (role == "caseworker")


# (role, assigned to the user, opened by the user) -> (see, decrypt, transition, verify)
CASE_RULES = {
    ("caseworker", True, False): (True, True, True, True),
    ("caseworker", True, True): (True, True, True, False),
    ("caseworker", False, False): (False, False, False, False),
    ("caseworker", False, True): (False, False, False, False),
    ("coordinator", False, False): (True, False, True, True),
    ("coordinator", True, True): (True, False, True, True),
    ("admin", True, True): (False, False, False, False),
    ("admin", False, False): (False, False, False, False),
    ("analyst", True, True): (False, False, False, False),
    ("analyst", False, False): (False, False, False, False),
}


@pytest.mark.parametrize(("situation", "expected"), list(CASE_RULES.items()), ids=str)
def test_each_case_rule_for_one_loaded_case(situation: tuple[str, bool, bool], expected: tuple[bool, ...]) -> None:
    role, assigned, opener = situation
    user = _user(role)
    case = _case(assigned=user if assigned else _user("caseworker"), opener=user if opener else None)
    got = (
        permissions.can_see_case(user, case),
        permissions.may_decrypt_case(user, case),
        permissions.may_transition(user, case),
        permissions.may_verify(user, case),
    )
    assert got == expected


def test_an_unassigned_case_is_nobodys_caseworker_case() -> None:
    worker = _user("caseworker")
    case = _case(assigned=None, opener=worker)
    assert not permissions.can_see_case(worker, case)
    assert not permissions.may_decrypt_case(worker, case)
    assert not permissions.may_transition(worker, case)
    assert not permissions.may_verify(worker, case)


def test_which_contacts_each_role_sees(session, factory) -> None:
    owner, other = factory.user("caseworker"), factory.user("caseworker")
    coordinator = factory.user("coordinator")
    own = factory.contact(owner)
    assigned = factory.case(owner)  # recorded by owner, then handed to other
    from app.cases import service as case_service

    case_service.assign(session=session, actor=coordinator, case_id=assigned.id, username=other.username)
    theirs = factory.contact(other)
    everything = {own.id, assigned.contact_id, theirs.id}

    def visible(user: User) -> set[uuid.UUID]:
        found = set(session.scalars(select(Contact.id).where(permissions.contacts_visible_to(user))))
        return found & everything

    assert visible(owner) == {own.id, assigned.contact_id}
    assert visible(other) == {assigned.contact_id, theirs.id}
    assert visible(factory.user("admin")) == everything
    assert visible(coordinator) == set()
    assert visible(factory.user("analyst")) == set()


def test_which_cases_each_role_lists(session, factory) -> None:
    owner, other = factory.user("caseworker"), factory.user("caseworker")
    mine, theirs = factory.case(owner), factory.case(other)
    both = {mine.id, theirs.id}

    def visible(user: User) -> set[uuid.UUID]:
        return set(session.scalars(select(Case.id).where(permissions.cases_visible_to(user)))) & both

    assert visible(owner) == {mine.id}
    assert visible(other) == {theirs.id}
    assert visible(factory.user("coordinator")) == both
    assert visible(factory.user("admin")) == set()
    assert visible(factory.user("analyst")) == set()


def _limit(session, **limits: int) -> None:
    settings = crypto.settings_of(session).model_copy(update=limits)
    crypto.bind(session, settings=settings, keyring=crypto.keyring_of(session))


def _entries(session, username: str) -> list[tuple[str, str | None, dict[str, object]]]:
    session.flush()
    rows = session.execute(
        select(AuditEntry.action, AuditEntry.target, AuditEntry.detail)
        .where(AuditEntry.actor == username)
        .order_by(AuditEntry.seq)
    ).all()
    return [(action, target, json.loads(detail)) for action, target, detail in rows]


def test_reads_up_to_the_limit_pass_and_one_more_is_refused_with_its_alarm(session, factory) -> None:
    _limit(session, decrypt_alarm_per_hour=3)
    reader = factory.user("caseworker")
    permissions.record_decrypted_reads(session, user=reader, action="contact.lookup", targets=[])
    permissions.record_decrypted_reads(session, user=reader, action="contact.lookup", targets=["K-1", "K-2"])
    permissions.record_decrypted_read(session, user=reader, action="case.read", target="C-3")
    with pytest.raises(permissions.Alarmed) as refused:
        permissions.record_decrypted_read(session, user=reader, action="contact.read", target="K-4")
    assert isinstance(refused.value, TooManyRequests)
    assert str(refused.value) == "too many decrypted reads in the last hour; this has been recorded and reported"
    alarm = {"actor": reader.username, "action": "alarm.bulk_read", "target": "K-4", "detail": {"limit_per_hour": 3}}
    assert refused.value.alarm == alarm
    assert _entries(session, reader.username)[-4:] == [
        ("contact.lookup", "K-1", {}),
        ("contact.lookup", "K-2", {}),
        ("case.read", "C-3", {}),
        ("alarm.bulk_read", "K-4", {"limit_per_hour": 3}),
    ]


def test_a_batch_that_would_cross_the_limit_is_refused_whole(session, factory) -> None:
    _limit(session, decrypt_alarm_per_hour=3)
    reader = factory.user("caseworker")
    permissions.record_decrypted_read(session, user=reader, action="contact.read", target="K-1")
    before = len(_entries(session, reader.username))
    with pytest.raises(permissions.Alarmed) as refused:
        permissions.record_decrypted_reads(session, user=reader, action="contact.lookup", targets=["K-2", "K-3", "K-4"])
    assert refused.value.alarm["target"] == "K-2"
    assert _entries(session, reader.username)[before:] == [("alarm.bulk_read", "K-2", {"limit_per_hour": 3})]


def test_only_decrypted_reads_of_the_same_person_count(session, factory) -> None:
    _limit(session, decrypt_alarm_per_hour=2)
    reader, other = factory.user("caseworker"), factory.user("caseworker")
    from app.audit import service as audit

    for action in ("contact.record", "case.transition", "case.list"):
        audit.record(session, actor=reader.username, action=action, target="K-0")
    for action in permissions.DECRYPTED_READS:
        audit.record(session, actor=other.username, action=action, target="K-0")
    permissions.record_decrypted_reads(session, user=reader, action="contact.read", targets=["K-1", "K-2"])
    # Each kind of decrypted read counts towards the same limit.
    for action in permissions.DECRYPTED_READS:
        fresh = factory.user("caseworker")
        audit.record(session, actor=fresh.username, action=action, target="K-0")
        permissions.record_decrypted_read(session, user=fresh, action="contact.read", target="K-1")
        with pytest.raises(permissions.Alarmed):
            permissions.record_decrypted_read(session, user=fresh, action="contact.read", target="K-2")


def test_intake_is_refused_at_the_limit_with_its_alarm(session, factory) -> None:
    _limit(session, intake_per_hour=2)
    worker = factory.user("caseworker")
    factory.contact(worker)
    permissions.check_intake_rate(session, user=worker)  # one recorded, a second may follow
    factory.contact(worker)
    with pytest.raises(permissions.Alarmed) as refused:
        permissions.check_intake_rate(session, user=worker)
    assert str(refused.value) == "too many contacts recorded in the last hour; this has been recorded and reported"
    alarm = {"actor": worker.username, "action": "alarm.intake_rate", "target": None, "detail": {"limit_per_hour": 2}}
    assert refused.value.alarm == alarm
    assert _entries(session, worker.username)[-1] == ("alarm.intake_rate", None, {"limit_per_hour": 2})
    # Reads do not count as intake.
    reader = factory.user("caseworker")
    permissions.record_decrypted_reads(session, user=reader, action="contact.read", targets=["K-1", "K-2", "K-3"])
    permissions.check_intake_rate(session, user=reader)


def test_a_kept_alarm_is_written_again_as_it_was(session, factory) -> None:
    _limit(session, intake_per_hour=1)
    worker = factory.user("caseworker")
    factory.contact(worker)
    with pytest.raises(permissions.Alarmed) as refused:
        permissions.check_intake_rate(session, user=worker)
    permissions.keep_alarm(session, refused.value)
    entries = _entries(session, worker.username)
    assert entries[-2:] == [("alarm.intake_rate", None, {"limit_per_hour": 1})] * 2


def test_the_last_hour_is_counted_in_utc_whatever_the_local_zone(session, factory, tokyo_clock) -> None:
    _limit(session, decrypt_alarm_per_hour=2)
    reader = factory.user("caseworker")
    permissions.record_decrypted_reads(session, user=reader, action="contact.read", targets=["K-1", "K-2"])
    with pytest.raises(permissions.Alarmed):
        permissions.record_decrypted_read(session, user=reader, action="contact.read", target="K-3")
