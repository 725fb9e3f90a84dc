"""Sign-in at its edges: each limit at its exact moment, the counters as the database holds them, the
duress and enrolment paths, the re-proof before a credential change, and what the audit log records."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta, timezone

import pyotp
import pytest
from sqlalchemy import select, update

from app.auth import passwords, signin
from app.auth import service as auth_service
from app.auth.models import SignInThrottle, TotpSpent, User
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from tests.auth.conftest import attempt, audit_of, wrong_code

DURESS = "tea with grandmother at five"


@pytest.fixture
def clock(session, settings, monkeypatch) -> datetime:
    """Sign-in's clock stopped at a whole second, under written-out limits: a lock after 3 wrong codes
    for 7 minutes, failures forgotten after 45 quiet minutes, waits of 10 ms doubling up to 80 ms."""
    ruled = settings.model_copy(
        update={
            "sign_in_delay_ms": 10,
            "sign_in_delay_cap_ms": 80,
            "lockout_threshold": 3,
            "lockout_minutes": 7,
            "failure_decay_minutes": 45,
        }
    )
    crypto.bind(session, settings=ruled, keyring=get_keyring(settings))
    moment = datetime.now(UTC).replace(microsecond=0)
    monkeypatch.setattr(signin, "_now", lambda: moment)
    return moment


def _counters(session, user) -> tuple[int, datetime | None, datetime | None]:
    """(failed_logins, last_failure_at, locked_until) as the database holds them, times in UTC."""
    failed, last, until = session.execute(
        select(User.failed_logins, User.last_failure_at, User.locked_until).where(User.id == user.id)
    ).one()
    return failed, last and signin._aware(last), until and signin._aware(until)


def _step_row(session, user) -> tuple[int, bool]:
    session.flush()  # the step is set on the loaded account, written with the unit of work
    return session.execute(select(User.totp_last_step, User.totp_enrolled).where(User.id == user.id)).one()


def _spent(session, user) -> list[int]:
    return list(session.scalars(select(TotpSpent.step).where(TotpSpent.user_id == user.id).order_by(TotpSpent.step)))


def _spent_elsewhere(session, account) -> str:
    """The current code, its step already spent by another worker that loaded the account at the same time."""
    moment = time.time()
    session.add(TotpSpent(user_id=account.user.id, step=int(moment // 30)))
    session.flush()
    return account.totp().at(moment)


def test_the_refusal_is_one_fixed_sentence_with_status_401(session):
    refused = attempt(session, "nobody-at-all", "some password!", "123456")
    assert isinstance(refused, signin.Refused)
    assert refused.status_code == 401
    assert refused.detail == "sign-in failed: wrong name, password or code, or the account is locked for a while"
    assert refused.delay == 0.0


def test_the_throttle_keys_a_name_by_an_hmac_of_its_case_folded_form(session):
    _, _, key = crypto.active_index_key(session, column="sign_in_name")
    # casefold, not lower: "ß" folds to "ss".
    expected = hmac.new(key, "ädmin strasse".encode(), hashlib.sha256).digest()
    assert signin.name_digest(session, "ÄDMIN Straße") == expected
    assert signin.name_digest(session, "ädmin strasse") == expected


def test_the_wait_doubles_from_the_base_and_stops_at_the_cap(settings):
    small = settings.model_copy(update={"sign_in_delay_ms": 10, "sign_in_delay_cap_ms": 80})
    waits = [signin.delay_for(small, n) for n in (-1, 0, 1, 2, 3, 4, 5, 1000)]
    assert waits == [0.0, 0.0, 0.01, 0.02, 0.04, 0.08, 0.08, 0.08]
    largest = settings.model_copy(update={"sign_in_delay_ms": 1, "sign_in_delay_cap_ms": 60_000})
    assert signin.delay_for(largest, 16) == 32.768
    assert signin.delay_for(largest, 17) == 60.0
    assert signin.delay_for(largest, 10**6) == 60.0


def test_a_lock_ends_at_its_exact_moment(factory):
    user = factory.user("caseworker")
    until = datetime.now(UTC) + timedelta(minutes=10)
    user.locked_until = until
    assert signin.is_locked(user, until - timedelta(microseconds=1))
    assert not signin.is_locked(user, until)
    assert not signin.is_locked(user, until + timedelta(minutes=1))  # the moment given, not the clock
    assert signin.is_locked(user)  # no moment: now, ten minutes before the end
    user.locked_until = until.astimezone(timezone(timedelta(hours=9)))  # the same instant, told in Tokyo
    assert signin.is_locked(user, until - timedelta(seconds=1))
    assert not signin.is_locked(user, until)
    user.locked_until = until.replace(tzinfo=None)  # as SQLite gives it back: UTC without a zone
    assert signin.is_locked(user, until - timedelta(seconds=1))
    assert not signin.is_locked(user, until)
    user.locked_until = None
    assert not signin.is_locked(user, until - timedelta(days=1))


def test_spaces_around_a_typed_name_are_not_part_of_it(session, factory, clock):
    account = factory.account("caseworker")
    for i in range(2):
        assert attempt(session, f" \t{account.username}  ", f"wrong guess {i}!", "123456").delay == [0.0, 0.01][i]
    # Counted under the bare name: its third attempt waits for two failures.
    admitted = attempt(session, f"  {account.username}\n", account.password, account.totp().now())
    assert isinstance(admitted, signin.Admitted)
    assert admitted.user.id == account.user.id
    assert (admitted.delay, admitted.duress) == (0.02, False)


def test_a_success_clears_wrong_codes_counted_behind_the_loaded_account(session, factory, clock):
    account = factory.account("caseworker")
    for _ in range(2):
        assert isinstance(attempt(session, account.username, account.password, wrong_code(account)), signin.Refused)
    # The account object in this session was loaded before the failures and never refreshed.
    assert _counters(session, account.user) == (2, clock, None)
    assert isinstance(attempt(session, account.username, account.password, account.totp().now()), signin.Admitted)
    assert _counters(session, account.user) == (0, None, None)
    # Two more wrong codes (2 + 2 would pass the threshold of 3) do not lock.
    for _ in range(2):
        attempt(session, account.username, account.password, wrong_code(account))
    assert _counters(session, account.user) == (2, clock, None)


def test_an_inactive_account_is_refused_and_slowed_like_a_wrong_password(session, factory, clock):
    account = factory.account("caseworker")
    auth_service.deactivate(session, actor="admin", user=account.user)
    session.flush()
    first = attempt(session, account.username, account.password, account.totp().now())
    assert isinstance(first, signin.Refused)
    assert first.delay == 0.0
    second = attempt(session, account.username, account.password, account.totp().now())
    assert isinstance(second, signin.Refused)
    assert second.delay == 0.01
    assert _counters(session, account.user) == (0, None, None)  # no code was ever checked


def test_the_duress_password_admits_as_duress_while_the_account_is_held(session, factory, clock):
    account = factory.account("caseworker")
    auth_service.set_duress(session, actor="test", user=account.user, password=DURESS)
    account.user.totp_enrolled = True
    account.user.locked_until = signin.HELD
    session.flush()
    # The real password, with a good code, meets the hold.
    held = attempt(session, account.username, account.password, account.totp().now())
    assert isinstance(held, signin.Refused)
    admitted = attempt(session, account.username, DURESS, account.totp().now())
    assert isinstance(admitted, signin.Admitted)
    assert admitted.user.id == account.user.id
    assert (admitted.duress, admitted.delay) == (True, 0.01)
    # Like any sign-in that gets in, it clears the name's slow-down.
    assert attempt(session, account.username, "wrong guess!!", "123456").delay == 0.0


def test_the_real_password_admits_without_duress_when_a_duress_password_is_set(session, factory, clock):
    account = factory.account("caseworker")
    auth_service.set_duress(session, actor="test", user=account.user, password=DURESS)
    session.flush()
    admitted = attempt(session, account.username, account.password, account.totp().now())
    assert isinstance(admitted, signin.Admitted)
    assert (admitted.duress, admitted.delay) == (False, 0.0)


def test_a_wrong_code_waits_the_names_delay_and_counts_with_either_password(session, factory, clock):
    account = factory.account("caseworker")
    auth_service.set_duress(session, actor="test", user=account.user, password=DURESS)
    session.flush()
    assert [attempt(session, account.username, f"wrong guess {i}!", "123456").delay for i in range(2)] == [0.0, 0.01]
    with_password = attempt(session, account.username, account.password, wrong_code(account))
    assert isinstance(with_password, signin.Refused)
    assert with_password.delay == 0.02
    with_duress = attempt(session, account.username, DURESS, wrong_code(account))
    assert isinstance(with_duress, signin.Refused)
    assert with_duress.delay == 0.02
    assert _counters(session, account.user) == (2, clock, None)
    assert [(action, detail) for _, action, detail in audit_of(session, account.username)][-2:] == [
        ("auth.failed", {"failures": 1}),
        ("auth.failed", {"failures": 2}),
    ]


def test_the_third_wrong_code_locks_for_exactly_the_lockout_minutes(session, factory, clock):
    account, bystander = factory.account("caseworker"), factory.account("caseworker")
    # An earlier lock, long over, is replaced by the new one.
    account.user.locked_until = clock - timedelta(hours=1)
    session.flush()
    for failures in (1, 2):
        attempt(session, account.username, account.password, wrong_code(account))
        assert _counters(session, account.user) == (failures, clock, clock - timedelta(hours=1))
    attempt(session, account.username, account.password, wrong_code(account))
    assert _counters(session, account.user) == (3, clock, clock + timedelta(minutes=7))
    assert _counters(session, bystander.user) == (0, None, None)
    failures = [entry for entry in audit_of(session, account.username) if entry[1] == "auth.failed"]
    assert failures == [
        (account.username, "auth.failed", {"failures": 1}),
        (account.username, "auth.failed", {"failures": 2}),
        (account.username, "auth.failed", {"failures": 3, "locked_minutes": 7}),
    ]


def test_a_wrong_code_lock_never_shortens_a_duress_hold(session, factory, clock):
    account = factory.account("caseworker")
    auth_service.set_duress(session, actor="test", user=account.user, password=DURESS)
    account.user.locked_until = signin.HELD
    session.flush()
    for _ in range(3):
        assert isinstance(attempt(session, account.username, DURESS, wrong_code(account)), signin.Refused)
    assert _counters(session, account.user) == (3, clock, signin.HELD)


def test_wrong_codes_are_forgotten_only_once_older_than_the_decay_period(session, factory, clock):
    edge, old = factory.account("caseworker"), factory.account("caseworker")
    for account, last in ((edge, clock - timedelta(minutes=45)), (old, clock - timedelta(minutes=45, seconds=1))):
        session.execute(update(User).where(User.id == account.user.id).values(failed_logins=2, last_failure_at=last))
    attempt(session, edge.username, edge.password, wrong_code(edge))
    attempt(session, old.username, old.password, wrong_code(old))
    assert _counters(session, edge.user) == (3, clock, clock + timedelta(minutes=7))
    assert _counters(session, old.user) == (1, clock, None)


def test_wrong_passwords_are_forgotten_only_once_older_than_the_decay_period(session, clock):
    cutoff = clock - timedelta(minutes=45)
    rows = {"edge-name": cutoff, "gone-name": cutoff - timedelta(seconds=1)}
    rows |= {"bystander-edge": cutoff, "bystander-gone": cutoff - timedelta(seconds=1)}
    digests = {name: signin.name_digest(session, name) for name in rows}
    for name, last in rows.items():
        session.add(SignInThrottle(name_digest=digests[name], failures=3, last_failure_at=last))
    session.flush()

    def left() -> dict[str, tuple[int, datetime]]:
        found = {
            digest: (failures, signin._aware(last))
            for digest, failures, last in session.execute(
                select(SignInThrottle.name_digest, SignInThrottle.failures, SignInThrottle.last_failure_at)
            )
        }
        return {name: found[digest] for name, digest in digests.items() if digest in found}

    # Three failures 45 minutes and one second ago: forgotten, so no wait, and the count starts again.
    assert attempt(session, "gone-name", "some password!", "123456").delay == 0.0
    assert left() == {"edge-name": (3, cutoff), "gone-name": (1, clock), "bystander-edge": (3, cutoff)}
    # Three failures exactly 45 minutes ago still count: the wait for three, and a fourth is added.
    assert attempt(session, "edge-name", "some password!", "123456").delay == 0.04
    assert left() == {"edge-name": (4, clock), "gone-name": (1, clock), "bystander-edge": (3, cutoff)}


def test_a_first_sign_in_proves_enrolment_once_and_records_each_step(session, factory, clock):
    account = factory.account("caseworker")
    assert _step_row(session, account.user) == (0, False)
    moment = time.time()
    step = int(moment // 30)
    assert isinstance(attempt(session, account.username, account.password, account.totp().at(moment)), signin.Admitted)
    assert _step_row(session, account.user) == (step, True)
    assert _spent(session, account.user) == [step]
    # The next step's code (one step of clock drift) admits too, and moves the step on.
    nxt = account.totp().at(moment + 30)
    assert isinstance(attempt(session, account.username, account.password, nxt), signin.Admitted)
    assert _step_row(session, account.user) == (step + 1, True)
    # The earlier code is genuine but older than the last step: a replay, refused and not counted.
    replay = attempt(session, account.username, account.password, account.totp().at(moment))
    assert isinstance(replay, signin.Refused)
    assert _counters(session, account.user) == (0, None, None)
    actions = [(actor, action) for actor, action, _ in audit_of(session, account.username) if actor != "test"]
    assert actions == [
        (account.username, "user.totp_enrolled"),
        (account.username, "auth.code_replayed"),
    ]


def test_a_code_spent_by_a_concurrent_sign_in_is_refused_as_a_replay(session, factory, clock):
    account = factory.account("caseworker")
    refused = attempt(session, account.username, account.password, _spent_elsewhere(session, account))
    assert isinstance(refused, signin.Refused)
    assert _step_row(session, account.user) == (0, False)
    assert _counters(session, account.user) == (0, None, None)
    assert [action for actor, action, _ in audit_of(session, account.username) if actor != "test"] == [
        "auth.code_replayed"
    ]


def test_spent_steps_are_kept_four_steps_then_swept(session, factory):
    user, other = factory.user("caseworker"), factory.user("caseworker")
    assert signin._spend(session, other, 1000)
    assert signin._spend(session, other, 1004)  # the same step, spent by someone else
    assert signin._spend(session, user, 1000)
    assert signin._spend(session, user, 1004)
    assert _spent(session, user) == [1000, 1004]
    assert signin._spend(session, user, 1005)
    assert _spent(session, user) == [1004, 1005]
    assert not signin._spend(session, user, 1005)
    assert _spent(session, user) == [1004, 1005]
    assert _spent(session, other) == [1000, 1004]  # another person's steps are theirs to sweep


def test_confirm_needs_the_password_then_a_code_and_spends_it(session, factory, clock):
    account = factory.account("caseworker")
    user = account.user
    moment = time.time()
    step = int(moment // 30)
    code = account.totp().at(moment)
    # A wrong password: refused before any code is looked at, nothing counted or spent.
    assert signin.confirm(session, user=user, password="not the password at all", otp=code) is False
    assert _counters(session, user) == (0, None, None)
    assert _spent(session, user) == []
    # The right password and a wrong code: refused, and counted like a wrong code at sign-in.
    assert signin.confirm(session, user=user, password=account.password, otp=wrong_code(account)) is False
    assert _counters(session, user) == (1, clock, None)
    assert audit_of(session, account.username)[-1] == (account.username, "auth.failed", {"failures": 1})
    # Both right: confirmed, and the step is spent.
    assert signin.confirm(session, user=user, password=account.password, otp=code) is True
    assert user.totp_last_step == step
    assert _spent(session, user) == [step]
    # The same code once more is no proof.
    assert signin.confirm(session, user=user, password=account.password, otp=code) is False
    assert user.totp_last_step == step


def test_confirm_refuses_a_code_another_request_spent_first(session, factory, clock):
    account = factory.account("caseworker")
    code = _spent_elsewhere(session, account)
    assert signin.confirm(session, user=account.user, password=account.password, otp=code) is False
    assert account.user.totp_last_step == 0
    assert _counters(session, account.user) == (0, None, None)


def test_a_change_with_a_wrong_current_password_is_a_422_on_the_current_field(session, factory):
    account = factory.account("caseworker")
    with pytest.raises(signin.NotConfirmed) as refused:
        auth_service.change_own_password(
            session,
            user=account.user,
            current="not the password at all",
            otp=account.totp().now(),
            password="a brand new passphrase",
            repeat="a brand new passphrase",
        )
    assert refused.value.status_code == 422
    assert refused.value.keep_changes is True
    assert refused.value.detail == [
        {"loc": ["body", "current"], "msg": "the current password or the code is wrong", "type": "value_error"}
    ]


def test_a_count_left_without_a_time_starts_again_and_a_success_clears_it(session, factory, clock):
    # Accounts from before failures carried a time may hold a count with none: it is not recent.
    counted, cleared = factory.account("caseworker"), factory.account("caseworker")
    for account in (counted, cleared):
        session.execute(update(User).where(User.id == account.user.id).values(failed_logins=4, last_failure_at=None))
    attempt(session, counted.username, counted.password, wrong_code(counted))
    assert _counters(session, counted.user) == (1, clock, None)
    assert isinstance(attempt(session, cleared.username, cleared.password, cleared.totp().now()), signin.Admitted)
    assert _counters(session, cleared.user) == (0, None, None)


def test_a_code_that_happens_to_match_the_dummy_secret_is_refused_like_any_other(session, clock, monkeypatch):
    secret = passwords.new_totp_secret()
    monkeypatch.setattr(signin, "_DUMMY_TOTP", secret)
    refused = attempt(session, "no-such-name", "some password!", pyotp.TOTP(secret).now())
    assert isinstance(refused, signin.Refused)
    assert refused.delay == 0.0
