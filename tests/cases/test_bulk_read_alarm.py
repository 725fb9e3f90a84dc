"""The bulk-reading alarm counts every decrypted read of the last hour, of cases as much as of contacts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from app.audit.models import AuditEntry
from app.cases import service as case_service
from app.contacts import service as contact_service
from app.crypto import service as crypto
from app.errors import TooManyRequests

LIMIT = 3


@pytest.fixture
def low_limit(session):
    settings = crypto.settings_of(session).model_copy(update={"decrypt_alarm_per_hour": LIMIT})
    crypto.bind(session, settings=settings, keyring=crypto.keyring_of(session))


def _alarms(session, username: str) -> int:
    return session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "alarm.bulk_read", AuditEntry.actor == username)
    )


def test_case_reads_alone_raise_the_alarm(session, factory, low_limit) -> None:
    reader = factory.user("caseworker")
    cases = [factory.case(reader, full_name=f"Person {i}") for i in range(LIMIT + 1)]
    for made in cases[:LIMIT]:
        assert case_service.read_case(session=session, actor=reader, case_id=made.id).redacted is False
    with pytest.raises(TooManyRequests) as err:
        case_service.read_case(session=session, actor=reader, case_id=cases[LIMIT].id)
    assert err.value.status_code == 429
    assert _alarms(session, reader.username) == 1
    reads = session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "case.read", AuditEntry.actor == reader.username)
    )
    assert reads == LIMIT  # the refused read is not recorded as a read


def test_contact_and_case_reads_count_together(session, factory, low_limit) -> None:
    reader = factory.user("caseworker")
    made = factory.case(reader)
    contact_service.read_contact(session=session, actor=reader, contact_id=made.contact_id)
    contact_service.read_contact(session=session, actor=reader, contact_id=made.contact_id)
    case_service.read_case(session=session, actor=reader, case_id=made.id)
    with pytest.raises(TooManyRequests):
        contact_service.read_contact(session=session, actor=reader, contact_id=made.contact_id)
    with pytest.raises(TooManyRequests):
        case_service.read_case(session=session, actor=reader, case_id=made.id)
    assert _alarms(session, reader.username) == 2


def test_reads_older_than_an_hour_no_longer_count(session, factory, low_limit) -> None:
    reader = factory.user("caseworker")
    made = factory.case(reader)
    for _ in range(LIMIT):
        case_service.read_case(session=session, actor=reader, case_id=made.id)
    session.flush()
    # Move those reads back in time (the chain breaks, which this rolled-back test does not care about).
    session.execute(
        update(AuditEntry)
        .where(AuditEntry.action == "case.read", AuditEntry.actor == reader.username)
        .values(at=datetime.now(UTC) - timedelta(hours=1, minutes=1))
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    assert case_service.read_case(session=session, actor=reader, case_id=made.id).redacted is False
    assert _alarms(session, reader.username) == 0


def test_other_actions_and_other_people_do_not_count(session, factory, low_limit) -> None:
    reader, other = factory.user("caseworker"), factory.user("caseworker")
    mine, theirs = factory.case(reader), factory.case(other)
    for _ in range(LIMIT):
        contact_service.read_contact(session=session, actor=other, contact_id=theirs.contact_id)
    # Redacted views and list pages are not decrypted reads.
    for _ in range(LIMIT + 2):
        case_service.list_cases(session=session, actor=reader)
    for _ in range(LIMIT):
        assert case_service.read_case(session=session, actor=reader, case_id=mine.id).redacted is False
    assert _alarms(session, reader.username) == 0
