"""The need-to-know matrix of app/cases/permissions.py, role by role, and the bulk-reading alarm."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.cases import service as case_service
from app.contacts import service as contact_service
from app.crypto import service as crypto
from app.errors import Forbidden, NotFound, TooManyRequests


def test_matrix_for_contacts_and_cases(session, factory):
    owner, other = factory.user("caseworker"), factory.user("caseworker")
    coordinator, admin, analyst = factory.user("coordinator"), factory.user("admin"), factory.user("analyst")
    made = factory.case(owner, full_name="Canary 404")
    contact_id = made.contact_id
    # caseworker: own contact and assigned case, decrypted; someone else's, 404.
    assert contact_service.read_contact(session=session, actor=owner, contact_id=contact_id).redacted is False
    assert case_service.read_case(session=session, actor=owner, case_id=made.id).full_name == "Canary 404"
    for read, key in ((contact_service.read_contact, "contact_id"), (case_service.read_case, "case_id")):
        with pytest.raises(NotFound):
            read(session=session, actor=other, **{key: contact_id if key == "contact_id" else made.id})
    # Assigning the case to the other caseworker opens the case and its contact to them.
    case_service.assign(session=session, actor=coordinator, case_id=made.id, username=other.username)
    assert case_service.read_case(session=session, actor=other, case_id=made.id).redacted is False
    assert contact_service.read_contact(session=session, actor=other, contact_id=contact_id).redacted is False
    with pytest.raises(NotFound):
        case_service.read_case(session=session, actor=owner, case_id=made.id)
    # coordinator: cases redacted, no contacts at all.
    view = case_service.read_case(session=session, actor=coordinator, case_id=made.id)
    assert view.redacted is True and view.full_name is None
    with pytest.raises(Forbidden):
        contact_service.read_contact(session=session, actor=coordinator, contact_id=contact_id)
    # admin: contacts without decrypted fields, no cases; analyst: nothing.
    assert contact_service.read_contact(session=session, actor=admin, contact_id=contact_id).redacted is True
    for user in (admin, analyst):
        with pytest.raises(Forbidden):
            case_service.read_case(session=session, actor=user, case_id=made.id)
    with pytest.raises(Forbidden):
        contact_service.list_contacts(session=session, actor=analyst)


def test_bulk_reading_raises_an_alarm_and_is_refused(session, factory):
    settings = crypto.settings_of(session).model_copy(update={"decrypt_alarm_per_hour": 3})
    crypto.bind(session, settings=settings, keyring=crypto.keyring_of(session))
    reader = factory.user("caseworker")
    contacts = [factory.contact(reader) for _ in range(4)]
    for contact in contacts[:3]:
        contact_service.read_contact(session=session, actor=reader, contact_id=contact.id)
    with pytest.raises(TooManyRequests) as err:
        contact_service.read_contact(session=session, actor=reader, contact_id=contacts[3].id)
    assert err.value.status_code == 429 and err.value.keep_changes is True
    alarms = (
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "alarm.bulk_read", AuditEntry.actor == reader.username)
    )
    assert session.scalar(alarms) == 1
    # Another user is not affected by this one's reading.
    fresh = factory.user("caseworker")
    mine = factory.contact(fresh)
    assert contact_service.read_contact(session=session, actor=fresh, contact_id=mine.id).redacted is False


def test_the_sql_rule_and_the_loaded_row_rule_agree(session, factory):
    from app.auth.models import User
    from app.cases import permissions
    from app.cases.models import Case

    workers = [factory.user("caseworker") for _ in range(2)]
    coordinator = factory.user("coordinator")
    for worker in workers:
        factory.case(worker)
    case_service.assign(
        session=session,
        actor=coordinator,
        case_id=factory.case(workers[0]).id,
        username=workers[1].username,
    )
    everyone = [*workers, coordinator, factory.user("admin"), factory.user("analyst")]
    cases = session.scalars(select(Case)).all()
    for user in everyone:
        assert isinstance(user, User)
        by_sql = set(session.scalars(select(Case.id).where(permissions.cases_visible_to(user))))
        by_row = {c.id for c in cases if permissions.can_see_case(user, c)}
        assert by_sql == by_row
    assert len(set(session.scalars(select(Case.id).where(permissions.cases_visible_to(workers[1]))))) == 2
