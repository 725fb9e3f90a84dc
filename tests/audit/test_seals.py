"""Sealed security columns: what someone with SQL access changes on an account or a case is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import date

import pytest
from sqlalchemy import select, text, update

from app import bootstrap
from app.audit import link, seals
from app.audit.models import AuditEntry
from app.auth import duress, passwords
from app.auth import service as auth_service
from app.auth.models import User
from app.cases import service as case_service
from app.cases.models import Case
from app.crypto import service as crypto
from app.crypto.errors import CryptoError
from app.crypto.keyring import get_keyring
from app.db import make_engine, session_factory, unit_of_work
from tests.conftest import make_settings

REFUSED = "this record failed its integrity check and is refused; an administrator has been alerted"


def test_seal_format_known_answer() -> None:
    values = {
        "username": "amina",
        "role": "caseworker",
        "active": True,
        "password_hash": "$argon2id$x",
        "duress_hash": None,
        "totp_secret_ct": b"\x01\x02",
        "totp_enrolled": True,
        "must_change_password": False,
    }
    row = uuid.UUID(int=1)
    assert seals.message("user_account", row, values) == (
        b'helpline-seal-v1\nuser_account\n{"active":true,"duress_hash":null,"id":"00000000000000000000000000000001",'
        b'"must_change_password":false,"password_hash":"$argon2id$x","role":"caseworker",'
        b'"totp_enrolled":true,"totp_secret_ct":"0102","username":"amina"}'
    )
    assert (
        seals.mac(bytes(range(32)), 7, "user_account", row, values)
        == "7:64310d0d0f254014b29eb2c8e0384b3d83a545940b1d9f79c52b6f3ac3e06214"
    )


def _alarms(session, target: str) -> list[AuditEntry]:
    return list(
        session.scalars(select(AuditEntry).where(AuditEntry.action == "alarm.seal_broken", AuditEntry.target == target))
    )


def _forge(session, sql: str, **params: object) -> None:
    session.flush()
    session.execute(text(sql), params)
    session.expire_all()


def _forge_case(session, case_id: uuid.UUID, **values: object) -> None:
    """Plain SQL on the table (no ORM entity, so no hook sees it): what an attacker with SQL access runs."""
    table = Case.__table__
    session.flush()
    session.execute(table.update().where(table.c.id == case_id).values(**values))
    session.expire_all()


def _sign_in(client, name: str, account, password: str | None = None):
    return client.post(
        "/api/v1/auth/token",
        json={"username": name, "password": password or account.password, "otp": account.totp().now()},
    )


def test_role_escalation_by_sql_is_refused_and_alarmed(client, factory, session, keyring) -> None:
    account = factory.account("caseworker")
    name = account.username
    headers = factory.headers(account.user)
    assert client.get("/api/v1/contacts", headers=headers).status_code == 200
    _forge(session, "UPDATE user_account SET role = 'coordinator' WHERE username = :n", n=name)
    answer = client.get("/api/v1/cases", headers=headers)
    assert answer.status_code == 403 and answer.json() == {"detail": REFUSED}
    assert _sign_in(client, name, account).status_code == 403
    assert _alarms(session, name)
    assert f"user {name}" in list(seals.broken_rows(session, keyring))


def test_a_swapped_password_hash_signs_nobody_in(client, factory, session) -> None:
    account = factory.account("admin")
    name = account.username
    known = passwords.hash_password("the attacker's own password")
    _forge(session, "UPDATE user_account SET password_hash = :h WHERE username = :n", h=known, n=name)
    answer = _sign_in(client, name, account, password="the attacker's own password")
    assert answer.status_code == 403 and "access_token" not in answer.json()
    assert _alarms(session, name)


def test_a_duress_password_planted_by_sql_signs_nobody_in_under_duress(client, factory, session, keyring) -> None:
    account = factory.account("caseworker")
    name = account.username
    assert account.user.duress_hash is None
    planted = passwords.hash_password("the attacker's duress password")
    _forge(session, "UPDATE user_account SET duress_hash = :h WHERE username = :n", h=planted, n=name)
    answer = _sign_in(client, name, account, password="the attacker's duress password")
    assert answer.status_code == 403 and "access_token" not in answer.json()
    assert _sign_in(client, name, account).status_code == 403  # nor with the real password
    assert _alarms(session, name)
    assert f"user {name}" in list(seals.broken_rows(session, keyring))
    duress_entries = session.scalars(select(AuditEntry).where(AuditEntry.action == duress.ALARM_ACTION))
    assert list(duress_entries) == []  # no duress sign-in happened: no stand-in, no held account
    assert session.scalar(select(User.locked_until).where(User.username == name)) is None


def test_an_enrolment_reset_by_sql_shows_no_secret_and_signs_nobody_in(client, factory, session) -> None:
    account = factory.account("caseworker")
    name = account.username
    with session.begin_nested():
        session.get(User, account.user.id).totp_enrolled = True  # enrolled through Helpline: resealed
    session.expire_all()
    assert _sign_in(client, name, account).status_code == 200
    _forge(session, "UPDATE user_account SET totp_enrolled = :f WHERE username = :n", f=False, n=name)
    assert _sign_in(client, name, account).status_code == 403
    with pytest.raises(seals.SealBroken):  # no code path gets the account, so none can show its secret
        auth_service.get_user(session, username=name)


def test_a_case_reassigned_by_sql_opens_to_nobody(client, factory, session, keyring) -> None:
    owner = factory.user("caseworker")
    intruder = factory.user("caseworker")
    case = factory.case(owner, full_name="Name Hidden")
    intruder_headers = factory.headers(intruder)
    session.commit()  # the 404 below rolls its request back, not the set-up
    assert client.get(f"/api/v1/cases/{case.id}", headers=intruder_headers).status_code == 404
    _forge_case(session, case.id, assigned_to_id=intruder.id)
    answer = client.get(f"/api/v1/cases/{case.id}", headers=intruder_headers)
    assert answer.status_code == 403 and "Name Hidden" not in answer.text
    contact_id = session.scalar(select(Case.contact_id).where(Case.id == case.id))
    through_case = client.get(f"/api/v1/contacts/{contact_id}", headers=intruder_headers)
    assert through_case.status_code == 403  # nor the case's contact, seen through the forged assignment
    assert _alarms(session, case.code)
    assert f"case {case.code}" in list(seals.broken_rows(session, keyring))


def test_a_verification_forged_by_sql_moves_no_case(client, factory, session) -> None:
    owner = factory.user("caseworker")
    coordinator = factory.user("coordinator")
    case = factory.case(owner, status="verifying")
    _forge_case(session, case.id, verified_by_id=coordinator.id, verified_on=Case.__table__.c.opened_on)
    answer = client.post(
        f"/api/v1/cases/{case.id}/transitions",
        headers=factory.headers(owner),
        json={"to": "planning", "on": date.today().isoformat()},
    )
    assert answer.status_code == 403
    assert session.scalar(select(Case.status).where(Case.id == case.id)) == "verifying"


def test_writers_through_the_orm_stay_correct_without_calling_anything(session, factory) -> None:
    user = factory.user("caseworker")
    other = factory.user("caseworker")
    coordinator = factory.user("coordinator")
    case = factory.case(user)
    user.role = "coordinator"  # a plain attribute change, as any service would make
    auth_service.set_password(session, actor="test", user=other, password="a fresh long password")
    auth_service.set_duress(session, actor="test", user=other, password="a different long duress password")
    case_service.assign(session=session, actor=coordinator, case_id=case.id, username=other.username)
    session.flush()
    session.expire_all()
    assert session.get(User, user.id).role == "coordinator"
    assert session.get(Case, case.id).assigned_to_id == other.id
    assert list(seals.broken_rows(session, crypto.keyring_of(session))) == []


def test_bulk_statements_cannot_skip_the_seal(session, factory) -> None:
    user = factory.user("caseworker")
    with pytest.raises(CryptoError, match="sealed columns"):
        session.execute(update(User).where(User.id == user.id).values(role="admin"))
    # Columns outside the seal still move in bulk (atomic counters, lock-out).
    session.execute(update(User).where(User.id == user.id).values(failed_logins=User.failed_logins + 1))


def _install(tmp_path, url: str):
    settings = make_settings(tmp_path, database_url=url)
    bootstrap.migrate(settings)
    return settings, make_engine(settings)


def _cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HELPLINE_DATA_DIR": str(settings.data_dir),
        "HELPLINE_DATABASE_URL": settings.database_url,
        "HELPLINE_KEY_FILE": str(settings.key_path),
    }
    return subprocess.run([sys.executable, "-m", "app", *args], env=env, capture_output=True, text=True, timeout=120)


def test_existing_rows_are_sealed_once_and_a_cleared_seal_is_not_resealed(
    tmp_path, backend, database_url_factory
) -> None:
    settings, engine = _install(tmp_path, database_url_factory(backend))
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=get_keyring(settings))
        name = auth_service.create_user(s, actor="cli", username="amina", role="caseworker").user.username
    # As the release before seals left it: no seals, an unkeyed SHA-256 chain.
    with engine.begin() as conn:
        conn.execute(text("UPDATE user_account SET seal = NULL"))
        prev = link.GENESIS
        t = AuditEntry.__table__.c
        for row in conn.execute(select(t.seq, t.at, t.actor, t.action, t.target, t.detail).order_by(t.seq)).all():
            value = link.legacy_hash(
                seq=row[0], at=row[1], actor=row[2], action=row[3], target=row[4], detail=row[5], prev=prev
            )
            conn.execute(
                text("UPDATE audit_entry SET prev_hash = :p, hash = :h, key_id = NULL WHERE seq = :s"),
                {"p": prev, "h": value, "s": row[0]},
            )
            prev = value
    bootstrap.migrate(settings)
    ok = _cli(settings, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    # Now a seal cleared by SQL is a broken one, and migrating again does not bless it.
    with engine.begin() as conn:
        conn.execute(text("UPDATE user_account SET seal = NULL, role = 'admin'"))
    bootstrap.migrate(settings)
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=get_keyring(settings))
        with pytest.raises(seals.SealBroken):
            auth_service.get_user(s, username=name)
    with unit_of_work(engine) as s:
        assert s.scalar(select(AuditEntry.action).order_by(AuditEntry.seq.desc()).limit(1)) == "alarm.seal_broken"
    engine.dispose()
    listed = _cli(settings, "audit", "verify")
    assert listed.returncode == 1
    lines = listed.stderr.strip().splitlines()
    assert lines[0].startswith(f"helpline: user {name}: security columns fail their seal")
    assert lines[-1] == "helpline: 1 sealed rows fail their seal (listed above)"


def test_concurrent_writers_of_one_account_never_leave_a_broken_seal(tmp_path, database_url_factory) -> None:
    # PostgreSQL only by construction: SQLite writers are serialised from BEGIN, so this race cannot happen there.
    from app.errors import Conflict

    settings, engine = _install(tmp_path, database_url_factory("postgresql"))
    keyring = get_keyring(settings)
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=keyring)
        user_id = auth_service.create_user(s, actor="cli", username="amina", role="caseworker").user.id
    s1 = crypto.bind(session_factory(engine)(), settings=settings, keyring=keyring)
    loaded = s1.get(User, user_id)  # s1 reads the account ...
    with unit_of_work(engine) as s2:  # ... meanwhile an admin raises the role, and commits
        crypto.bind(s2, settings=settings, keyring=keyring)
        s2.get(User, user_id).role = "coordinator"
    loaded.password_hash = passwords.hash_password("a new long password")  # ... then s1 writes its change
    with pytest.raises(Conflict) as conflict:
        s1.flush()
    assert conflict.value.detail == "this account or case was changed by someone else meanwhile; try again"
    s1.rollback()
    s1.close()
    with unit_of_work(engine) as s3:
        crypto.bind(s3, settings=settings, keyring=keyring)
        assert s3.get(User, user_id).role == "coordinator"  # loads: the seal holds
        assert list(seals.broken_rows(s3, keyring)) == []
    engine.dispose()


def test_a_new_value_given_to_an_expired_account_is_not_mistaken_for_a_forgery(session, factory) -> None:
    # After a rollback every object is expired; a service that then sets a sealed column without reading it
    # first (a lock, an enrolment) makes the next load refresh the others around its new value. The row as
    # stored is what is checked then: a genuine row passes and is resealed with the change.
    user = factory.user("caseworker")
    session.commit()
    session.expire_all()
    user.totp_enrolled = True
    session.flush()
    session.expire_all()
    assert session.get(User, user.id).totp_enrolled is True
    assert list(seals.broken_rows(session, crypto.keyring_of(session))) == []


def test_a_forged_row_is_still_refused_when_the_object_holds_a_new_value(session, factory) -> None:
    # The same path with the stored row changed by SQL: the new value in memory must not carry it past the check.
    user = factory.user("caseworker")
    session.commit()
    _forge(session, "UPDATE user_account SET role = 'admin' WHERE id = :i", i=user.id.hex)
    session.expire_all()
    user.totp_enrolled = True
    with pytest.raises(seals.SealBroken):
        session.flush()
