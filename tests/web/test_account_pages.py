"""Account recovery on the web: one's own password, the admin's reset / unlock / end-sessions buttons,
a new session id at every step up, __Host- cookies, and the names an account may have."""

from __future__ import annotations

import time

import pyotp
import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.auth import passwords, sessions, signin
from app.auth import service as auth_service
from app.auth.models import ApiToken, User, WebSession
from app.errors import Conflict, Invalid
from tests.web.conftest import csrf_of

NEW = "seven ravens over the river"
DURESS_PASSWORD = "tea with grandmother at five"


def _next_code(account) -> str:
    """A code of the next time step (sign-in spent the current one; one step of drift is allowed)."""
    return account.totp().at(time.time() + 30)


def _live_sessions(session, user) -> int:
    return session.scalar(select(func.count()).select_from(WebSession).where(WebSession.user_id == user.id))


def test_changing_ones_own_password_needs_the_current_one_and_a_code_and_ends_other_sessions(
    pages, client, factory, session
):
    account = factory.account("caseworker")
    token = factory.token(account.user)  # an API token from another device
    pages.signed_in(account)
    first_cookie = client.cookies.get(sessions.COOKIE_NAME)
    wrong = pages.post(
        "/account/password",
        {"current": "not my password", "otp": account.totp().now(), "password": NEW, "repeat": NEW},
        from_page="/account",
    )
    assert wrong.status_code == 422
    assert "current password or the code is wrong" in wrong.text
    session.expire_all()
    assert passwords.verify_password(session.get(User, account.user.id).password_hash, account.password)
    weak = pages.post(
        "/account/password",
        {
            "current": account.password,
            "otp": account.totp().now(),
            "password": "qwertyuiop123",
            "repeat": "qwertyuiop123",
        },
        from_page="/account",
    )
    assert weak.status_code == 422
    assert "common or breached" in weak.text
    done = pages.post(
        "/account/password",
        {"current": account.password, "otp": _next_code(account), "password": NEW, "repeat": NEW},
        from_page="/account",
    )
    assert done.status_code == 303, done.text
    session.expire_all()
    assert passwords.verify_password(session.get(User, account.user.id).password_hash, NEW)
    # This browser carries on with a new session id; the old cookie and the API token are dead.
    assert client.get("/account").status_code == 200
    assert client.cookies.get(sessions.COOKIE_NAME) != first_cookie
    assert _live_sessions(session, account.user) == 1
    assert client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    client.cookies.set(sessions.COOKIE_NAME, first_cookie)
    assert client.get("/account", follow_redirects=False).status_code == 303


def test_admin_resets_a_password_the_old_one_stops_and_a_change_is_forced(pages, client, factory, session):
    worker = factory.account("caseworker")
    worker_token = factory.token(worker.user)
    pages.signed_in(factory.account("admin"))
    asked = pages.post(f"/admin/users/{worker.username}/reset-password", {}, from_page="/admin/users")
    assert asked.status_code == 200 and f"Reset the password of {worker.username}?" in asked.text
    assert '<code class="secret">' not in asked.text  # nothing reset yet
    reset = pages.post(f"/admin/users/{worker.username}/reset-password", {"confirm": "yes"}, from_page="/admin/users")
    assert reset.status_code == 200
    one_time = reset.text.split('<code class="secret">', 1)[1].split("<", 1)[0]
    session.expire_all()
    user = session.get(User, worker.user.id)
    assert user.must_change_password and passwords.verify_password(user.password_hash, one_time)
    assert not passwords.verify_password(user.password_hash, worker.password)
    assert session.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user.id)) == 0
    assert client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {worker_token}"}).status_code == 401
    # The worker signs in with it: only the password page, under a session id that changes when done.
    client.cookies.clear()
    worker.password = one_time
    first = pages.sign_in(worker)
    assert first.headers["location"] == "/login/password"
    stage_cookie = client.cookies.get(sessions.COOKIE_NAME)
    assert client.get("/contacts/new", follow_redirects=False).headers["location"] == "/login/password"
    token = csrf_of(client.get("/login/password").text)
    done = client.post(
        "/login/password", data={"csrf_token": token, "password": NEW, "repeat": NEW}, follow_redirects=False
    )
    assert done.status_code == 303
    assert client.cookies.get(sessions.COOKIE_NAME) != stage_cookie
    client.cookies.set(sessions.COOKIE_NAME, stage_cookie)
    assert client.get("/contacts/new", follow_redirects=False).headers["location"].startswith("/login")


def test_admin_unlocks_a_locked_account_and_ends_its_sessions(pages, client, factory, session, settings):
    worker = factory.account("caseworker")
    wrong = "000000" if worker.totp().now() != "000000" else "111111"
    for _ in range(settings.lockout_threshold):
        with pytest.raises(signin.Refused):
            signin.authenticate(session, username=worker.username, password=worker.password, otp=wrong)
    session.expire_all()
    assert signin.is_locked(session.get(User, worker.user.id))
    sessions.start(session, user=worker.user)
    pages.signed_in(factory.account("admin"))
    page = client.get("/admin/users")
    assert f"/admin/users/{worker.username}/unlock" in page.text
    assert pages.post(f"/admin/users/{worker.username}/unlock", {}, from_page="/admin/users").status_code == 303
    session.expire_all()
    assert not signin.is_locked(session.get(User, worker.user.id))
    assert _live_sessions(session, worker.user) == 1
    ended = pages.post(f"/admin/users/{worker.username}/end-sessions", {}, from_page="/admin/users")
    assert ended.status_code == 303
    assert f"Every session of {worker.username} has ended." in client.get(ended.headers["location"]).text
    assert _live_sessions(session, worker.user) == 0
    actions = set(session.scalars(select(AuditEntry.action).where(AuditEntry.target == worker.username)))
    assert {"user.unlock", "sessions.end"} <= actions


def test_signing_in_again_never_keeps_the_session_id_that_came_with_the_request(pages, client, factory, session):
    account = factory.account("caseworker")
    pages.signed_in(account)
    before = client.cookies.get(sessions.COOKIE_NAME)
    token = csrf_of(client.get("/contacts/new").text)
    again = client.post(
        "/login",
        data={
            "csrf_token": token,
            "username": account.username,
            "password": account.password,
            "otp": _next_code(account),
        },
        follow_redirects=False,
    )
    assert again.status_code == 303
    assert client.cookies.get(sessions.COOKIE_NAME) != before
    assert _live_sessions(session, account.user) == 1


@pytest.mark.parametrize(
    "name",
    [".", "..", "a", "x" * 33, "abаc", "Ádmin", "ad min", "admin\u200b", "амина", "a/b", "ｆｕｌｌ"],
)
def test_names_outside_plain_ascii_are_refused_with_a_clear_message(session, name):
    with pytest.raises(Invalid) as refused:
        auth_service.create_user(session, actor="test", username=name, role="caseworker")
    assert "Latin letters, digits" in str(refused.value.detail)


def test_names_are_unique_after_case_folding_and_old_names_keep_working(pages, session, factory):
    auth_service.create_user(session, actor="test", username="Amina.K", role="caseworker")
    with pytest.raises(Conflict):
        auth_service.create_user(session, actor="test", username="amina.k", role="caseworker")
    # A name from before the rule (made directly, as an older version could) still signs in.
    account = factory.account("caseworker")
    account.user.username = "José"
    account.user.totp_enrolled = True
    session.flush()
    response = pages.sign_in(account)
    assert response.status_code == 303, response.text


def test_new_passwords_are_checked_against_the_shipped_list(session):
    for weak in ("correct horse battery staple", "Password2024!", "qwertyuiop123", "1234567890123", "short"):
        with pytest.raises(Invalid):
            auth_service.create_user(session, actor="test", username="pw-check", role="caseworker", password=weak)
    made = auth_service.create_user(session, actor="test", username="pw-check", role="caseworker", password=NEW)
    assert pyotp.parse_uri(made.otpauth_uri).secret
    assert len(passwords._common()) > 3000


def test_setting_ones_own_duress_password_needs_the_password_and_a_code(pages, client, factory, session):
    account = factory.account("caseworker")
    pages.signed_in(account)
    wrong = pages.post(
        "/account/duress",
        {"current": "nope nope nope", "otp": _next_code(account), "duress": DURESS_PASSWORD},
        from_page="/account",
    )
    assert wrong.status_code == 422
    session.expire_all()
    assert session.get(User, account.user.id).duress_hash is None
    done = pages.post(
        "/account/duress",
        {"current": account.password, "otp": _next_code(account), "duress": DURESS_PASSWORD},
        from_page="/account",
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/account?done=duress"
    session.expire_all()
    assert session.get(User, account.user.id).duress_hash is not None


def test_admin_ends_every_session_at_once_keeping_their_own_if_asked(pages, client, factory, session):
    others = [factory.account("caseworker"), factory.account("coordinator")]
    tokens = [factory.token(a.user) for a in others]
    for account in others:
        sessions.start(session, user=account.user)
    pages.signed_in(factory.account("admin"))
    done = pages.post("/admin/sessions/end-all", {"except_me": "1"}, from_page="/admin/users")
    assert done.status_code == 303
    assert all(_live_sessions(session, a.user) == 0 for a in others)
    assert all(
        client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {t}"}).status_code == 401 for t in tokens
    )
    assert client.get("/admin/users").status_code == 200  # the admin's own session was kept
    everything = pages.post("/admin/sessions/end-all", {}, from_page="/admin/users")
    assert everything.headers["location"] == "/login"
    assert client.get("/admin/users", follow_redirects=False).status_code == 303
    assert session.scalar(select(func.count()).select_from(WebSession)) == 0
    assert (
        session.scalars(select(AuditEntry.action).where(AuditEntry.action == "sessions.end_all")).all()
        == ["sessions.end_all"] * 2
    )
