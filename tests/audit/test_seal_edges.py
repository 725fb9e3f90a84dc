"""The seal's edges: the case layout and every value type written out, malformed seals, partial refreshes,
and the trusted writers (Core inserts, re-encryption, the one-time sealing) that reach rows past the ORM hook."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, defer, load_only

from app.audit import seals
from app.audit.models import AuditEntry
from app.auth.models import User
from app.cases.models import Case
from app.contacts.models import Contact
from app.crypto import purpose
from app.crypto.errors import CryptoError
from app.crypto.keyring import FileKeyProvider, Keyring, write_private_file

KEY = bytes(range(32))
ROW = uuid.UUID(int=1)
CASE_VALUES: dict[str, object] = {
    "contact_id": uuid.UUID(int=2),
    "opened_by_id": uuid.UUID(int=3),
    "assigned_to_id": None,
    "verified_by_id": uuid.UUID(int=4),
    "verified_on": date(2026, 12, 1),
}
CASE_MESSAGE = (
    b'helpline-seal-v1\nevacuation_case\n{"assigned_to_id":null,"contact_id":"00000000000000000000000000000002",'
    b'"id":"00000000000000000000000000000001","opened_by_id":"00000000000000000000000000000003",'
    b'"verified_by_id":"00000000000000000000000000000004","verified_on":"2026-12-01"}'
)


def test_case_seal_known_answer() -> None:
    assert seals.message("evacuation_case", ROW, CASE_VALUES) == CASE_MESSAGE
    assert (
        seals.mac(KEY, 3, "evacuation_case", ROW, CASE_VALUES)
        == "3:e2e3a279a98ab333de98e8e254151be7388c428b8fbbbb168a30d0bbadcb8299"
    )


def test_every_value_type_is_written_as_documented() -> None:
    values = {
        "a": bytearray(b"\xff\x00"),
        "b": memoryview(b"\x10"),
        "c": datetime(2026, 12, 1, 10, 20, 30, tzinfo=UTC),  # a date too: written in ISO form with its time
        "d": Decimal("1.50"),  # anything else: its text
        "e": 7,
        "f": "Амина",  # escaped to ASCII, so the bytes never depend on an encoding
    }
    assert seals.message("t", ROW, values) == (
        b'helpline-seal-v1\nt\n{"a":"ff00","b":"10","c":"2026-12-01T10:20:30+00:00","d":"1.50","e":7,'
        b'"f":"\\u0410\\u043c\\u0438\\u043d\\u0430","id":"00000000000000000000000000000001"}'
    )


def test_a_seal_is_made_under_the_current_seal_key_and_named_by_its_root(keyring) -> None:
    kid, key = purpose.purpose_key(keyring, purpose.SEAL)
    expected = f"{kid}:" + hmac.new(key, CASE_MESSAGE, hashlib.sha256).hexdigest()
    assert seals.compute(keyring, "evacuation_case", ROW, CASE_VALUES) == expected
    assert seals.compute(keyring, "evacuation_case", ROW, CASE_VALUES, kid=kid) == expected
    assert seals.holds(keyring, "evacuation_case", ROW, CASE_VALUES, expected) is True


@pytest.mark.parametrize(
    "seal",
    [
        None,
        "",
        "no separator",
        "x:" + "0" * 64,  # a key id that is not a number
        "99999:" + "0" * 64,  # a key the provider does not hold
        "{kid}:{hex}:extra",
        "{kid}:{hex}é",  # text outside ASCII neither raises nor matches
        "{kid}:{upper}",
        "{kid}:{hex_short}",
    ],
)
def test_a_malformed_foreign_or_altered_seal_holds_nothing(keyring, seal: str | None) -> None:
    good = seals.compute(keyring, "evacuation_case", ROW, CASE_VALUES)
    kid, hexdigest = good.split(":")
    if seal is not None:
        seal = seal.format(kid=kid, hex=hexdigest, upper=hexdigest.upper(), hex_short=hexdigest[:-1])
    assert seals.holds(keyring, "evacuation_case", ROW, CASE_VALUES, seal) is False


def test_a_seal_holds_only_for_its_own_table_row_and_values(keyring) -> None:
    good = seals.compute(keyring, "evacuation_case", ROW, CASE_VALUES)
    assert seals.holds(keyring, "user_account", ROW, CASE_VALUES, good) is False
    assert seals.holds(keyring, "evacuation_case", uuid.UUID(int=9), CASE_VALUES, good) is False
    assert (
        seals.holds(keyring, "evacuation_case", ROW, {**CASE_VALUES, "assigned_to_id": uuid.UUID(int=3)}, good) is False
    )


def test_a_seal_made_under_an_older_integrity_root_still_holds(tmp_path) -> None:
    path = tmp_path / "keys.json"
    FileKeyProvider.create(path)
    doc = json.loads(path.read_text("utf-8"))
    old = int(doc["integrity_primary"])
    older = Keyring(FileKeyProvider(path))
    sealed_before = seals.compute(older, "evacuation_case", ROW, CASE_VALUES)
    assert sealed_before.startswith(f"{old}:")
    # A second root becomes the current one; the first is still held for what it sealed.
    doc["integrity"][str(old + 1)] = base64.b64encode(bytes(range(32))).decode("ascii")
    doc["integrity_primary"] = old + 1
    write_private_file(path, json.dumps(doc).encode("utf-8"))
    keyring = Keyring(FileKeyProvider(path))
    assert seals.compute(keyring, "evacuation_case", ROW, CASE_VALUES).startswith(f"{old + 1}:")
    assert seals.holds(keyring, "evacuation_case", ROW, CASE_VALUES, sealed_before) is True
    moved = f"{old + 1}:" + sealed_before.split(":")[1]  # the old MAC relabelled as the current root's
    assert seals.holds(keyring, "evacuation_case", ROW, CASE_VALUES, moved) is False


def _raw(session: Session, model: type[User] | type[Case], row_id: uuid.UUID, **values: object) -> None:
    """Plain SQL on the table, past every ORM hook: what someone with SQL access runs."""
    table = model.__table__
    session.flush()
    session.execute(table.update().where(table.c.id == row_id).values(**values))


def _forge(session: Session, model: type[User] | type[Case], row_id: uuid.UUID, **values: object) -> None:
    _raw(session, model, row_id, **values)
    session.expire_all()


def _alarm_details(session: Session, target: str) -> list[dict[str, object]]:
    rows = session.scalars(
        select(AuditEntry.detail).where(AuditEntry.action == "alarm.seal_broken", AuditEntry.target == target)
    )
    return [json.loads(row) for row in rows]


def test_a_refused_row_stays_refused_and_its_alarm_names_it(session, factory) -> None:
    user = factory.user("caseworker")
    name, user_id = user.username, user.id
    case = factory.case(user)
    code, case_id = case.code, case.id
    _forge(session, User, user_id, role="admin")
    _forge(session, Case, case_id, assigned_to_id=None)
    for _ in range(2):  # not left in the session for a second query to pick up unchecked
        with pytest.raises(seals.SealBroken) as refused:
            session.get(User, user_id)
        with pytest.raises(seals.SealBroken):
            session.get(Case, case_id)
    assert refused.value.status_code == 403 and refused.value.keep_changes is True
    session.commit()
    why = "security columns changed outside Helpline"
    assert _alarm_details(session, name) == [{"kind": "user", "why": why}]
    assert _alarm_details(session, code) == [{"kind": "case", "why": why}]
    actors = session.scalars(select(AuditEntry.actor).where(AuditEntry.action == "alarm.seal_broken"))
    assert set(actors) == {"system"}


def test_a_refresh_of_unsealed_columns_only_is_not_a_check(session, factory) -> None:
    user = factory.user("caseworker")
    _raw(session, User, user.id, role="admin")
    session.refresh(user, ["failed_logins"])  # an atomic counter read back: nothing sealed came from the database
    assert user.role == "caseworker"
    with pytest.raises(seals.SealBroken):
        session.refresh(user, ["role"])


def test_a_refresh_of_the_seal_alone_is_checked(session, factory) -> None:
    user = factory.user("caseworker")
    _raw(session, User, user.id, seal="1:" + "0" * 64)
    with pytest.raises(seals.SealBroken):
        session.refresh(user, ["seal"])


NARROW_READS = {
    "load_only": (load_only(User.id, User.failed_logins), load_only(Case.id, Case.status)),
    "defer the seal": (defer(User.seal), defer(Case.seal)),
    "defer a sealed column": (defer(User.role), defer(Case.assigned_to_id)),
}


@pytest.mark.parametrize("narrow", NARROW_READS.values(), ids=NARROW_READS.keys())
def test_a_forged_row_read_narrowly_is_refused_as_when_read_whole(session, factory, narrow) -> None:
    user = factory.user("caseworker")
    case = factory.case(user)
    name, user_id, code, case_id = user.username, user.id, case.code, case.id
    session.flush()

    def read() -> tuple[User, Case]:
        session.expunge_all()  # a fresh load, as in a new request
        found = session.scalars(select(User).options(narrow[0]).where(User.id == user_id)).one()
        return found, session.scalars(select(Case).options(narrow[1]).where(Case.id == case_id)).one()

    assert [row.id for row in read()] == [user_id, case_id]  # an intact row read narrowly is handed out
    _raw(session, User, user_id, role="admin")
    _raw(session, Case, case_id, assigned_to_id=None)
    with pytest.raises(seals.SealBroken):
        read()
    session.expunge_all()
    with pytest.raises(seals.SealBroken):
        session.scalars(select(Case).options(narrow[1]).where(Case.id == case_id)).one()
    session.commit()
    why = "security columns changed outside Helpline"
    assert _alarm_details(session, name) == [{"kind": "user", "why": why}]
    assert _alarm_details(session, code) == [{"kind": "case", "why": why}]


def test_a_session_without_the_key_provider_neither_checks_nor_writes_sealed_columns(session, factory) -> None:
    user = factory.user("caseworker")
    user_id = user.id
    session.flush()
    _raw(session, User, user_id, role="admin")
    bare = Session(bind=session.connection(), join_transaction_mode="create_savepoint", autoflush=False)
    try:
        loaded = bare.get(User, user_id)  # no keyring: nothing to check with (migrations read this way)
        assert loaded is not None and loaded.role == "admin"
        loaded.failed_logins = 3
        bare.flush()  # an unsealed column needs no key
        loaded.role = "caseworker"
        with pytest.raises(CryptoError) as refused:
            bare.flush()
        assert str(refused.value) == "security columns can only be written in a session bound to the key provider"
    finally:
        bare.close()


def test_a_core_insert_is_sealed_with_the_column_defaults(session, keyring) -> None:
    base = {
        "id": uuid.uuid4(),
        "username": "core-inserted",
        "role": "caseworker",
        "password_hash": "$argon2id$x",
        "totp_secret_ct": b"\x01",
    }
    row = seals.seal_insert(keyring, User, dict(base))
    assert row["active"] is True and row["totp_enrolled"] is False and row["must_change_password"] is False
    expected = {**dict.fromkeys(seals.SEALED[User]), **base, "active": True}
    expected.update(totp_enrolled=False, must_change_password=False)
    del expected["id"]
    assert seals.holds(keyring, "user_account", base["id"], expected, row["seal"]) is True
    session.execute(
        User.__table__.insert().values(**row, credentials_changed_at=datetime.now(UTC), created_on=date(2026, 12, 1))
    )  # Core, as the hot paths write
    loaded = session.get(User, base["id"])  # the load checks the seal
    assert loaded is not None and loaded.active is True


def test_a_core_insert_keeps_explicit_values_and_seals_them(keyring) -> None:
    values = {
        "id": ROW,
        "username": "inactive",
        "role": "admin",
        "active": False,
        "totp_enrolled": True,
        "must_change_password": True,
    }
    row = seals.seal_insert(keyring, User, dict(values))
    assert (row["active"], row["totp_enrolled"], row["must_change_password"]) == (False, True, True)
    sealed = {**dict.fromkeys(seals.SEALED[User]), **values}
    del sealed["id"]
    assert seals.holds(keyring, "user_account", ROW, sealed, row["seal"]) is True
    assert seals.holds(keyring, "user_account", ROW, {**sealed, "active": True}, row["seal"]) is False


def test_a_core_insert_of_an_unsealed_table_is_left_as_it_is(keyring) -> None:
    values = {"id": ROW, "active": None}
    assert seals.seal_insert(keyring, Contact, values) is values
    assert values == {"id": ROW, "active": None}


def test_broken_rows_lists_users_then_cases_each_in_name_order(session, factory, keyring) -> None:
    late, early, intact = (
        factory.user("caseworker", "zz-late"),
        factory.user("caseworker", "aa-early"),
        factory.user("caseworker"),
    )
    first, second = factory.case(intact), factory.case(intact)
    session.flush()
    for user in (late, early):
        _raw(session, User, user.id, role="admin")
    for case in (first, second):
        _raw(session, Case, case.id, assigned_to_id=None)
    codes = sorted([first.code, second.code])
    assert list(seals.broken_rows(session, keyring)) == [
        "user aa-early",
        "user zz-late",
        f"case {codes[0]}",
        f"case {codes[1]}",
    ]


def test_a_trusted_bulk_writer_refuses_forged_rows_and_reseals_only_its_own(session, factory, keyring) -> None:
    users = [factory.user("caseworker", f"bulk-{i}") for i in range(3)]
    case = factory.case(users[0])
    session.flush()
    ids = [u.id for u in users]
    seals.check_rows(session, keyring, "user_account", ids)  # all intact: nothing raised
    seals.check_rows(session, keyring, "evacuation_case", [case.id])
    _raw(session, User, users[1].id, role="admin")
    with pytest.raises(seals.SealBroken):
        seals.check_rows(session, keyring, "user_account", ids)
    seals.check_rows(session, keyring, "user_account", [ids[0], ids[2]])  # the forged row is not among these
    # As re-encryption does after checking: change the rows through Core, then seal them over what is stored.
    _raw(session, User, users[0].id, role="coordinator")
    _raw(session, User, users[2].id, role="coordinator")
    assert list(seals.broken_rows(session, keyring)) == ["user bulk-0", "user bulk-1", "user bulk-2"]
    seals.reseal_rows(session, keyring, "user_account", [ids[0], ids[2]])
    assert list(seals.broken_rows(session, keyring)) == ["user bulk-1"]
    _raw(session, Case, case.id, assigned_to_id=None)
    with pytest.raises(seals.SealBroken):
        seals.check_rows(session, keyring, "evacuation_case", [case.id])
    seals.reseal_rows(session, keyring, "evacuation_case", [case.id])
    seals.check_rows(session, keyring, "evacuation_case", [case.id])
    session.expire_all()
    assert session.get(User, ids[0]).role == "coordinator"  # loads: the seal holds over the stored row
    assert session.get(Case, case.id).assigned_to_id is None


def test_unsealed_rows_are_sealed_once_and_a_wrong_seal_is_never_replaced(session, factory, keyring) -> None:
    assert seals.seal_unsealed(session, keyring) == 0
    unsealed_user, wrong = factory.user("caseworker", "unsealed"), factory.user("caseworker", "wrongly-sealed")
    case = factory.case(wrong)
    session.flush()
    _raw(session, User, unsealed_user.id, seal=None)
    _raw(session, Case, case.id, seal=None)
    _raw(session, User, wrong.id, role="admin")
    assert seals.seal_unsealed(session, keyring) == 2
    assert list(seals.broken_rows(session, keyring)) == ["user wrongly-sealed"]
    assert seals.seal_unsealed(session, keyring) == 0


@pytest.mark.parametrize(("keeping", "alarms"), [(True, 1), (False, 0)])
def test_a_refused_read_rolled_back_keeps_its_alarm_only_when_asked(session, factory, keeping, alarms) -> None:
    """A refused GET rolls back but hands its alarm to the writer; any other rollback drops it with the rest."""
    user = factory.user("caseworker")
    name = user.username
    _forge(session, User, user.id, role="admin")
    with pytest.raises(seals.SealBroken):
        session.get(User, user.id)
    if keeping:
        seals.roll_back_keeping_alarms(session)
    else:
        session.rollback()
    session.commit()
    assert len(_alarm_details(session, name)) == alarms


def test_rolling_back_a_reader_with_no_alarm_pending_is_a_plain_rollback(session, factory) -> None:
    user = factory.user("caseworker")
    session.flush()
    seals.roll_back_keeping_alarms(session)
    assert session.get(User, user.id) is None  # rolled back, and nothing raised for want of an alarm


def test_a_counter_read_back_beside_an_unflushed_role_change_raises_no_false_alarm(session, factory, keyring) -> None:
    user = factory.user("caseworker")
    session.flush()
    user.role = "coordinator"  # changed through Helpline, not yet flushed: the stored seal is the old one
    session.refresh(user, ["failed_logins"])  # an atomic counter read back meanwhile is not a seal check
    assert user.role == "coordinator"
    session.flush()
    assert list(seals.broken_rows(session, keyring)) == []
    assert _alarm_details(session, user.username) == []
