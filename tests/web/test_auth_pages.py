"""Sign-in pages: TOTP, enrolment of new accounts, first password, sessions, CSRF, lock now, idle expiry."""

from __future__ import annotations

from datetime import timedelta

import pyotp
from sqlalchemy import func, select, update

from app.auth import service as auth_service
from app.auth import sessions
from app.auth.models import User, WebSession
from tests.web.conftest import csrf_of


def test_login_page_renders_with_a_form_token_and_no_session(client):
    page = client.get("/login")
    assert page.status_code == 200
    assert 'action="/login"' in page.text
    assert csrf_of(page.text) == client.cookies.get("helpline_pre")
    assert sessions.COOKIE_NAME not in client.cookies


def test_pages_need_a_session_and_send_strangers_to_login(client):
    for path in ("/", "/admin/users", "/contacts/new", "/contacts", "/cases", "/dashboard", "/exports"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login"), path


def test_caseworker_signs_in_with_password_and_totp(pages, client, factory, session):
    account = factory.account("caseworker")
    response = pages.signed_in(account)
    assert response.headers["location"] == "/contacts/new"
    token = client.cookies.get(sessions.COOKIE_NAME)
    stored = session.scalars(select(WebSession.token_hash)).all()
    assert auth_service.token_hash(token) in stored
    assert token.encode() not in stored
    assert session.scalar(select(WebSession.stage).where(WebSession.user_id == account.user.id)) == "full"


def test_wrong_code_is_refused_and_counts_towards_lock_out(pages, client, factory, session):
    account = factory.account("caseworker")
    pages.enrolled(account)
    wrong = "000000" if account.totp().now() != "000000" else "111111"
    response = pages.sign_in(account, otp=wrong)
    assert response.status_code == 401
    assert "Sign-in failed" in response.text
    assert f'value="{account.username}"' in response.text
    assert sessions.COOKIE_NAME not in client.cookies
    session.expire_all()
    assert session.get(User, account.user.id).failed_logins == 1


def test_a_password_alone_opens_nothing_for_an_account_awaiting_enrolment(pages, client, factory, session):
    # The attack: only the password of a new (or just reset) account, an empty code, then the
    # set-up page that used to show the secret.
    account = factory.account("caseworker")
    response = pages.sign_in(account, otp="")
    assert response.status_code == 401
    assert sessions.COOKIE_NAME not in client.cookies
    for path in ("/login/enrol", "/contacts/new", "/account"):
        page = client.get(path, follow_redirects=False)
        assert account.totp_secret not in page.text
        assert account.totp_secret[:4] + " " + account.totp_secret[4:8] not in page.text
        assert page.status_code in (303, 404), path
    session.expire_all()
    assert session.get(User, account.user.id).totp_enrolled is False
    assert (
        session.scalar(select(func.count()).select_from(WebSession).where(WebSession.user_id == account.user.id)) == 0
    )


def test_new_account_may_enrol_directly_with_a_code_from_its_otpauth_uri(pages, factory, session):
    account = factory.account("coordinator")
    response = pages.sign_in(account)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    session.expire_all()
    assert session.get(User, account.user.id).totp_enrolled is True


def test_an_enrolled_account_cannot_skip_the_code(pages, factory):
    account = factory.account("caseworker")
    pages.enrolled(account)
    assert pages.sign_in(account, otp="").status_code == 401


def test_generated_password_must_be_changed_after_enrolment(pages, client, factory, session):
    new = auth_service.create_user(session, actor="test", username="fresh-one", role="caseworker")
    session.commit()
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "csrf_token": csrf_of(page.text),
            "username": "fresh-one",
            "password": new.password,
            "otp": pyotp.parse_uri(new.otpauth_uri).now(),
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/login/password"
    form = client.get("/login/password")
    token = csrf_of(form.text)
    short = client.post("/login/password", data={"csrf_token": token, "password": "short", "repeat": "short"})
    assert short.status_code == 422
    assert "12 characters" in short.text
    done = client.post(
        "/login/password",
        data={"csrf_token": token, "password": "a much longer passphrase", "repeat": "a much longer passphrase"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert client.get("/contacts/new", follow_redirects=False).status_code != 303
    session.expire_all()
    assert session.get(User, new.user.id).must_change_password is False


def test_post_without_csrf_token_is_refused(pages, client, factory, session):
    account = factory.account("caseworker")
    pages.signed_in(account)
    before = session.scalar(select(func.count()).select_from(WebSession))
    refused = client.post("/lock", data={}, follow_redirects=False)
    assert refused.status_code == 403
    assert "<html" in refused.text
    forged = client.post("/lock", data={"csrf_token": "0" * 64}, follow_redirects=False)
    assert forged.status_code == 403
    assert session.scalar(select(func.count()).select_from(WebSession)) == before


def test_login_without_the_pre_session_token_is_refused(client, factory):
    account = factory.account("caseworker")
    response = client.post(
        "/login",
        data={"username": account.username, "password": account.password, "otp": account.totp().now()},
        follow_redirects=False,
    )
    assert response.status_code == 403


def test_lock_now_ends_the_session_at_once(pages, client, factory, session):
    account = factory.account("caseworker")
    pages.signed_in(account)
    token = client.cookies.get(sessions.COOKIE_NAME)
    response = pages.post("/lock", from_page="/contacts/new")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?locked=1"
    assert session.scalar(select(WebSession).where(WebSession.token_hash == auth_service.token_hash(token))) is None
    # Even a copy of the old cookie opens nothing now.
    client.cookies.set(sessions.COOKIE_NAME, token)
    assert client.get("/contacts/new", follow_redirects=False).headers["location"].startswith("/login")


def test_idle_session_expires(pages, client, factory, session, settings):
    account = factory.account("caseworker")
    pages.signed_in(account)
    assert client.get("/contacts/new", follow_redirects=False).status_code != 303
    session.execute(
        update(WebSession)
        .where(WebSession.user_id == account.user.id)
        .values(last_seen_at=sessions._now() - timedelta(minutes=settings.session_idle_minutes, seconds=1))
    )
    session.commit()
    response = client.get("/contacts/new", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?ended=1"
    assert (
        session.scalar(select(func.count()).select_from(WebSession).where(WebSession.user_id == account.user.id)) == 0
    )


def test_absolute_lifetime_ends_an_active_session(pages, client, factory, session):
    account = factory.account("caseworker")
    pages.signed_in(account)
    session.execute(update(WebSession).where(WebSession.user_id == account.user.id).values(expires_at=sessions._now()))
    session.commit()
    assert client.get("/contacts/new", follow_redirects=False).headers["location"] == "/login?ended=1"


def test_session_cookie_flags(pages, client, factory):
    account = factory.account("caseworker")
    response = pages.signed_in(account)
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "helpline_session=" in v)
    lowered = cookie.lower()
    assert "httponly" in lowered
    assert "samesite=strict" in lowered
    assert "path=/" in lowered
    assert "secure" not in lowered  # the test settings turn secure cookies off, as for plain-HTTP local use


def test_signing_in_sweeps_sessions_left_to_expire(pages, client, factory, session, settings):
    stale = factory.account("caseworker")
    pages.signed_in(stale)
    session.execute(
        update(WebSession)
        .where(WebSession.user_id == stale.user.id)
        .values(last_seen_at=sessions._now() - timedelta(minutes=settings.session_idle_minutes + 1))
    )
    session.commit()
    client.cookies.clear()
    pages.signed_in(factory.account("caseworker"))
    assert session.scalar(select(func.count()).select_from(WebSession).where(WebSession.user_id == stale.user.id)) == 0
