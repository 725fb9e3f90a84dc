"""The duress rules one by one: the shadow account's fixed id and stored row, the stand-in, what a
trigger sets off, and where a hold ends and a timed lock begins."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from app.attention.models import AttentionItem
from app.auth import duress, sessions, signin
from app.auth import service as auth_service
from app.auth.models import ApiToken, User, WebSession
from tests.auth.conftest import attempt, audit_of


def _shadow_of(session, user) -> User:
    session.flush()
    return session.execute(
        select(User).where(User.id == duress.shadow_id(user)).execution_options(populate_existing=True)
    ).scalar_one()


def test_the_shadow_id_is_a_fixed_uuid5_of_the_persons_id():
    # Stored: what was taken under duress is kept under this id; another derivation would orphan it.
    person = User(id=uuid.UUID("0123456789abcdef0123456789abcdef"))
    assert duress.shadow_id(person) == uuid.UUID("f77d1766-1a0d-500d-a553-824623b7a274")


def test_only_names_that_start_with_the_prefix_are_shadows():
    assert duress.is_shadow("~duress-0123456789abcdef0123456789abcdef")
    assert not duress.is_shadow("duress-0123")
    assert not duress.is_shadow("ivan~duress-")


def test_a_trigger_ends_every_credential_holds_the_account_and_raises_the_alarm_once(session, factory, tokyo_clock):
    account = factory.account("caseworker")
    user = account.user
    user.created_on = date(2024, 5, 1)  # the shadow account is made today, whenever its person was
    factory.token(user)
    sessions.start(session, user=user)
    before = datetime.now(UTC)
    duress.triggered(session, user=user)
    after = datetime.now(UTC)
    session.flush()
    assert user.locked_until == signin.HELD
    assert before <= signin._aware(user.credentials_changed_at) <= after
    for table in (ApiToken, WebSession):
        assert session.scalar(select(func.count()).select_from(table).where(table.user_id == user.id)) == 0
    shadow = _shadow_of(session, user)
    assert (
        shadow.username,
        shadow.role,
        shadow.password_hash,
        shadow.totp_secret_ct,
        shadow.totp_enrolled,
        shadow.totp_last_step,
        shadow.failed_logins,
        shadow.active,
        shadow.must_change_password,
        shadow.created_on,
        shadow.duress_hash,
        shadow.locked_until,
    ) == ("~duress-" + user.id.hex, "caseworker", "!", b"", True, 0, 0, False, False, date.today(), None, None)
    assert before <= signin._aware(shadow.credentials_changed_at) <= after
    items = session.execute(
        select(AttentionItem.kind, AttentionItem.raised_by, AttentionItem.record_code, AttentionItem.resolved_on)
    ).all()
    assert items == [("duress", user.username, None, None)]
    assert (user.username, duress.ALARM_ACTION, {}) in audit_of(session, user.username)
    assert duress.ALARM_ACTION == "auth.duress"
    # A second trigger (after an unlock) finds the shadow account already there.
    auth_service.unlock(session, actor="admin", user=user)
    duress.triggered(session, user=user)
    session.flush()
    assert session.scalar(select(func.count()).select_from(User).where(User.id == duress.shadow_id(user))) == 1
    # The shadow account is nobody's to sign in to or to list.
    assert [u.username for u in auth_service.list_users(session)] == [user.username]
    assert isinstance(attempt(session, shadow.username, "!", "123456"), signin.Refused)


def test_the_stand_in_has_the_persons_name_role_and_dates_and_the_shadows_id(factory):
    user = factory.user("coordinator")
    user.created_on = date(2024, 5, 1)
    stand_in = duress.stand_in(user)
    assert (
        stand_in.id,
        stand_in.username,
        stand_in.role,
        stand_in.active,
        stand_in.must_change_password,
        stand_in.totp_enrolled,
        stand_in.totp_last_step,
        stand_in.failed_logins,
        stand_in.password_hash,
        stand_in.credentials_changed_at,
        stand_in.created_on,
    ) == (
        duress.shadow_id(user),
        user.username,
        "coordinator",
        True,
        False,
        True,
        0,
        0,
        "!",
        user.credentials_changed_at,
        date(2024, 5, 1),
    )


def test_a_hold_is_a_lock_past_2200_and_a_timed_lock_is_not(factory):
    user = factory.user("caseworker")
    far = datetime(2200, 1, 1, tzinfo=UTC)
    for until, held in (
        (None, False),
        (datetime.now(UTC) + timedelta(minutes=15), False),
        (far, False),
        (far + timedelta(microseconds=1), True),
        (signin.HELD, True),
        (signin.HELD.replace(tzinfo=None), True),  # as SQLite gives it back
    ):
        user.locked_until = until
        assert duress.is_held(user) is held, until


def test_open_alarms_name_the_held_accounts_in_order(session, factory):
    far = datetime(2200, 1, 1, tzinfo=UTC)
    for name, until in (
        ("zarema", signin.HELD),
        ("adam", signin.HELD),
        ("at-the-edge", far),
        ("timed", datetime.now(UTC) + timedelta(minutes=15)),
        ("free", None),
    ):
        factory.user("caseworker", username=name).locked_until = until
    session.flush()
    assert duress.open_alarms(session) == ["adam", "zarema"]


def test_the_unit_of_work_is_marked_for_duress_or_not(session):
    assert duress.active(session) is False
    duress.mark(session, True)
    assert duress.active(session) is True
    duress.mark(session, False)
    assert duress.active(session) is False


def test_each_persons_duress_alarm_has_its_own_queue_entry_and_a_repeat_adds_none(session, factory):
    first, second = factory.account("caseworker").user, factory.account("coordinator").user
    duress.triggered(session, user=first)
    duress.triggered(session, user=second)  # while the first alarm is still open
    auth_service.unlock(session, actor="admin", user=first)
    duress.triggered(session, user=first)  # again, before a coordinator has dealt with the first entry
    session.flush()
    open_items = session.execute(
        select(AttentionItem.raised_by)
        .where(AttentionItem.kind == "duress", AttentionItem.resolved_on.is_(None))
        .order_by(AttentionItem.raised_by)
    ).scalars()
    assert list(open_items) == sorted([first.username, second.username])
