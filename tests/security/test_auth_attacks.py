"""Attacks on sign-in and tokens, through a real server on loopback.

tests/auth covers the single-request rules in process; here the attacker has the network: guesses
in parallel, replays codes in a race, alters tokens one character at a time, sends broken headers,
and crashes the server to see whether a lock-out or a revocation survives it.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.auth import service as auth_service
from app.auth.models import ApiToken, User
from tests.security import figures
from tests.support.live_server import LiveAccount, LiveServer, unique_name

PROBE = "/api/v1/contacts"  # any route that needs a signed-in caseworker


def _status(live: LiveServer, token: str | None, *, headers: dict[str, bytes] | None = None) -> int:
    with figures.client(live, token) as http:
        return http.get(PROBE, headers=headers or {}).status_code


def _sign_in(live: LiveServer, account: LiveAccount, *, password: str | None = None, otp: str | None = None) -> int:
    with figures.client(live) as http:
        response = http.post(
            "/api/v1/auth/token",
            json={
                "username": account.username,
                "password": password if password is not None else account.password,
                "otp": otp if otp is not None else (account.next_code() or "000000"),
            },
        )
    return response.status_code


def _user(live: LiveServer, name: str) -> User:
    with live.session() as db:
        user = db.scalar(select(User).where(User.username == name))  # type: ignore[attr-defined]
        assert user is not None
        return user


def test_password_guessing_never_locks_but_wrong_codes_do_and_the_lock_survives_a_crash(live: LiveServer) -> None:
    account = live.create_user(unique_name("guess"), "caseworker")
    threshold = live.settings().lockout_threshold
    guesses = ["password123!", "qwertyuiop12", "letmein-letmein", "Helpline2026!!", "correct horse", "hunter2hunter2"]
    for guess in guesses[:threshold]:
        assert _sign_in(live, account, password=guess, otp="123456") == 401
        figures.count("auth_attacks")
    # A stranger's guesses slowed the name down but locked nothing: the real person gets in.
    assert _user(live, account.username).locked_until is None
    assert _sign_in(live, account) == 200
    # Someone holding the password but not the phone: wrong codes lock the account ...
    wrong = "000000" if account.totp().now() != "000000" else "111111"
    for _ in range(threshold):
        assert _sign_in(live, account, otp=wrong) == 401
        figures.count("auth_attacks")
    assert _user(live, account.username).locked_until is not None
    assert _sign_in(live, account) == 401
    # ... and the lock is in the database, not in the process: a crash does not lift it.
    live.crash_and_restart()
    figures.count("faults_injected")
    assert _sign_in(live, account) == 401
    assert _user(live, account.username).locked_until is not None


def test_a_code_older_than_the_last_one_used_is_refused(live: LiveServer) -> None:
    account = live.create_user(unique_name("stale"), "caseworker")
    now_step = int(time.time() // 30)
    # Sign in with the code of the next step (allowed as clock drift): every earlier code is now spent.
    account.last_step = now_step
    assert _sign_in(live, account) == 200
    for step in (now_step - 1, now_step):
        assert _sign_in(live, account, otp=account.totp().at(step * 30)) == 401
        figures.count("auth_attacks")
    # A code two steps old was never valid.
    other = live.create_user(unique_name("stale"), "caseworker")
    assert _sign_in(live, other, otp=other.totp().at((now_step - 3) * 30)) == 401
    figures.count("auth_attacks")


def _flip(ch: str) -> str:
    alphabet = string.ascii_letters + string.digits + "-_"
    return alphabet[(alphabet.index(ch) + 1) % len(alphabet)]


def test_a_token_altered_in_any_one_character_is_refused(live: LiveServer) -> None:
    account = live.create_user(unique_name("flip"), "caseworker")
    token = live.sign_in(account)
    assert _status(live, token) == 200
    variants = {token[:i] + _flip(token[i]) + token[i + 1 :] for i in range(len(token))}
    # (Whitespace around the token is not another credential: HTTP strips it before anyone looks.)
    variants |= {token[:-1], token + "A", token.swapcase(), token[1:], token + token}
    variants.discard(token)
    for variant in sorted(variants):
        assert _status(live, variant) == 401, variant
    figures.count("auth_attacks", len(variants))
    assert _status(live, token) == 200


def test_tokens_are_kept_only_as_sha256_digests_and_looked_up_by_digest(live: LiveServer) -> None:
    account = live.create_user(unique_name("digest"), "caseworker")
    tokens = [live.sign_in(account), live.sign_in(account)]
    with live.session() as db:
        stored = db.scalars(select(ApiToken.token_hash)).all()  # type: ignore[attr-defined]
    assert stored and all(len(h) == 32 for h in stored)
    for token in tokens:
        assert hashlib.sha256(token.encode()).digest() in stored
    # The token itself is nowhere in the database files.
    db_path = live.db_path
    assert db_path is not None
    for path in (db_path, db_path.with_name(db_path.name + "-wal")):
        if path.exists():
            data = path.read_bytes()
            for token in tokens:
                assert token.encode() not in data
    # A row whose stored value is a raw token does not let that raw token in: the lookup hashes first.
    raw = secrets.token_urlsafe(24)[:32]
    with live.session() as db:
        user = auth_service.get_user(db, username=account.username)  # type: ignore[arg-type]
        moment = auth_service.now()
        db.add(  # type: ignore[attr-defined]
            ApiToken(
                id=uuid.uuid4(),
                user_id=user.id,
                token_hash=raw.encode(),
                created_at=moment,
                expires_at=moment + timedelta(minutes=10),
            )
        )
    assert _status(live, raw) == 401
    figures.count("auth_attacks")


def test_expired_forged_revoked_and_deactivated_tokens_are_refused(live: LiveServer) -> None:
    account = live.create_user(unique_name("revoke"), "caseworker")
    expiring, forged_shape = live.sign_in(account), secrets.token_urlsafe(32)
    assert _status(live, expiring) == 200
    with live.session() as db:
        db.execute(  # type: ignore[attr-defined]
            update(ApiToken)
            .where(ApiToken.token_hash == auth_service.token_hash(expiring))
            .values(expires_at=auth_service.now() - timedelta(seconds=1))
        )
    assert _status(live, expiring) == 401
    assert _status(live, forged_shape) == 401

    # A password change ends every token, also in a server that has been running all along.
    before_password = live.issue_token(account)
    assert _status(live, before_password) == 200
    with live.session() as db:
        user = auth_service.get_user(db, username=account.username)  # type: ignore[arg-type]
        auth_service.set_password(db, actor="test", user=user, password="a whole new passphrase")  # type: ignore[arg-type]
    assert _status(live, before_password) == 401

    # So does a TOTP reset, and deactivation.
    before_totp = live.issue_token(account)
    assert _status(live, before_totp) == 200
    with live.session() as db:
        user = auth_service.get_user(db, username=account.username)  # type: ignore[arg-type]
        auth_service.reset_totp(db, actor="test", user=user)  # type: ignore[arg-type]
    assert _status(live, before_totp) == 401

    before_deactivation = live.issue_token(account)
    assert _status(live, before_deactivation) == 200
    with live.session() as db:
        user = auth_service.get_user(db, username=account.username)  # type: ignore[arg-type]
        auth_service.deactivate(db, actor="test", user=user)  # type: ignore[arg-type]
    assert _status(live, before_deactivation) == 401
    # Re-issuing a token row for a deactivated user still does not let them in.
    assert _status(live, live.issue_token(account)) == 401
    figures.count("auth_attacks", 6)


@pytest.mark.parametrize(
    "header",
    [
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="},
        {"Authorization": "Token abcdef"},
        {"Authorization": "Bearer " + "A" * 8192},
        {"Authorization": "Bearer \u00e9\u00e8"},
        {"Authorization": "Bearer a.b.c"},  # a JWT shape means nothing here
        {"Authorization": "Bearer ' OR '1'='1"},
        {"Cookie": "helpline_session=forged"},
    ],
    ids=["empty", "basic", "other-scheme", "8k", "latin1", "jwt-shape", "sqli", "forged-cookie"],
)
def test_malformed_credentials_are_401_never_500(live: LiveServer, header: dict[str, str]) -> None:
    with figures.client(live) as http:
        response = http.get(PROBE, headers={k: v.encode("latin-1") for k, v in header.items()})
    figures.count("auth_attacks")
    assert response.status_code == 401
    assert response.json() == {"detail": "not authenticated"} or "invalid" in response.json()["detail"]


def test_a_token_in_the_query_string_is_ignored(live: LiveServer) -> None:
    account = live.create_user(unique_name("query"), "caseworker", via_cli=False)
    token = live.issue_token(account)
    with figures.client(live) as http:
        assert http.get(PROBE, params={"access_token": token}).status_code == 401
        assert http.get(PROBE, params={"token": token}).status_code == 401
    figures.count("auth_attacks", 2)


def test_oversized_and_odd_sign_in_bodies_are_refused_cleanly(live: LiveServer) -> None:
    account = live.create_user(unique_name("odd"), "caseworker", via_cli=False)
    bodies = [
        {"username": account.username, "password": "x" * 100_000, "otp": "123456"},
        {"username": "u" * 10_000, "password": account.password, "otp": "123456"},
        {"username": account.username, "password": account.password, "otp": "1" * 500},
        {"username": account.username, "password": account.password, "otp": "12345\u0663"},  # Arabic-Indic digit
        {"username": account.username + "\x00", "password": account.password, "otp": "123456"},
        {"username": [account.username], "password": account.password, "otp": "123456"},
        {"username": account.username, "password": account.password},
    ]
    with figures.client(live) as http:
        for body in bodies:
            response = http.post("/api/v1/auth/token", json=body)
            assert response.status_code in (401, 422), (body, response.status_code)
            assert account.password not in response.text
            assert "x" * 50 not in response.text
        figures.count("auth_attacks", len(bodies))


def _web_sign_in(live: LiveServer, account: LiveAccount):  # type: ignore[no-untyped-def]
    import re

    web = figures.client(live)
    page = web.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    response = web.post(
        "/login",
        data={
            "username": account.username,
            "password": account.password,
            "otp": account.next_code() or "",
            "csrf_token": csrf.group(1),
        },
    )
    assert response.status_code in (302, 303), response.text[:200]
    return web


def test_web_sessions_are_digests_refuse_altered_cookies_and_end_with_a_password_change(live: LiveServer) -> None:
    from app.auth.models import WebSession
    from app.auth.sessions import COOKIE_NAME

    account = live.create_user(unique_name("websess"), "caseworker")
    web = _web_sign_in(live, account)
    try:
        cookie = web.cookies.get(COOKIE_NAME)
        assert cookie
        assert web.get("/contacts/new").status_code == 200
        with live.session() as db:
            stored = db.scalars(select(WebSession.token_hash)).all()  # type: ignore[attr-defined]
        assert hashlib.sha256(cookie.encode()).digest() in stored and all(len(h) == 32 for h in stored)
        assert live.db_path is not None and cookie.encode() not in live.db_path.read_bytes()

        def page_with(value: str) -> int:
            with figures.client(live) as other:
                other.cookies.set(COOKIE_NAME, value)
                return other.get("/contacts/new").status_code

        altered = [cookie[:i] + _flip(cookie[i]) + cookie[i + 1 :] for i in range(0, len(cookie), 4)]
        for value in altered:
            assert page_with(value) in (302, 303)  # back to sign-in, never the form
        figures.count("auth_attacks", len(altered))
        assert page_with(cookie) == 200

        with live.session() as db:
            user = auth_service.get_user(db, username=account.username)  # type: ignore[arg-type]
            auth_service.set_password(db, actor="test", user=user, password="another new passphrase")  # type: ignore[arg-type]
        assert page_with(cookie) in (302, 303)
        figures.count("auth_attacks")
    finally:
        web.close()
