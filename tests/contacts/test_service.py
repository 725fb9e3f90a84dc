"""Contacts through the service: intake, sealing, duplicate and known-bad checks, outcomes."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import delete, func, select

from app.audit.models import AuditEntry
from app.contacts import flagged
from app.contacts import service as contact_service
from app.contacts.models import Contact, FlaggedHandle
from app.contacts.schemas import ContactIn, FlaggedHandleIn
from app.crypto import cipher
from app.crypto import service as crypto
from app.crypto.models import DataKey
from app.errors import Conflict, Forbidden, Invalid, NotFound


def _audit(session, action):
    return session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action))


def test_record_contact_seals_fields_and_gives_a_random_code(session, factory):
    worker = factory.user("caseworker")
    made = factory.contact(worker, alias="Canary Alias 7781", handle="@canary_handle_7781", notes="canary note 7781")
    row = session.get(Contact, made.id)
    assert row is not None
    assert made.code.startswith("H-") and len(made.code) == 9
    for blob in (row.alias_ct, row.handle_ct, row.notes_ct):
        assert blob is not None and b"7781" not in blob
    detail = contact_service.read_contact(session=session, actor=worker, contact_id=made.id)
    assert (detail.alias, detail.handle, detail.notes) == (
        "Canary Alias 7781",
        "@canary_handle_7781",
        "canary note 7781",
    )
    assert detail.redacted is False


def test_codes_are_not_a_sequence(session, factory):
    worker = factory.user("caseworker")
    codes = [factory.contact(worker).code for _ in range(5)]
    assert len(set(codes)) == 5
    assert codes != sorted(codes) or codes != sorted(codes, reverse=True)


def test_duplicate_phone_written_differently_is_flagged_and_a_different_one_is_not(session, factory):
    worker = factory.user("caseworker")
    first = factory.contact(worker, handle="+7 912 345-67-89")
    again = factory.contact(worker, handle="89123456789")
    other = factory.contact(worker, handle="+7 912 345-67-80")
    assert first.possible_duplicate is False
    assert again.possible_duplicate is True
    assert other.possible_duplicate is False


def test_known_bad_handle_is_flagged_audited_and_never_stored_plain(session, factory):
    coordinator = factory.user("coordinator")
    worker = factory.user("caseworker")
    entry = flagged.add_flagged_handle(
        session=session, actor=coordinator, data=FlaggedHandleIn(handle="@Entrapment_Bait_9931", reason="seen in raids")
    )
    before = _audit(session, "contact.flagged_handle")
    hit = factory.contact(worker, handle="entrapment_bait_9931")
    clean = factory.contact(worker, handle="@someone_else_9931")
    assert hit.flagged_handle is True
    assert clean.flagged_handle is False
    assert _audit(session, "contact.flagged_handle") == before + 1
    stored = session.execute(select(FlaggedHandle.handle_ct, FlaggedHandle.reason_ct)).all()
    assert stored
    for handle_ct, reason_ct in stored:
        assert b"ntrapment" not in handle_ct.lower() and b"9931" not in handle_ct
        assert b"raids" not in (reason_ct or b"")
    listed = flagged.list_flagged_handles(session=session, actor=coordinator)
    assert [i.id for i in listed.items] == [entry.id]
    assert "9931" not in listed.model_dump_json()
    flagged.remove_flagged_handle(session=session, actor=coordinator, entry_id=entry.id)
    assert factory.contact(worker, handle="entrapment_bait_9931").flagged_handle is False


def test_only_coordinators_keep_the_known_bad_list(session, factory):
    worker = factory.user("caseworker")
    with pytest.raises(Forbidden):
        flagged.add_flagged_handle(session=session, actor=worker, data=FlaggedHandleIn(handle="@x_y"))
    with pytest.raises(Forbidden):
        flagged.list_flagged_handles(session=session, actor=factory.user("admin"))


def test_region_and_future_date_are_refused_before_anything_is_written(session, factory):
    worker = factory.user("caseworker")
    count = session.scalar(select(func.count()).select_from(Contact))
    data = ContactIn(received_on=date.today(), channel="phone", region="atlantis", language="ru", risk="low")
    with pytest.raises(Invalid) as err:
        contact_service.record_contact(session=session, actor=worker, data=data)
    assert err.value.detail[0]["loc"] == ["body", "region"]
    data = ContactIn.model_construct(
        **{**data.model_dump(), "region": "dagestan", "received_on": date.today() + timedelta(days=1)}
    )
    with pytest.raises(Invalid):
        contact_service.record_contact(session=session, actor=worker, data=data)
    assert session.scalar(select(func.count()).select_from(Contact)) == count


def test_outcome_is_set_by_the_recorder_only(session, factory):
    worker, other = factory.user("caseworker"), factory.user("caseworker")
    made = factory.contact(worker)
    done = contact_service.set_outcome(session=session, actor=worker, contact_id=made.id, outcome="referred")
    assert done.outcome == "referred"
    with pytest.raises(NotFound):
        contact_service.set_outcome(session=session, actor=other, contact_id=made.id, outcome="info_only")
    with pytest.raises(Invalid):
        contact_service.set_outcome(session=session, actor=worker, contact_id=made.id, outcome="case_opened")
    case = factory.case(worker, contact_id=made.id)
    assert contact_service.contact_view(session=session, actor=worker, contact_id=made.id).outcome == "case_opened"
    with pytest.raises(Conflict):
        contact_service.set_outcome(session=session, actor=worker, contact_id=made.id, outcome="info_only")
    assert case.status == "new"


def test_a_repeat_caller_matches_once_even_with_two_data_keys_and_not_once_its_keys_are_gone(session, factory):
    worker = factory.user("caseworker")
    first = factory.contact(worker, handle="@twice_keyed_5512")
    # A second (newer) data key for the same subject, as re-encryption leaves behind.
    keyring = crypto.keyring_of(session)
    kek_id, wrapped = keyring.wrap_dek(cipher.new_key(), subject_id=first.id, key_id=7)
    session.add(DataKey(subject_id=first.id, key_id=7, kek_id=kek_id, wrapped=wrapped, created_on=date.today()))
    session.flush()
    found = flagged.handle_matches(
        session, model=Contact, table="contact", column=contact_service.INDEX_COLUMN, value="@TWICE_keyed_5512"
    )
    assert found == [first.id]
    # Keys destroyed but the index entry left behind: the candidate cannot be opened, so it is no match.
    session.execute(delete(DataKey).where(DataKey.subject_id == first.id))
    keyring.evict(first.id)
    session.expire_all()
    found = flagged.handle_matches(
        session, model=Contact, table="contact", column=contact_service.INDEX_COLUMN, value="@twice_keyed_5512"
    )
    assert found == []
