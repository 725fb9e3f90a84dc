"""Sign-in rules at the service: wrong passwords slow a name and never lock; wrong codes after the
right password lock; failures decay; every name does the same work and gets the same answer."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, select, update

from app.auth import passwords, signin
from app.auth import service as auth_service
from app.auth.models import SignInThrottle, User
from tests.auth.conftest import attempt, wrong_code


def test_wrong_passwords_slow_the_name_down_but_never_lock_it(session, factory, quick):
    account = factory.account("admin")
    delays = []
    for i in range(quick.lockout_threshold * 4):
        refused = attempt(session, account.username, f"wrong guess {i:04d}", "123456")
        assert isinstance(refused, signin.Refused)
        delays.append(refused.delay)
    # Growing (doubling from the base), then capped.
    assert delays[:5] == [0.0, 0.01, 0.02, 0.04, 0.08]
    assert set(delays[5:]) == {0.08}
    session.expire_all()
    user = session.get(User, account.user.id)
    assert user.locked_until is None and user.failed_logins == 0
    # The real person, with the right password and a code, still gets in (after the same wait).
    admitted = attempt(session, account.username, account.password, account.totp().now())
    assert isinstance(admitted, signin.Admitted)
    assert admitted.delay == 0.08
    # ... and their success clears the slow-down for the next time.
    assert attempt(session, account.username, "wrong again!!", "123456").delay == 0.0


def test_an_unknown_name_is_slowed_down_exactly_like_a_real_one(session, factory, quick):
    account = factory.account("caseworker")
    real = [attempt(session, account.username, f"guess {i}", "123456").delay for i in range(6)]
    ghost = [attempt(session, "nobody-" + account.username, f"guess {i}", "123456").delay for i in range(6)]
    assert real == ghost
    assert real[-1] > real[1] > 0


def test_wrong_codes_after_the_right_password_lock_until_unlocked(session, factory, quick):
    account = factory.account("caseworker")
    for _ in range(quick.lockout_threshold):
        assert isinstance(attempt(session, account.username, account.password, wrong_code(account)), signin.Refused)
    session.expire_all()
    assert signin.is_locked(session.get(User, account.user.id))
    locked = attempt(session, account.username, account.password, account.totp().now())
    assert isinstance(locked, signin.Refused)
    assert locked.detail == signin.SIGN_IN_FAILED
    user = session.get(User, account.user.id)
    auth_service.unlock(session, actor="admin", user=user)
    assert isinstance(attempt(session, account.username, account.password, account.totp().now()), signin.Admitted)


def test_code_failures_decay_after_a_quiet_period(session, factory, quick):
    account = factory.account("caseworker")
    for _ in range(quick.lockout_threshold - 1):
        attempt(session, account.username, account.password, wrong_code(account))
    session.expire_all()
    assert session.get(User, account.user.id).failed_logins == quick.lockout_threshold - 1
    # Days later (the account above kept its failures for days before this was fixed):
    session.execute(
        update(User)
        .where(User.id == account.user.id)
        .values(last_failure_at=signin._now() - timedelta(minutes=quick.failure_decay_minutes + 1))
    )
    attempt(session, account.username, account.password, wrong_code(account))
    session.expire_all()
    user = session.get(User, account.user.id)
    assert user.failed_logins == 1
    assert not signin.is_locked(user)


def test_password_slow_down_decays_too(session, factory, quick):
    account = factory.account("caseworker")
    for i in range(4):
        attempt(session, account.username, f"guess {i}", "123456")
    assert attempt(session, account.username, "guess x", "123456").delay > 0
    session.execute(
        update(SignInThrottle).values(
            last_failure_at=signin._now() - timedelta(minutes=quick.failure_decay_minutes + 1)
        )
    )
    assert attempt(session, account.username, "guess y", "123456").delay == 0.0


class _Work:
    """Counts what one sign-in attempt does: argon2 verifications, TOTP comparisons, SQL statements."""

    def __init__(self, monkeypatch, session) -> None:
        self.verify = self.totp = self.sql = 0
        real_hasher, real_match = passwords._hasher, passwords.match_totp
        work = self

        class CountingHasher:
            def verify(self, *args, **kwargs):
                work.verify += 1
                return real_hasher.verify(*args, **kwargs)

            def __getattr__(self, name):
                return getattr(real_hasher, name)

        def match(*args, **kwargs):
            self.totp += 1
            return real_match(*args, **kwargs)

        monkeypatch.setattr(passwords, "_hasher", CountingHasher())
        monkeypatch.setattr(passwords, "match_totp", match)

        def count(*_args) -> None:
            self.sql += 1

        event.listen(session.connection(), "before_cursor_execute", count)

    def reset(self) -> tuple[int, int, int]:
        seen = (self.verify, self.totp, self.sql)
        self.verify = self.totp = self.sql = 0
        return seen


def test_unknown_locked_pending_and_active_names_do_the_same_work_and_get_the_same_answer(
    session, factory, quick, monkeypatch
):
    active = factory.account("caseworker")
    active.user.totp_enrolled = True
    pending = factory.account("caseworker")  # never signed in: TOTP not yet proven
    locked = factory.account("caseworker")
    locked.user.locked_until = signin._now() + timedelta(minutes=15)
    duressed = factory.account("caseworker")
    auth_service.set_duress(session, actor="test", user=duressed.user, password="a quite different phrase")
    session.flush()
    # Caches (index key, key derivation) warm up on a first attempt, as on a running server.
    attempt(session, "warm-up", "x" * 12, "123456")
    work = _Work(monkeypatch, session)
    cases = {
        "unknown": ("no-such-name", "some password!", "123456"),
        "active, wrong password": (active.username, "some password!", active.totp().now()),
        "pending, wrong password": (pending.username, "some password!", pending.totp().now()),
        "locked, right password and code": (locked.username, locked.password, locked.totp().now()),
        "has a duress password, wrong password": (duressed.username, "some password!", "123456"),
    }
    seen = {}
    for label, (name, password, otp) in cases.items():
        outcome = attempt(session, name, password, otp)
        assert isinstance(outcome, signin.Refused), label
        seen[label] = (outcome.status_code, outcome.detail, *work.reset())
    first = next(iter(seen.values()))
    assert first[2:4] == (2, 1)  # two argon2 verifications (password, duress password), one TOTP comparison
    assert all(v == first for v in seen.values()), seen
    # Holding the password of a pending account (made, or reset, and not yet used) with an empty code
    # is no way in either, and looks exactly like the same attempt at an account in use.
    other = factory.account("caseworker")
    other.user.totp_enrolled = True
    session.flush()
    warm = factory.account("caseworker")
    attempt(session, warm.username, warm.password, "")  # the audit chain's tail is cached after one entry
    session.flush()
    work.reset()
    with_password = {}
    for label, account in (("pending", pending), ("active", other)):
        outcome = attempt(session, account.username, account.password, "")
        assert isinstance(outcome, signin.Refused), label
        with_password[label] = (outcome.status_code, outcome.detail, *work.reset())
    assert with_password["pending"] == with_password["active"]
    assert with_password["pending"][:2] == first[:2]


def test_a_spray_of_made_up_names_leaves_no_rows_behind_once_decayed(session, quick):
    for i in range(30):
        attempt(session, f"sprayed-{i}", "whatever pass", "123456")
    session.execute(
        update(SignInThrottle).values(
            last_failure_at=signin._now() - timedelta(minutes=quick.failure_decay_minutes + 1)
        )
    )
    attempt(session, "one-more", "whatever pass", "123456")
    assert session.scalars(select(SignInThrottle.failures)).all() == [1]
