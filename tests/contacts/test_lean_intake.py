"""The intake path written through Core: every row it writes is sealed, indexed, audited and counted as
the ORM path wrote it; the code draw retries without a savepoint; the audit chain is locked at commit."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import psycopg
import pytest
from sqlalchemy import func, select

from app import bootstrap
from app.audit import seals
from app.audit import service as audit
from app.audit.models import AuditEntry
from app.auth.models import User
from app.contacts import service as contact_service
from app.contacts.models import Contact
from app.contacts.schemas import ContactIn
from app.crypto import blind_index, cipher
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.crypto.models import BlindIndexEntry, DataKey
from app.db import make_engine, unit_of_work
from app.errors import HelplineError
from app.stats import counters
from tests.conftest import make_settings
from tests.factories import Factory


def _intake(**fields: object) -> ContactIn:
    values: dict[str, object] = {
        "received_on": date.today(),
        "channel": "telegram",
        "region": "chechnya",
        "language": "RU",
        "risk": "high",
        "needs": ["shelter", "evacuation", "shelter"],
        "alias": "Lean Alias 5521",
        "handle": "+7 912 555-21-21",
        "notes": "lean note 5521",
    }
    values.update(fields)
    return ContactIn(**values)  # type: ignore[arg-type]


def test_the_core_path_writes_the_row_sealed_indexed_audited_and_counted(session, factory, keyring) -> None:
    worker = factory.user("caseworker")
    before = counters.stored_counts(session)
    made = contact_service.record_contact(session=session, actor=worker, data=_intake())
    session.flush()

    row = session.execute(select(Contact.__table__).where(Contact.id == made.id)).mappings().one()
    assert row["code"] == made.code and made.code.startswith("H-")
    assert (row["channel"], row["region"], row["language"], row["risk"]) == ("telegram", "chechnya", "ru", "high")
    assert row["needs"] == "evacuation,shelter"
    assert (row["outcome"], row["possible_duplicate"], row["flagged_handle"]) == (None, False, False)
    assert (row["recorded_by_id"], row["last_activity_on"], row["shredded_on"]) == (worker.id, date.today(), None)

    # Sealed under the contact's own wrapped key, bound to table, column and row (AAD).
    keys = session.execute(select(DataKey).where(DataKey.subject_id == made.id)).scalars().all()
    assert len(keys) == 1
    dek = keyring.unwrap_dek(keys[0].wrapped, subject_id=made.id, key_id=keys[0].key_id, kek_id=keys[0].kek_id)
    for name, plain in (("alias", "Lean Alias 5521"), ("handle", "+7 912 555-21-21"), ("notes", "lean note 5521")):
        blob = row[f"{name}_ct"]
        assert b"5521" not in blob
        opened = cipher.open_(blob, dek=dek, table="contact", column=name, row_id=made.id, subject_id=made.id)
        assert opened == plain
        with pytest.raises(crypto.DecryptionError):
            cipher.open_(blob, dek=dek, table="contact", column="alias" if name != "alias" else "notes",
                         row_id=made.id, subject_id=made.id)  # fmt: skip

    # One index entry per live epoch, in the bucket of the normalised handle, with that value sealed.
    entries = session.execute(select(BlindIndexEntry).where(BlindIndexEntry.subject_id == made.id)).scalars().all()
    live = crypto.live_epochs(session)
    assert sorted(e.epoch for e in entries) == sorted(e.epoch for e in live)
    normalised = blind_index.normalise_handle("+7 912 555-21-21")
    for entry in entries:
        epoch = next(e for e in live if e.epoch == entry.epoch)
        key = crypto.epoch_key(session, column=contact_service.INDEX_COLUMN, epoch=entry.epoch)
        assert entry.column == contact_service.INDEX_COLUMN
        assert entry.bucket == blind_index.bucket(key, normalised, bits=epoch.width(entry.column))
        assert entry.value_ct is not None
        assert (
            cipher.open_(
                entry.value_ct,
                dek=dek,
                table=crypto.INDEX_VALUE_TABLE,
                column=crypto.INDEX_VALUE_COLUMN,
                row_id=made.id,
                subject_id=made.id,
            )
            == normalised
        )

    # The next contact with the same number written differently is found through that entry.
    again = contact_service.record_contact(session=session, actor=worker, data=_intake(handle="89125552121"))
    assert again.possible_duplicate is True and [d.code for d in again.duplicate_of] == [made.code]

    # Audited (the record and the look-up of the earlier contact), chained, and the chain verifies.
    actions = session.execute(
        select(AuditEntry.action, AuditEntry.target).where(AuditEntry.target.in_([made.code, again.code]))
    ).all()
    assert ("contact.record", made.code) in actions and ("contact.record", again.code) in actions
    assert ("contact.lookup", made.code) in actions
    assert audit.verify(session)[1] is None

    # Counted exactly: two contacts on today's week and month, split by channel, region and risk.
    after = counters.stored_counts(session)
    week = counters.week_start(date.today())
    assert after.get(("week", week, "contacts", "", ""), 0) - before.get(("week", week, "contacts", "", ""), 0) == 2
    key = ("month", date.today().replace(day=1), "contacts", "channel", "telegram")
    assert after.get(key, 0) - before.get(key, 0) == 2
    assert counters.drift(session) == []

    # No sealed table was written around its seal: accounts and cases still verify.
    assert list(seals.broken_rows(session, keyring)) == []


def test_a_core_inserted_row_of_a_sealed_table_is_sealed_and_verifies(session, factory, keyring) -> None:
    """The Core path seals what a sealed table gets; a row inserted that way then loads and verifies."""
    table = User.__table__
    row = {
        "id": crypto.new_subject_id(),
        "username": "core-inserted",
        "role": "caseworker",
        "password_hash": "!",
        "totp_secret_ct": b"",
        "totp_last_step": 0,
        "failed_logins": 0,
        "duress_hash": None,
        "credentials_changed_at": datetime.now(UTC),
        "created_on": date.today(),
    }
    row = {k: v for k, v in row.items() if k in table.c}
    seals.seal_insert(keyring, User, row)
    assert row["seal"] and row["active"] is True and row["totp_enrolled"] is False
    session.connection().execute(table.insert(), [row])
    loaded = session.get(User, row["id"])  # the load event checks the seal: a bad one raises SealBroken
    assert loaded is not None and loaded.username == "core-inserted"
    values = {c: getattr(loaded, c) for c in seals.SEALED[User]}
    assert seals.holds(keyring, "user_account", loaded.id, values, loaded.seal)
    assert list(seals.broken_rows(session, keyring)) == []
    # And the seal covers the columns: the same row with another role does not verify.
    assert not seals.holds(keyring, "user_account", loaded.id, {**values, "role": "admin"}, loaded.seal)


def _row(worker: User) -> dict[str, object]:
    """A whole contact row, as the service inserts it (no sealed fields)."""
    return {
        "id": crypto.new_subject_id(),
        "received_on": date.today(),
        "channel": "phone",
        "region": "chechnya",
        "language": "ru",
        "risk": "low",
        "needs": "",
        "outcome": None,
        "possible_duplicate": False,
        "flagged_handle": False,
        "recorded_by_id": worker.id,
        "last_activity_on": date.today(),
        "alias_ct": None,
        "handle_ct": None,
        "notes_ct": None,
        "shredded_on": None,
        "shredded_by": None,
    }


def test_a_taken_code_is_drawn_again_without_a_savepoint(session, factory) -> None:
    worker = factory.user("caseworker")
    first = factory.contact(worker)
    draws = iter([first.code, first.code, "H-LEAN-01"])
    values = _row(worker)
    contact_service.insert_contact(session, values, draw=lambda prefix: next(draws))
    assert values["code"] == "H-LEAN-01"
    assert session.scalar(select(Contact.code).where(Contact.id == values["id"])) == "H-LEAN-01"
    # The transaction is whole after the collisions (on PostgreSQL a failed INSERT would have aborted it).
    assert session.scalar(select(func.count()).select_from(Contact).where(Contact.code == first.code)) == 1


def test_a_code_draw_that_keeps_colliding_gives_up_cleanly(session, factory) -> None:
    worker = factory.user("caseworker")
    first = factory.contact(worker)
    values = _row(worker)
    with pytest.raises(HelplineError, match="free record code"):
        contact_service.insert_contact(session, values, draw=lambda prefix: first.code)
    assert session.scalar(select(func.count()).select_from(Contact).where(Contact.id == values["id"])) == 0
    assert factory.contact(worker).code.startswith("H-")  # and the transaction goes on


def test_entries_noted_before_a_read_of_the_log_are_counted_by_it(session, factory) -> None:
    """The hourly limits count a person's entries: the ones this transaction noted are appended first."""
    audit.record(session, actor="lean-reader", action="contact.lookup", target="H-AAAA-01")
    audit.record(session, actor="lean-reader", action="contact.lookup", target="H-AAAA-02")
    count = session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.actor == "lean-reader"))
    assert count == 2


def test_the_chain_lock_is_taken_at_commit_not_by_the_first_entry(tmp_path, pg_server) -> None:
    """With the chain's lock held elsewhere, a whole intake runs; only its commit waits for the lock."""
    settings = make_settings(tmp_path, database_url=pg_server.create_database("leanlock"))
    bootstrap.migrate(settings)
    engine = make_engine(settings)
    keyring = get_keyring(settings)
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=keyring)
        worker_id = Factory(s).user("caseworker").id
    dsn = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    holder = psycopg.connect(dsn, autocommit=False)
    holder.execute("SELECT pg_advisory_xact_lock(%s)", (audit._ADVISORY_LOCK,))
    recorded = threading.Event()
    committed: list[str] = []

    def intake() -> None:
        with unit_of_work(engine) as s:
            crypto.bind(s, settings=settings, keyring=keyring)
            worker = s.get(User, worker_id)
            made = contact_service.record_contact(session=s, actor=worker, data=_intake())
            recorded.set()  # the service is done: every row written, the entries noted
        committed.append(made.code)

    thread = threading.Thread(target=intake)
    thread.start()
    try:
        assert recorded.wait(timeout=60), "the intake waited for the audit chain's lock before its commit"
        assert committed == []  # ... and its commit does wait for it
    finally:
        holder.rollback()
        holder.close()
        thread.join(timeout=60)
    assert len(committed) == 1
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=keyring)
        assert s.scalar(select(AuditEntry.action).where(AuditEntry.target == committed[0])) == "contact.record"
        assert audit.verify(s)[1] is None
    engine.dispose()
