"""Sign-in limits hold across workers: real ``helpline serve --workers N`` processes over HTTP, on
PostgreSQL (4 workers) and SQLite (2 workers), every attempt of a burst released at the same moment.

- 20 wrong codes at once after the right password: every one is counted (UPDATE ... RETURNING) and the
  account locks;
- one valid code sent 6 times at once: exactly one token (the totp_spent primary key);
- 20 wrong passwords at once: all counted against the name, none locks the account.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy import func, select

from app.auth import signin
from app.auth.models import ApiToken, SignInThrottle, User
from tests.security import figures
from tests.support.live_server import LiveAccount, LiveServer, unique_name

# Long: collected first, so the two test processes finish together (tests/conftest.py).
pytestmark = pytest.mark.slow

BURST = 20


@pytest.fixture(scope="module", params=[("postgresql", 4), ("sqlite", 2)], ids=["postgresql-4", "sqlite-2"])
def racing(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    backend, workers = request.param
    url = None
    if backend == "postgresql":
        url = request.getfixturevalue("pg_server").create_database(f"races_{unique_name('db')}")
    server = LiveServer(tmp_path_factory.mktemp(f"races-{backend}"), database_url=url, workers=workers)
    server.start()
    try:
        yield server
    finally:
        server.close()


def _at_once(count: int, attempt: Callable[[int], int]) -> list[int]:
    """Run ``attempt(i)`` for i in range(count) on as many threads, all released together."""
    statuses: list[int] = []
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        barrier.wait()
        statuses.append(attempt(i))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    figures.count("auth_attacks", count)
    return statuses


def _post(live: LiveServer, account: LiveAccount, *, password: str, otp: str) -> int:
    with httpx.Client(base_url=live.base_url, timeout=60) as http:
        body = {"username": account.username, "password": password, "otp": otp}
        return http.post("/api/v1/auth/token", json=body).status_code


def _user(live: LiveServer, name: str) -> User:
    with live.session() as db:
        return db.scalar(select(User).where(User.username == name))  # type: ignore[attr-defined,no-any-return]


def test_twenty_wrong_codes_at_once_after_the_right_password_lock_the_account(racing: LiveServer) -> None:
    account = racing.create_user(unique_name("codes"), "caseworker", via_cli=False)
    wrong = [f"{(int(account.totp().now()) + 1 + i) % 1_000_000:06d}" for i in range(BURST)]
    statuses = _at_once(BURST, lambda i: _post(racing, account, password=account.password, otp=wrong[i]))
    assert statuses == [401] * BURST
    user = _user(racing, account.username)
    with racing.session() as db:
        digest = signin.name_digest(db, account.username)  # type: ignore[arg-type]
        refused_locked = db.scalar(select(SignInThrottle.failures).where(SignInThrottle.name_digest == digest)) or 0  # type: ignore[attr-defined]
    # Not one failure lost to a race (read-add-write in Python left 1 of 20): each attempt either
    # counted as a wrong code, or found the account already locked and counted against the name.
    assert user.failed_logins >= racing.settings().lockout_threshold
    assert user.failed_logins + refused_locked == BURST
    assert signin.is_locked(user)
    code = account.next_code()
    assert code is not None
    assert _post(racing, account, password=account.password, otp=code) == 401


def test_one_code_sent_six_times_at_once_gives_exactly_one_token(racing: LiveServer) -> None:
    account = racing.create_user(unique_name("replay"), "caseworker", via_cli=False)
    code = account.totp().now()
    statuses = _at_once(6, lambda _i: _post(racing, account, password=account.password, otp=code))
    assert sorted(statuses) == [200] + [401] * 5
    with racing.session() as db:
        user_id = db.scalar(select(User.id).where(User.username == account.username))  # type: ignore[attr-defined]
        tokens = db.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user_id))  # type: ignore[attr-defined]
    assert tokens == 1
    # The replays were genuine codes: they are refused but do not count towards the lock.
    assert _user(racing, account.username).failed_logins == 0


def test_twenty_wrong_passwords_at_once_never_lock(racing: LiveServer) -> None:
    account = racing.create_user(unique_name("spree"), "admin", via_cli=False)
    statuses = _at_once(BURST, lambda i: _post(racing, account, password=f"spree guess {i:03d}", otp="123456"))
    assert statuses == [401] * BURST
    with racing.session() as db:
        digest = signin.name_digest(db, account.username)  # type: ignore[arg-type]
        counted = db.scalar(select(SignInThrottle.failures).where(SignInThrottle.name_digest == digest))  # type: ignore[attr-defined]
    assert counted == BURST  # every guess counted against the name (the upsert is atomic) ...
    user = _user(racing, account.username)
    assert user.locked_until is None and user.failed_logins == 0  # ... and none of them locks
    code = account.next_code()
    assert code is not None
    assert _post(racing, account, password=account.password, otp=code) == 200
