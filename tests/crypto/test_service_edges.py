"""The sealing path at the edges round trips never reach: unbound sessions, missing keys, the benchmark
envelope, and the blind-index epochs an install starts from."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.crypto import blind_index, cipher
from app.crypto import service as crypto
from app.crypto.errors import CryptoError, DecryptionError, ShreddedError
from app.crypto.keyring import get_keyring
from app.crypto.models import BlindIndexEntry, DataKey, IndexKey
from tests.conftest import make_settings

SHREDDED = "this record's data key was destroyed; its protected fields cannot be read"


def test_a_session_outside_the_unit_of_work_is_refused_by_name() -> None:
    bare = Session()
    with pytest.raises(CryptoError) as settings_missing:
        crypto.settings_of(bare)
    assert str(settings_missing.value) == "session is not bound to settings; use the unit of work"
    assert settings_missing.value.__suppress_context__  # no KeyError from session.info in the report
    with pytest.raises(CryptoError) as keyring_missing:
        crypto.keyring_of(bare)
    assert str(keyring_missing.value) == "session is not bound to a keyring; use the unit of work"
    assert keyring_missing.value.__suppress_context__


def test_a_subject_without_a_data_key_reads_as_shredded(session) -> None:
    subject = uuid.uuid4()
    key = cipher.new_key()
    blob = cipher.seal("x", dek=key, key_id=5, table="contact", column="notes", row_id=subject, subject_id=subject)
    with pytest.raises(ShreddedError) as opened:
        crypto.open_field(session, blob, table="contact", column="notes", row_id=subject, subject_id=subject)
    assert str(opened.value) == SHREDDED
    with pytest.raises(ShreddedError) as current:
        crypto.current_subject_key(session, subject_id=subject)
    assert str(current.value) == SHREDDED


def test_the_newest_data_key_of_a_subject_is_the_current_one(session) -> None:
    subject = uuid.uuid4()
    made = [crypto.create_subject_key(session, subject_id=subject) for _ in range(2)]
    low, high = sorted(made, key=lambda k: k.key_id)
    keyring = crypto.keyring_of(session)
    keyring.evict(subject)  # unwrapped from the stored row, not handed back from memory
    # Made the same day: the lower key id, as the index is ordered.
    assert crypto.current_subject_key(session, subject_id=subject) == low
    # The higher key id made later (the lower one backdated): the date decides.
    session.execute(
        DataKey.__table__.update()
        .where(DataKey.subject_id == subject, DataKey.key_id == low.key_id)
        .values(created_on=date.today() - timedelta(days=30))
    )
    keyring.evict(subject)
    current = crypto.current_subject_key(session, subject_id=subject)
    assert (current.subject_id, current.key_id, current.dek) == (subject, high.key_id, high.dek)


def test_the_live_epochs_are_read_again_in_each_transaction(bare_install: Session) -> None:
    s = bare_install
    crypto.ensure_index_root(s)
    s.commit()
    assert [e.epoch for e in crypto.live_epochs(s)] == [1]
    s.commit()
    with Session(s.get_bind()) as other:  # another process starts a rebuild meanwhile
        crypto.bind(other, settings=crypto.settings_of(s), keyring=crypto.keyring_of(s))
        crypto.new_index_epoch(other, bits=8, building=True)
        other.commit()
    assert [e.epoch for e in crypto.live_epochs(s)] == [1, 2]  # a new transaction: no stale memo


def test_a_new_subject_key_is_stored_wrapped_and_opens_what_it_seals(session) -> None:
    subject, row = uuid.uuid4(), uuid.uuid4()
    key = crypto.create_subject_key(session, subject_id=subject)
    stored = session.scalars(select(DataKey).where(DataKey.subject_id == subject)).one()
    assert stored.key_id == key.key_id and stored.created_on == date.today() and key.dek not in stored.wrapped
    blob = crypto.seal_field(session, "Амина", key=key, table="contact", column="alias", row_id=row)
    assert blob is not None and cipher.envelope_key_id(blob) == key.key_id
    crypto.keyring_of(session).evict(subject)  # opened from the stored row, not from the keyring's memory
    assert crypto.open_field(session, blob, table="contact", column="alias", row_id=row, subject_id=subject) == "Амина"


def test_an_unencrypted_value_is_refused_outside_benchmark_mode(session) -> None:
    subject = uuid.uuid4()
    with pytest.raises(DecryptionError) as refused:
        crypto.open_field(session, b"\x00plain", table="contact", column="notes", row_id=subject, subject_id=subject)
    assert str(refused.value) == "refusing an unencrypted value outside benchmark mode"


def test_benchmark_mode_stores_values_as_they_are_and_keeps_no_key_or_index(session, settings, keyring) -> None:
    crypto.bind(session, settings=settings.model_copy(update={"bench_disable_crypto": True}), keyring=keyring)
    subject = uuid.uuid4()
    key = crypto.create_subject_key(session, subject_id=subject)
    assert session.scalar(select(DataKey).where(DataKey.subject_id == subject)) is None
    blob = crypto.seal_field(session, "Амина", key=key, table="contact", column="alias", row_id=subject)
    assert blob == b"\x00" + "Амина".encode()
    assert crypto.open_field(session, blob, table="contact", column="alias", row_id=subject, subject_id=subject) == (
        "Амина"
    )
    crypto.add_index_entry(session, subject_id=subject, column="contact.handle", value="@amina", key=key)
    assert session.scalar(select(BlindIndexEntry).where(BlindIndexEntry.subject_id == subject)) is None
    found = crypto.index_matches_many(session, columns=("contact.handle", "flagged.handle"), value="@amina")
    assert found == {"contact.handle": ([], []), "flagged.handle": ([], [])}


@pytest.fixture
def bare_install(backend, migrated_url_factory, tmp_path) -> Iterator[Session]:
    """A session on a database with the schema and nothing else: no blind-index epoch yet."""
    settings = make_settings(tmp_path / "bare", index_bits=10)
    engine = create_engine(migrated_url_factory(backend), poolclass=NullPool)
    session = crypto.bind(Session(engine), settings=settings, keyring=get_keyring(settings))
    try:
        yield session
    finally:
        session.close()
        engine.dispose()


def test_epochs_start_from_none_and_are_numbered_past_every_one_ever_used(bare_install: Session) -> None:
    s = bare_install
    with pytest.raises(CryptoError) as none_yet:
        crypto.live_epochs(s)
    assert str(none_yet.value) == "no blind-index key: run 'helpline init' or 'helpline migrate'"
    assert crypto.ensure_index_root(s) == 1
    assert crypto.ensure_index_root(s) == 1  # once
    assert crypto.live_epochs(s) == (crypto.IndexEpoch(1, 10, {}, False),)  # the width the settings give
    # Stragglers of an abandoned rebuild of epoch 4 (its key row gone): the next epoch never reuses 4.
    s.add(BlindIndexEntry(subject_id=uuid.uuid4(), column="contact.handle", epoch=4, bucket=1, value_ct=None))
    s.flush()
    assert crypto.new_index_epoch(s, bits=14, widths={"flagged.handle": 8, "contact.handle": 16}, building=True) == 5
    stored = s.get(IndexKey, 5)
    assert stored is not None and stored.state == "building" and stored.bits == 14
    assert stored.widths == '{"contact.handle": 16, "flagged.handle": 8}'
    assert json.loads(stored.widths) == {"contact.handle": 16, "flagged.handle": 8}
    assert crypto.live_epochs(s) == (
        crypto.IndexEpoch(1, 10, {}, False),
        crypto.IndexEpoch(5, 14, {"contact.handle": 16, "flagged.handle": 8}, True),
    )
    assert crypto.active_epoch(s).epoch == 1
    assert crypto.ensure_index_root(s) == 5  # the newest epoch of any state
    assert crypto.new_index_epoch(s) == 6
    assert s.get(IndexKey, 6).state == "active" and s.get(IndexKey, 6).widths is None
    assert crypto.active_epoch(s).epoch == 6  # the newest complete epoch


def test_the_width_of_a_column_is_its_own_or_the_epochs() -> None:
    epoch = crypto.IndexEpoch(3, 12, {"contact.handle": 16}, False)
    assert epoch.width("contact.handle") == 16
    assert epoch.width("flagged.handle") == 12


def test_an_index_key_of_an_unknown_epoch_is_refused_by_number(bare_install: Session) -> None:
    crypto.ensure_index_root(bare_install)
    with pytest.raises(CryptoError) as unknown:
        crypto.epoch_key(bare_install, column="contact.handle", epoch=99)
    assert str(unknown.value) == "blind-index epoch 99 does not exist"


def _indexed(session: Session, column: str, value: str) -> uuid.UUID:
    subject = uuid.uuid4()
    crypto.create_subject_key(session, subject_id=subject)
    crypto.add_index_entry(session, subject_id=subject, column=column, value=value)
    return subject


def test_a_look_up_in_more_columns_than_intake_uses_finds_each_columns_own(session) -> None:
    """Three columns over two live epochs: a statement shape built on demand, not one of the prepared ones."""
    crypto.new_index_epoch(session, bits=6, building=True)  # look-ups consult the building epoch too
    columns = ("t.one", "t.two", "t.three")
    holders = {column: _indexed(session, column, "@Amina") for column in columns}
    other = _indexed(session, "t.one", "@someone-else")
    found = crypto.index_matches_many(session, columns=columns, value="amina")
    assert found == {column: ([holders[column]], []) for column in columns}
    assert other not in found["t.one"][0] + found["t.one"][1]
    assert crypto.index_candidates(session, column="t.two", value="@amina") == [holders["t.two"]]


def test_dropping_one_columns_entries_leaves_the_subjects_others_and_other_subjects(session) -> None:
    subject = _indexed(session, "t.one", "@amina")
    crypto.add_index_entry(session, subject_id=subject, column="t.two", value="@amina")
    neighbour = _indexed(session, "t.one", "@amina")
    crypto.drop_index_entries(session, subject_id=subject, column="t.one")
    assert crypto.index_candidates(session, column="t.one", value="@amina") == [neighbour]
    assert crypto.index_candidates(session, column="t.two", value="@amina") == [subject]


def test_a_bucket_comes_from_the_named_epoch_or_else_the_active_one(bare_install: Session) -> None:
    s = bare_install
    crypto.ensure_index_root(s)
    assert crypto.new_index_epoch(s, bits=10, widths={"contact.handle": 6}) == 2  # active, 6 bits for handles
    assert crypto.new_index_epoch(s, bits=9, building=True) == 3
    key_2 = crypto.epoch_key(s, column="contact.handle", epoch=2)
    assert crypto.active_index_key(s, column="contact.handle") == (2, 6, key_2)
    assert crypto.active_index_key(s, column="flagged.handle") == (
        2,
        10,
        crypto.epoch_key(s, column="flagged.handle", epoch=2),
    )
    values = ["@amina", "+7 912 345-67-89", "ivan89123456789", "@z"]
    for value in values:
        normalised = blind_index.normalise_handle(value)
        in_2 = blind_index.bucket(crypto.epoch_key(s, column="contact.handle", epoch=2), normalised, bits=6)
        in_3 = blind_index.bucket(crypto.epoch_key(s, column="contact.handle", epoch=3), normalised, bits=9)
        assert crypto.index_bucket(s, value, column="contact.handle") == (2, in_2)
        assert crypto.index_bucket(s, value, column="contact.handle", epoch=3, bits=9) == (3, in_3)
        # An epoch without its width is not enough to pick one: the active epoch and its width are used.
        assert crypto.index_bucket(s, value, column="contact.handle", epoch=3) == (2, in_2)
        assert crypto.index_bucket(s, value, column="contact.handle", bits=9) == (2, in_2)


def test_a_rebuild_reads_the_sealed_value_or_else_the_record_and_skips_the_unreadable(session) -> None:
    subject = uuid.uuid4()
    key = crypto.create_subject_key(session, subject_id=subject)
    handle_ct = crypto.seal_field(
        session, "+7 912 345-67-89", key=key, table="contact", column="handle", row_id=subject
    )
    assert handle_ct is not None
    sealed = crypto.seal_index_value("+79123456789", key=key)
    place = {"column": "contact.handle", "subject_id": subject, "table": "contact", "handle_ct": handle_ct}
    # An entry with its sealed value: used as it is, the record never opened.
    assert crypto.index_value_of(session, value_ct=sealed, **place) == ("+79123456789", sealed)
    # An entry from before sealed values: the record's handle, normalised and sealed for the new entry.
    normalised, fresh = crypto.index_value_of(session, value_ct=None, **place) or ("", b"")
    assert normalised == "+79123456789" and cipher.envelope_key_id(fresh) == key.key_id
    opened = cipher.open_(
        fresh, dek=key.dek, table="blind_index_entry", column="value", row_id=subject, subject_id=subject
    )
    assert opened == "+79123456789"
    damaged = handle_ct[:-1] + bytes([handle_ct[-1] ^ 1])
    assert crypto.index_value_of(session, value_ct=None, **{**place, "handle_ct": damaged}) is None
    assert crypto.index_value_of(session, value_ct=sealed[:-1] + bytes([sealed[-1] ^ 1]), **place) is None
    crypto.shred_subject(session, subject_id=subject)
    assert crypto.index_value_of(session, value_ct=None, **place) is None


def _entry(
    session: Session, subject: uuid.UUID, value: str, value_ct: bytes | None, *, epoch: int | None = None
) -> None:
    """An entry in the bucket of ``value``, holding whatever sealed value the case needs."""
    live = (
        crypto.active_epoch(session)
        if epoch is None
        else next(e for e in crypto.live_epochs(session) if e.epoch == epoch)
    )
    bucket = crypto.index_bucket(session, value, column="t.one", epoch=live.epoch, bits=live.width("t.one"))[1]
    session.add(BlindIndexEntry(subject_id=subject, column="t.one", epoch=live.epoch, bucket=bucket, value_ct=value_ct))
    session.flush()


def test_each_kind_of_candidate_lands_where_the_caller_expects_it(session) -> None:
    """Matches are opened and equal; bucket-mates with another value are dropped; entries that cannot be
    compared here (no sealed value, one damaged or under none of the subject's keys) go to the caller."""
    subjects = {name: uuid.uuid4() for name in ("match", "mate", "old", "damaged", "foreign", "shredded", "two")}
    keys = {name: crypto.create_subject_key(session, subject_id=s) for name, s in subjects.items()}
    _entry(session, subjects["match"], "@amina", crypto.seal_index_value("amina", key=keys["match"]))
    _entry(session, subjects["mate"], "@amina", crypto.seal_index_value("someone-else", key=keys["mate"]))
    _entry(session, subjects["old"], "@amina", None)
    good = crypto.seal_index_value("amina", key=keys["damaged"])
    _entry(session, subjects["damaged"], "@amina", good[:-1] + bytes([good[-1] ^ 1]))
    stranger = crypto.SubjectKey(subjects["foreign"], keys["foreign"].key_id ^ 1, cipher.new_key())
    _entry(session, subjects["foreign"], "@amina", crypto.seal_index_value("amina", key=stranger))
    _entry(session, subjects["shredded"], "@amina", crypto.seal_index_value("amina", key=keys["shredded"]))
    session.execute(DataKey.__table__.delete().where(DataKey.subject_id == subjects["shredded"]))
    # A subject with a second, newer data key: its rows come once per key, and it still matches once.
    crypto.create_subject_key(session, subject_id=subjects["two"])
    _entry(session, subjects["two"], "@amina", crypto.seal_index_value("amina", key=keys["two"]))
    matches, unsealed = crypto.index_matches(session, column="t.one", value="@Amina")
    assert sorted(matches) == sorted([subjects["match"], subjects["two"]])
    assert sorted(unsealed) == sorted([subjects["old"], subjects["damaged"], subjects["foreign"]])


def test_a_match_in_one_epoch_is_not_also_handed_back_unsealed_from_another(session) -> None:
    subject = uuid.uuid4()
    key = crypto.create_subject_key(session, subject_id=subject)
    building = crypto.new_index_epoch(session, bits=8, building=True)
    _entry(session, subject, "@amina", crypto.seal_index_value("amina", key=key))
    _entry(session, subject, "@amina", None, epoch=building)
    assert crypto.index_matches(session, column="t.one", value="@amina") == ([subject], [])


def test_re_indexing_replaces_the_entry_and_an_empty_value_indexes_nothing(session) -> None:
    subject = _indexed(session, "t.one", "@amina")
    crypto.add_index_entry(session, subject_id=subject, column="t.one", value="@zarina", replace=True)
    session.flush()
    assert crypto.index_candidates(session, column="t.one", value="@amina") == []
    assert crypto.index_candidates(session, column="t.one", value="@zarina") == [subject]
    crypto.add_index_entry(session, subject_id=subject, column="t.two", value="")
    assert session.scalar(select(BlindIndexEntry).where(BlindIndexEntry.column == "t.two")) is None


def test_a_subject_without_a_data_key_is_indexed_without_a_sealed_value(session) -> None:
    subject = uuid.uuid4()
    crypto.add_index_entry(session, subject_id=subject, column="t.one", value="@amina")
    entry = session.scalars(select(BlindIndexEntry).where(BlindIndexEntry.subject_id == subject)).one()
    assert entry.value_ct is None
    assert crypto.index_matches(session, column="t.one", value="@amina") == ([], [subject])


def test_a_new_data_key_holds_the_keyring_shared_once_per_transaction_on_postgresql(
    tmp_path, migrated_url_factory
) -> None:
    """PostgreSQL only by construction (SQLite's write lock plays this part): ``keys rotate`` waits for it."""
    url = migrated_url_factory("postgresql")
    settings = make_settings(tmp_path / "pg", database_url=url)
    engine = create_engine(url, poolclass=NullPool)
    taken: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: taken.append(a[2]) if "pg_advisory_xact" in a[2] else None)
    held = text(
        "SELECT mode, granted FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        " AND classid = 0 AND objid = :k"
    )
    try:
        with Session(engine) as s:
            crypto.bind(s, settings=settings, keyring=get_keyring(settings))
            crypto.create_subject_key(s, subject_id=uuid.uuid4())
            crypto.create_subject_key(s, subject_id=uuid.uuid4())
            assert s.execute(held, {"k": crypto.KEYRING_LOCK}).all() == [("ShareLock", True)]
            assert taken == ["SELECT pg_advisory_xact_lock_shared(%(k)s)"]  # once in the transaction
            s.commit()
            crypto.create_subject_key(s, subject_id=uuid.uuid4())  # a new transaction takes it again
            assert len(taken) == 2
            assert s.execute(held, {"k": crypto.KEYRING_LOCK}).all() == [("ShareLock", True)]
            s.rollback()
    finally:
        engine.dispose()


def test_an_entry_only_in_the_building_epoch_is_found_at_that_epochs_width_for_its_column(session) -> None:
    """Mid-rebuild, a subject the builder reached first is in the new epoch alone, at the new width."""
    subject = uuid.uuid4()
    key = crypto.create_subject_key(session, subject_id=subject)
    building = crypto.new_index_epoch(session, bits=6, widths={"t.one": 9}, building=True)
    _entry(session, subject, "@amina", crypto.seal_index_value("amina", key=key), epoch=building)
    assert crypto.index_matches(session, column="t.one", value="@amina") == ([subject], [])


def test_an_empty_value_looks_nothing_up(session) -> None:
    subject = uuid.uuid4()
    _entry(session, subject, "", None)  # an old unsealed entry sitting in the empty value's bucket
    assert crypto.index_matches(session, column="t.one", value="") == ([], [])


def test_the_entry_is_sealed_under_the_key_given_or_else_the_subjects_own(session, settings, keyring) -> None:
    subject = uuid.uuid4()
    first = crypto.create_subject_key(session, subject_id=subject)
    crypto.create_subject_key(session, subject_id=subject)
    crypto.add_index_entry(session, subject_id=subject, column="t.one", value="@amina", key=first)
    entry = session.scalars(select(BlindIndexEntry).where(BlindIndexEntry.subject_id == subject)).one()
    assert entry.value_ct is not None and cipher.envelope_key_id(entry.value_ct) == first.key_id
    # A subject whose key an earlier unit of work stored: read back, so the entry is sealed still.
    other = uuid.uuid4()
    stored = crypto.create_subject_key(session, subject_id=other)
    session.flush()
    later = Session(bind=session.connection(), join_transaction_mode="create_savepoint")
    try:
        crypto.bind(later, settings=settings, keyring=keyring)
        crypto.add_index_entry(later, subject_id=other, column="t.one", value="@zarina")
        entry = later.scalars(select(BlindIndexEntry).where(BlindIndexEntry.subject_id == other)).one()
        assert entry.value_ct is not None and cipher.envelope_key_id(entry.value_ct) == stored.key_id
    finally:
        later.close()


def test_a_shredded_subjects_key_is_not_served_from_memory_either(session) -> None:
    subject = uuid.uuid4()
    key = crypto.create_subject_key(session, subject_id=subject)
    keyring = crypto.keyring_of(session)
    kek = keyring.provider.primary_kek_id()
    assert keyring.unwrap_dek(b"not a wrapped key", subject_id=subject, key_id=key.key_id, kek_id=kek) == key.dek
    crypto.shred_subject(session, subject_id=subject)
    with pytest.raises(DecryptionError):  # no longer in memory: it would have to be unwrapped, and cannot
        keyring.unwrap_dek(b"not a wrapped key", subject_id=subject, key_id=key.key_id, kek_id=kek)


def test_entries_take_each_epochs_width_for_their_column(bare_install: Session) -> None:
    s = bare_install
    crypto.ensure_index_root(s)
    wide = crypto.new_index_epoch(s, bits=8, widths={"t.one": 13}, building=True)
    subject = uuid.uuid4()
    crypto.create_subject_key(s, subject_id=subject)
    crypto.add_index_entry(s, subject_id=subject, column="t.one", value="@amina")
    for value in ("@zarina", "+7 912 345-67-89", "@x"):  # more subjects: a wrong width cannot agree by chance
        crypto.add_index_entry(s, subject_id=uuid.uuid4(), column="t.one", value=value)
    entries = s.scalars(select(BlindIndexEntry).where(BlindIndexEntry.column == "t.one")).all()
    for entry in entries:
        assert entry.bucket < 2 ** (13 if entry.epoch == wide else 10)
    mine = {e.epoch: e.bucket for e in entries if e.subject_id == subject}
    assert mine == {
        1: crypto.index_bucket(s, "@amina", column="t.one", epoch=1, bits=10)[1],
        wide: crypto.index_bucket(s, "@amina", column="t.one", epoch=wide, bits=13)[1],
    }


def test_a_columns_index_key_is_derived_from_its_epochs_root_with_both_names(session) -> None:
    """Through the documented derivation (its vectors are in test_vectors.py), from the root as stored."""
    epoch = crypto.active_epoch(session).epoch
    row = session.get(IndexKey, epoch)
    assert row is not None
    aad = cipher.dek_aad(subject_id=crypto.index_subject(epoch), key_id=epoch, kek_id=row.kek_id)
    root = crypto.keyring_of(session).provider.unwrap(row.kek_id, row.wrapped, aad)
    for column in ("contact.handle", "flagged.handle"):
        expected = blind_index.derive_index_key(root, column=column, epoch=epoch)
        assert crypto.epoch_key(session, column=column, epoch=epoch) == expected
        assert crypto.epoch_key(session, column=column, epoch=epoch) == expected  # and again, from memory
