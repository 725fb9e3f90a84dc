"""The account service one rule at a time: names, roles and passwords refused with their exact words,
what each admin action changes and records, tokens at the edge of their lifetime."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, timezone

import pyotp
import pytest
from sqlalchemy import func, select

from app.auth import duress, passwords, sessions, signin
from app.auth import service as auth_service
from app.auth.models import ApiToken, SignInThrottle, TotpSpent, User, WebSession
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.crypto.models import DataKey
from app.errors import Conflict, Forbidden, Invalid, NotAuthenticated, NotFound
from tests.auth.conftest import attempt, audit_of, wrong_code

NEW = "a brand new passphrase"
DURESS = "tea with grandmother at five"


@pytest.fixture
def clock(session, settings, monkeypatch) -> datetime:
    """The service's clock stopped at a whole second a minute ahead; tokens live 7 minutes."""
    ruled = settings.model_copy(update={"token_ttl_minutes": 7})
    crypto.bind(session, settings=ruled, keyring=get_keyring(settings))
    moment = (datetime.now(UTC) + timedelta(minutes=1)).replace(microsecond=0)
    monkeypatch.setattr(auth_service, "now", lambda: moment)
    return moment


def _field_error(exc: Invalid) -> tuple[str, str]:
    [error] = exc.detail
    assert error["type"] == "value_error" and error["loc"][0] == "body"
    return error["loc"][1], error["msg"]


def _credentials(session, user) -> tuple[int, int]:
    """(API tokens, web sessions) the user holds."""
    session.flush()
    return tuple(
        session.scalar(select(func.count()).select_from(table).where(table.user_id == user.id))
        for table in (ApiToken, WebSession)
    )


def _give_credentials(session, factory, user) -> None:
    factory.token(user)
    sessions.start(session, user=user)
    assert _credentials(session, user) == (1, 1)


def _audited(session, target: str, action: str) -> list[tuple[str, dict]]:
    return [(actor, detail) for actor, found, detail in audit_of(session, target) if found == action]


def test_a_token_is_stored_as_its_sha256():
    assert auth_service.token_hash("helpline token") == bytes.fromhex(
        "5870e3339cfdf4155f40a211239a75333a405b6c666e33360c0cf0dcf7539706"
    )


def test_a_username_is_2_to_32_plain_characters():
    rule = "use 2-32 characters: Latin letters, digits, '.', '-' or '_' (not '.' or '..')"
    for good in ("ab", "a" * 32, "Ivan.P-2_x", "  padded  ", "XX.XX", "._"):
        assert auth_service.validate_username(good) == good.strip()
    for bad in ("a", "a" * 33, "no spaces", "zаrema", ".", "..", "", "  a  "):
        with pytest.raises(Invalid) as refused:
            auth_service.validate_username(bad)
        assert _field_error(refused.value) == ("username", rule), bad


def test_a_new_password_is_refused_with_the_reason_under_the_sites_minimum(session, settings):
    longer = settings.model_copy(update={"password_min_length": 20})
    crypto.bind(session, settings=longer, keyring=get_keyring(settings))
    with pytest.raises(Invalid) as refused:
        auth_service.check_new_password(session, password="nineteen characters", username="ivan")
    assert _field_error(refused.value) == ("password", "use at least 20 characters")
    auth_service.check_new_password(session, password="twenty characters ok", username="ivan")


def test_a_new_account_with_a_generated_password_must_change_it(session, clock):
    made = auth_service.create_user(session, actor="boss", username=" new-worker ", role="coordinator")
    user = made.user
    session.flush()
    assert (
        user.username,
        user.role,
        user.totp_enrolled,
        user.totp_last_step,
        user.failed_logins,
        user.active,
        user.must_change_password,
        user.created_on,
        signin._aware(user.credentials_changed_at),
    ) == ("new-worker", "coordinator", False, 0, 0, True, True, date.today(), clock)
    assert passwords.verify_password(user.password_hash, made.password)
    uri = pyotp.parse_uri(made.otpauth_uri)
    assert (uri.name, uri.issuer, uri.interval) == ("new-worker", "Helpline", 30)
    # The secret handed over is the one sealed for sign-in.
    admitted = attempt(session, "new-worker", made.password, uri.now())
    assert isinstance(admitted, signin.Admitted)
    assert _audited(session, "new-worker", "user.create") == [("boss", {"role": "coordinator"})]


def test_a_new_account_with_a_chosen_password_need_not_change_it(session):
    made = auth_service.create_user(session, actor="boss", username="chosen", role="analyst", password=NEW)
    assert made.password == NEW
    assert made.user.must_change_password is False
    assert passwords.verify_password(made.user.password_hash, NEW)
    with pytest.raises(Invalid) as weak:
        auth_service.create_user(session, actor="boss", username="weakling", role="analyst", password="short")
    assert _field_error(weak.value) == ("password", "use at least 12 characters")


def test_a_role_must_be_one_of_the_four_and_a_name_is_unique_whatever_its_case(session, factory):
    with pytest.raises(Invalid) as refused:
        auth_service.create_user(session, actor="boss", username="someone", role="superuser")
    assert _field_error(refused.value) == ("role", "role must be one of: caseworker, coordinator, analyst, admin")
    factory.user("caseworker", username="Marat")
    with pytest.raises(Conflict) as taken:
        auth_service.create_user(session, actor="boss", username="mARAT", role="caseworker")
    assert taken.value.detail == "a user named 'mARAT' already exists"
    assert session.scalar(select(func.count()).select_from(User).where(func.lower(User.username) == "marat")) == 1


def test_users_are_found_by_exact_name_and_listed_in_order_without_shadows(session, factory):
    worker = factory.user("caseworker", username="zaur")
    factory.user("admin", username="aslan")
    duress.triggered(session, user=worker)
    assert auth_service.get_user(session, username="zaur") is worker
    with pytest.raises(NotFound) as missing:
        auth_service.get_user(session, username="nobody")
    assert missing.value.detail == "no such user"
    assert [u.username for u in auth_service.list_users(session)] == ["aslan", "zaur"]


def test_a_token_lives_exactly_its_lifetime(session, factory, clock, monkeypatch):
    user = factory.user("caseworker")
    token, ttl = auth_service.issue_token(session, user=user)
    assert ttl == 420
    assert len(token) == 43  # 32 random bytes, URL-safe base64
    session.flush()
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == auth_service.token_hash(token)))
    assert (row.user_id, signin._aware(row.created_at), signin._aware(row.expires_at), row.duress) == (
        user.id,
        clock,
        clock + timedelta(minutes=7),
        False,
    )
    assert _audited(session, user.username, "auth.token") == [(user.username, {})]
    monkeypatch.setattr(auth_service, "now", lambda: clock + timedelta(minutes=7) - timedelta(seconds=1))
    assert auth_service.user_for_token(session, token=token) is user
    assert duress.active(session) is False
    monkeypatch.setattr(auth_service, "now", lambda: clock + timedelta(minutes=7))
    with pytest.raises(NotAuthenticated) as expired:
        auth_service.user_for_token(session, token=token)
    assert (expired.value.status_code, expired.value.detail) == (401, "invalid or expired token")


def test_a_token_made_at_the_moment_of_a_credential_change_still_works_and_an_older_one_does_not(
    session, factory, clock, monkeypatch
):
    user = factory.user("caseworker")
    older, _ = auth_service.issue_token(session, user=user)
    monkeypatch.setattr(auth_service, "now", lambda: clock + timedelta(seconds=1))
    same, _ = auth_service.issue_token(session, user=user)
    # The change's time told in Tokyo: the same instant as the newer token's.
    user.credentials_changed_at = (clock + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=9)))
    session.flush()
    assert auth_service.user_for_token(session, token=same) is user
    with pytest.raises(NotAuthenticated, match="^invalid or expired token$"):
        auth_service.user_for_token(session, token=older)


def test_a_token_of_an_inactive_account_or_one_awaiting_a_new_password_is_refused(session, factory, clock):
    inactive = factory.user("caseworker")
    token = factory.token(inactive)
    inactive.active = False
    pending = factory.user("caseworker")
    pending_token = factory.token(pending)
    pending.must_change_password = True
    session.flush()
    for refused in (token, pending_token, "never-issued"):
        with pytest.raises(NotAuthenticated, match="^invalid or expired token$"):
            auth_service.user_for_token(session, token=refused)


def test_a_duress_token_acts_as_the_stand_in_even_awaiting_a_new_password(session, factory, clock):
    user = factory.user("caseworker")
    token, _ = auth_service.issue_token(session, user=user, duress=True)
    user.must_change_password = True
    session.flush()
    assert session.scalar(select(ApiToken.duress).where(ApiToken.user_id == user.id)) is True
    who = auth_service.user_for_token(session, token=token)
    assert (who.id, who.username) == (duress.shadow_id(user), user.username)
    assert duress.active(session) is True


def test_a_role_outside_the_allowed_ones_is_forbidden(factory):
    analyst = factory.user("analyst")
    auth_service.require_role(analyst, "admin", "analyst")
    with pytest.raises(Forbidden) as refused:
        auth_service.require_role(analyst, "admin", "coordinator")
    assert (refused.value.status_code, refused.value.detail) == (403, "not allowed for your role")


def test_setting_a_password_ends_every_credential_and_clears_the_one_time_flag(session, factory, clock):
    account = factory.account("caseworker")
    user = account.user
    auth_service.set_duress(session, actor="test", user=user, password=DURESS)
    user.must_change_password = True
    _give_credentials(session, factory, user)
    with pytest.raises(Invalid) as same:
        auth_service.set_password(session, actor="admin", user=user, password=DURESS)
    assert _field_error(same.value) == ("password", "the password must differ from the duress password")
    with pytest.raises(Invalid) as weak:
        auth_service.set_password(session, actor="admin", user=user, password="short")
    assert _field_error(weak.value) == ("password", "use at least 12 characters")
    assert _credentials(session, user) == (1, 1)
    auth_service.set_password(session, actor="admin", user=user, password=NEW)
    assert passwords.verify_password(user.password_hash, NEW)
    assert not passwords.verify_password(user.password_hash, account.password)
    assert user.must_change_password is False
    assert _credentials(session, user) == (0, 0)
    assert signin._aware(user.credentials_changed_at) == clock
    assert _audited(session, user.username, "user.password") == [("admin", {})]


def test_a_password_without_a_duress_password_set_is_accepted(session, factory):
    user = factory.user("caseworker")
    auth_service.set_password(session, actor="admin", user=user, password=DURESS)
    assert passwords.verify_password(user.password_hash, DURESS)


def test_resetting_two_factor_hands_over_a_new_secret_and_needs_enrolment_again(session, factory, clock):
    account = factory.account("caseworker")
    user = account.user
    user.totp_enrolled = True
    user.totp_last_step = 12345
    _give_credentials(session, factory, user)
    uri = pyotp.parse_uri(auth_service.reset_totp(session, actor="admin", user=user))
    # Sealed under the person's one data key, as at creation: shredding that key still silences it.
    assert session.scalar(select(func.count()).select_from(DataKey).where(DataKey.subject_id == user.id)) == 1
    assert (uri.name, uri.issuer) == (user.username, "Helpline")
    assert uri.secret != account.totp_secret
    assert (user.totp_enrolled, user.totp_last_step) == (False, 0)
    assert _credentials(session, user) == (0, 0)
    assert signin._aware(user.credentials_changed_at) == clock
    assert _audited(session, user.username, "user.totp_reset") == [("admin", {})]
    assert isinstance(attempt(session, user.username, account.password, account.totp().now()), signin.Refused)
    assert isinstance(attempt(session, user.username, account.password, uri.now()), signin.Admitted)


def test_a_code_from_the_new_secret_is_good_in_the_step_the_old_secret_last_signed_in(session, factory):
    account = factory.account("caseworker")
    user = account.user
    moment = time.time()  # both codes for one step: accepted from that step to the next (one step of drift)
    assert isinstance(attempt(session, user.username, account.password, account.totp().at(moment)), signin.Admitted)
    uri = pyotp.parse_uri(auth_service.reset_totp(session, actor="admin", user=user))
    # The old secret's spent steps say nothing about the new one: not a replay.
    assert isinstance(attempt(session, user.username, account.password, uri.at(moment)), signin.Admitted)
    actions = [action for _, action, _ in audit_of(session, user.username) if action.startswith(("user.totp", "auth."))]
    assert actions == ["user.totp_enrolled", "user.totp_reset", "user.totp_enrolled"]


def test_resetting_a_password_hands_over_a_one_time_one(session, factory, clock):
    account = factory.account("caseworker")
    user = account.user
    _give_credentials(session, factory, user)
    one_time = auth_service.reset_password(session, actor="admin", user=user)
    assert passwords.verify_password(user.password_hash, one_time)
    assert not passwords.verify_password(user.password_hash, account.password)
    assert user.must_change_password is True
    assert _credentials(session, user) == (0, 0)
    assert _audited(session, user.username, "user.password_reset") == [("admin", {})]


def test_unlocking_forgets_the_accounts_failures_and_its_names_slow_down_only(session, factory, quick):
    account = factory.account("caseworker")
    user = account.user
    for i in range(2):
        attempt(session, user.username, f"wrong guess {i}!", "123456")
        attempt(session, "a-bystander", f"wrong guess {i}!", "123456")
    for _ in range(quick.lockout_threshold):
        attempt(session, user.username, account.password, wrong_code(account))
    session.expire_all()
    user = session.get(User, user.id)
    assert signin.is_locked(user)
    auth_service.unlock(session, actor="admin", user=user)
    session.flush()
    assert (user.failed_logins, user.last_failure_at, user.locked_until) == (0, None, None)
    remaining = session.scalars(select(SignInThrottle.name_digest)).all()
    assert remaining == [signin.name_digest(session, "a-bystander")]
    assert _audited(session, user.username, "user.unlock") == [("admin", {})]


def test_changing_ones_own_password_checks_the_choice_before_spending_the_code(session, factory):
    account = factory.account("caseworker")
    user = account.user
    code = account.totp().now()
    with pytest.raises(Invalid) as differ:
        auth_service.change_own_password(
            session, user=user, current=account.password, otp=code, password=NEW, repeat=NEW + "!"
        )
    assert _field_error(differ.value) == ("repeat", "the two passwords differ")
    with pytest.raises(Invalid) as weak:
        auth_service.change_own_password(
            session, user=user, current=account.password, otp=code, password="short", repeat="short"
        )
    assert _field_error(weak.value) == ("password", "use at least 12 characters")
    assert session.scalars(select(TotpSpent.step).where(TotpSpent.user_id == user.id)).all() == []
    with pytest.raises(signin.NotConfirmed):
        auth_service.change_own_password(
            session, user=user, current=account.password, otp=wrong_code(account), password=NEW, repeat=NEW
        )
    auth_service.change_own_password(session, user=user, current=account.password, otp=code, password=NEW, repeat=NEW)
    assert passwords.verify_password(user.password_hash, NEW)
    assert _audited(session, user.username, "user.password") == [(user.username, {})]


def test_a_duress_password_is_set_and_removed_only_with_proof_from_the_account_page(session, factory):
    account = factory.account("caseworker")
    user = account.user
    with pytest.raises(signin.NotConfirmed):
        auth_service.set_duress(
            session,
            actor=user.username,
            user=user,
            password=DURESS,
            current="wrong password!",
            otp=account.totp().now(),
        )
    assert user.duress_hash is None
    with pytest.raises(signin.NotConfirmed):
        auth_service.set_duress(session, actor=user.username, user=user, password=DURESS, current=account.password)
    assert user.duress_hash is None
    with pytest.raises(Invalid) as weak:
        auth_service.set_duress(session, actor=user.username, user=user, password="short")
    assert _field_error(weak.value) == ("password", "use at least 12 characters")
    with pytest.raises(Invalid) as same:
        auth_service.set_duress(session, actor=user.username, user=user, password=account.password)
    assert _field_error(same.value) == ("duress", "the duress password must differ from the password")
    assert user.duress_hash is None
    auth_service.set_duress(
        session, actor=user.username, user=user, password=DURESS, current=account.password, otp=account.totp().now()
    )
    assert passwords.verify_password(user.duress_hash, DURESS)
    auth_service.set_duress(session, actor="admin", user=user, password="")
    assert user.duress_hash is None
    assert [
        (actor, action) for actor, action, _ in audit_of(session, user.username) if action.startswith("user.duress")
    ] == [(user.username, "user.duress_set"), ("admin", "user.duress_removed")]


def test_ending_one_persons_sessions_leaves_the_others(session, factory, clock):
    lost_phone, other = factory.user("caseworker"), factory.user("caseworker")
    for user in (lost_phone, other):
        _give_credentials(session, factory, user)
    auth_service.end_sessions(session, actor="admin", user=lost_phone)
    assert _credentials(session, lost_phone) == (0, 0)
    assert _credentials(session, other) == (1, 1)
    assert signin._aware(lost_phone.credentials_changed_at) == clock
    assert _audited(session, lost_phone.username, "sessions.end") == [("admin", {})]


def test_ending_all_sessions_keeps_the_named_person_or_role_and_counts_the_rest(session, factory, clock):
    admin, coordinator = factory.user("admin"), factory.user("coordinator")
    workers = [factory.user("caseworker"), factory.user("caseworker")]
    everyone = session.scalar(select(func.count()).select_from(User))
    for user in (admin, coordinator, *workers):
        _give_credentials(session, factory, user)
    assert auth_service.end_all_sessions(session, actor=admin.username, keep=admin) == everyone - 1
    assert [_credentials(session, u) for u in (admin, coordinator, *workers)] == [(1, 1), (0, 0), (0, 0), (0, 0)]
    assert _audited(session, "*", "sessions.end_all")[-1] == (admin.username, {"accounts": everyone - 1})
    for user in (coordinator, *workers):
        _give_credentials(session, factory, user)
    caseworkers = session.scalar(select(func.count()).select_from(User).where(User.role == "caseworker"))
    assert (
        auth_service.end_all_sessions(session, actor=admin.username, keep_role="caseworker") == everyone - caseworkers
    )
    assert [_credentials(session, u) for u in (coordinator, *workers)] == [(0, 0), (1, 1), (1, 1)]
    assert auth_service.end_all_sessions(session, actor=admin.username) == everyone


def test_deactivating_ends_every_credential_and_records_who(session, factory, clock):
    account = factory.account("caseworker")
    user = account.user
    _give_credentials(session, factory, user)
    auth_service.deactivate(session, actor="admin", user=user)
    assert user.active is False
    assert _credentials(session, user) == (0, 0)
    assert signin._aware(user.credentials_changed_at) == clock
    assert _audited(session, user.username, "user.deactivate") == [("admin", {})]
    assert isinstance(attempt(session, user.username, account.password, account.totp().now()), signin.Refused)


def test_a_password_holding_the_persons_own_name_is_refused_wherever_it_is_chosen(session, factory):
    account = factory.account("caseworker", username="zarina")
    named = "Zarina keeps the key"
    rule = ("password", "the password must not contain the user name")
    with pytest.raises(Invalid) as by_admin:
        auth_service.set_password(session, actor="admin", user=account.user, password=named)
    assert _field_error(by_admin.value) == rule
    with pytest.raises(Invalid) as by_self:
        auth_service.change_own_password(
            session, user=account.user, current=account.password, otp=account.totp().now(), password=named, repeat=named
        )
    assert _field_error(by_self.value) == rule
    # Refused before the code was looked at: the person keeps it for their next try.
    assert session.scalars(select(TotpSpent.step).where(TotpSpent.user_id == account.user.id)).all() == []
    with pytest.raises(Invalid) as at_creation:
        auth_service.create_user(
            session, actor="admin", username="Marat", role="caseworker", password="marat the brave"
        )
    assert _field_error(at_creation.value) == rule
    with pytest.raises(Invalid) as as_duress:
        auth_service.set_duress(session, actor="admin", user=account.user, password=named)
    assert _field_error(as_duress.value) == rule
