"""Each stage of sign-in opens only its own page, and the own-account page shows what happened, field by field."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import func, select

from app.auth import passwords, sessions
from app.auth.models import User, WebSession
from app.idempotency.models import FormToken
from tests.web.conftest import csrf_of

NEW = "seven ravens over the river"
DURESS_PASSWORD = "tea with grandmother at five"
PASSWORD_CHANGED = "Your password is changed. Every other session and token of yours has ended."
FORM_ONCE_RE = re.compile(r'name="form_once" value="([^"]+)"')


def _at_stage(client, session, account, stage: str) -> str:
    """A session of ``stage`` for ``account`` in this browser, as sign-in leaves it; its cookie token."""
    started = sessions.start(session, user=account.user, stage=stage)
    session.commit()
    client.cookies.set(sessions.COOKIE_NAME, started.token, domain="testserver.local")
    return started.token


def _location(response) -> str:
    assert response.status_code == 303, (response.status_code, response.text[:300])
    return str(response.headers["location"])


def _stages(session, account) -> list[str]:
    session.expire_all()
    return list(session.scalars(select(WebSession.stage).where(WebSession.user_id == account.user.id)))


def _field_error(html: str, name: str) -> str | None:
    found = re.search(rf'<p class="field-error" id="{name}-error">([^<]*)</p>', html)
    return found.group(1) if found else None


def _next_code(account) -> str:
    """A code of the next time step (one step of drift is allowed; the current one may be spent)."""
    return account.totp().at(time.time() + 30)


# ----------------------------------------------------------------------------- the password stage


def test_the_password_stage_opens_the_password_page_and_sends_every_other_page_there(client, factory, session):
    account = factory.account("analyst")
    account.user.must_change_password = True
    _at_stage(client, session, account, sessions.PASSWORD)
    page = client.get("/login/password", follow_redirects=False)
    assert page.status_code == 200
    assert 'action="/login/password"' in page.text
    assert _field_error(page.text, "password") is None and _field_error(page.text, "repeat") is None
    assert _location(client.get("/login", follow_redirects=False)) == "/login/password"
    assert _location(client.get("/account", follow_redirects=False)) == "/login/password"
    assert _location(client.get("/exports", follow_redirects=False)) == "/login/password"


def test_choosing_the_password_ends_the_stage_and_opens_the_home_page_of_the_role(client, factory, session):
    account = factory.account("analyst")
    account.user.must_change_password = True
    staged = _at_stage(client, session, account, sessions.PASSWORD)
    token = csrf_of(client.get("/login/password").text)
    differ = client.post("/login/password", data={"csrf_token": token, "password": NEW, "repeat": NEW + "!"})
    assert differ.status_code == 422
    assert _field_error(differ.text, "repeat") == "the two passwords differ"
    assert _field_error(differ.text, "password") is None
    done = client.post(
        "/login/password", data={"csrf_token": token, "password": NEW, "repeat": NEW}, follow_redirects=False
    )
    assert _location(done) == "/exports"
    assert client.cookies.get(sessions.COOKIE_NAME) != staged
    assert _stages(session, account) == [sessions.FULL]
    assert passwords.verify_password(session.get(User, account.user.id).password_hash, NEW)
    assert client.get("/exports", follow_redirects=False).status_code == 200


@pytest.mark.parametrize(("stage", "to"), [(sessions.FULL, "/dashboard"), (None, "/login")])
def test_the_password_stage_sends_a_full_session_home_and_no_session_to_sign_in(client, factory, session, stage, to):
    account = factory.account("coordinator")
    if stage is None:
        session.commit()
    else:
        _at_stage(client, session, account, stage)
    assert _location(client.get("/login/password", follow_redirects=False)) == to
    token = csrf_of(client.get(to).text)
    refused = client.post(
        "/login/password", data={"csrf_token": token, "password": NEW, "repeat": NEW}, follow_redirects=False
    )
    assert _location(refused) == to
    session.expire_all()
    assert passwords.verify_password(session.get(User, account.user.id).password_hash, account.password)
    assert _stages(session, account) == ([] if stage is None else [sessions.FULL])


def test_a_full_session_at_the_sign_in_page_goes_home(client, factory, session):
    _at_stage(client, session, factory.account("admin"), sessions.FULL)
    assert _location(client.get("/login", follow_redirects=False)) == "/admin/users"


def test_the_sign_in_page_shows_why_the_last_session_ended(client):
    locked = client.get("/login?locked=1")
    assert "Locked. Nothing is left open in this browser." in locked.text
    assert "period without activity" not in locked.text
    ended = client.get("/login?ended=1")
    assert "Your session ended after a period without activity. Please sign in again." in ended.text
    assert "Locked." not in ended.text
    plain = client.get("/login")
    assert "Locked." not in plain.text and "period without activity" not in plain.text


# ----------------------------------------------------------------------------- the own-account page


@pytest.mark.parametrize(
    ("done", "notice"),
    [(None, None), ("password", PASSWORD_CHANGED), ("duress", "Saved."), ("something-else", None)],
)
def test_the_account_page_shows_the_notice_of_what_was_just_done(pages, client, factory, done, notice):
    pages.signed_in(factory.account("caseworker"))
    page = client.get("/account" + (f"?done={done}" if done else ""), follow_redirects=False)
    assert page.status_code == 200
    assert "<h1>Your account</h1>" in page.text
    notices = re.findall(r'<p class="notice" role="status">([^<]*)</p>', page.text)
    assert notices == ([notice] if notice else [])
    assert 'class="field-error"' not in page.text


def test_the_account_page_after_a_password_change_says_that_the_other_sessions_ended(pages, client, factory):
    account = factory.account("caseworker")
    pages.signed_in(account)
    done = pages.post(
        "/account/password",
        {"current": account.password, "otp": _next_code(account), "password": NEW, "repeat": NEW},
        from_page="/account",
    )
    assert _location(done) == "/account?done=password"
    page = client.get(_location(done))
    assert f'<p class="notice" role="status">{PASSWORD_CHANGED}</p>' in page.text


def test_the_account_page_is_for_full_sessions_only(client, factory, session):
    assert _location(client.get("/account", follow_redirects=False)) == "/login?needed=1"
    assert "Please sign in to open that page." in client.get("/login?needed=1").text
    assert "Please sign in to open that page." not in client.get("/login").text
    assert _location(client.get("/", follow_redirects=False)) == "/login"  # the site's own address: no reason needed
    account = factory.account("caseworker")
    _at_stage(client, session, account, sessions.PASSWORD)
    assert _location(client.get("/account", follow_redirects=False)) == "/login/password"


def _form(client, path: str = "/account") -> dict[str, str]:
    html = client.get(path).text
    once = FORM_ONCE_RE.search(html)
    assert once, "the form has no one-time token"
    return {"csrf_token": csrf_of(html), "form_once": once.group(1)}


def _spent(session) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(FormToken)))


def _failures(session, account) -> int:
    session.expire_all()
    return session.get(User, account.user.id).failed_logins


def test_a_refused_password_change_names_the_field_and_keeps_only_a_counted_failure(pages, client, factory, session):
    account = factory.account("caseworker")
    pages.signed_in(account)
    spent = _spent(session)
    fields = {"current": account.password, "otp": _next_code(account), "password": NEW, "repeat": NEW + "!"}
    differ = client.post("/account/password", data={**_form(client), **fields})
    assert differ.status_code == 422
    assert _field_error(differ.text, "repeat") == "the two passwords differ"
    assert _field_error(differ.text, "current") is None and _field_error(differ.text, "password") is None
    assert "<h1>Your account</h1>" in differ.text
    # Rolled back: neither the form's one-time token nor anything else is kept.
    assert _spent(session) == spent
    assert _failures(session, account) == 0

    wrong = "000000" if _next_code(account) != "000000" else "111111"
    fields = {"current": account.password, "otp": wrong, "password": NEW, "repeat": NEW}
    unconfirmed = client.post("/account/password", data={**_form(client), **fields})
    assert unconfirmed.status_code == 422
    assert _field_error(unconfirmed.text, "current") == "the current password or the code is wrong"
    assert _field_error(unconfirmed.text, "repeat") is None
    # Kept: the wrong code counts towards the lock, and the form was spent with it.
    assert _failures(session, account) == 1
    assert _spent(session) == spent + 1
    assert passwords.verify_password(session.get(User, account.user.id).password_hash, account.password)


def test_a_refused_duress_password_is_named_under_its_own_field(pages, client, factory, session, settings):
    account = factory.account("caseworker")
    pages.signed_in(account)
    spent = _spent(session)
    fields = {"current": account.password, "otp": _next_code(account), "duress": "short"}
    weak = client.post("/account/duress", data={**_form(client), **fields})
    assert weak.status_code == 422
    assert _field_error(weak.text, "duress") == f"use at least {settings.password_min_length} characters"
    assert _field_error(weak.text, "password") is None and _field_error(weak.text, "current") is None
    assert _spent(session) == spent
    same = {"current": account.password, "otp": _next_code(account), "duress": account.password}
    refused = client.post("/account/duress", data={**_form(client), **same})
    assert refused.status_code == 422
    assert _field_error(refused.text, "duress") == "the duress password must differ from the password"

    wrong = "000000" if _next_code(account) != "000000" else "111111"
    fields = {"current": account.password, "otp": wrong, "duress": DURESS_PASSWORD}
    unconfirmed = client.post("/account/duress", data={**_form(client), **fields})
    assert unconfirmed.status_code == 422
    assert _field_error(unconfirmed.text, "current") == "the current password or the code is wrong"
    assert _failures(session, account) == 1
    session.expire_all()
    assert session.get(User, account.user.id).duress_hash is None


def test_the_account_page_speaks_the_language_of_the_session(pages, client, factory, session):
    account = factory.account("caseworker")
    pages.signed_in(account)
    session.execute(WebSession.__table__.update().where(WebSession.user_id == account.user.id).values(locale="ru"))
    session.commit()
    fields = {"current": account.password, "otp": _next_code(account), "password": NEW, "repeat": NEW + "!"}
    differ = client.post("/account/password", data={**_form(client), **fields})
    assert differ.status_code == 422
    assert _field_error(differ.text, "repeat") == "пароли не совпадают"
