"""The admin's user page: create an account (shown once), reset two-factor, deactivate."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.auth.models import User, WebSession


def test_admin_creates_an_account_and_sees_its_one_time_secrets(pages, client, factory, session):
    pages.signed_in(factory.account("admin"))
    response = pages.post("/admin/users", {"username": "new-worker", "role": "caseworker"})
    assert response.status_code == 200
    assert "otpauth://totp/" in response.text
    assert "<svg" in response.text
    created = session.scalar(select(User).where(User.username == "new-worker"))
    assert created is not None and created.role == "caseworker" and created.must_change_password
    taken = pages.post("/admin/users", {"username": "new-worker", "role": "caseworker"})
    assert taken.status_code == 409
    bad = pages.post("/admin/users", {"username": "no spaces", "role": "caseworker"})
    assert bad.status_code == 422
    assert 'value="no spaces"' in bad.text


def test_admin_resets_totp_and_deactivates(pages, client, factory, session):
    worker = factory.account("caseworker")
    pages.signed_in(worker)
    worker_cookie = client.cookies.get("helpline_session")
    client.cookies.clear()
    pages.signed_in(factory.account("admin"))
    reset = pages.post(f"/admin/users/{worker.username}/reset-totp", {}, from_page="/admin/users")
    assert reset.status_code == 200 and "otpauth://" in reset.text
    session.expire_all()
    assert session.get(User, worker.user.id).totp_enrolled is False
    assert session.scalar(select(func.count()).select_from(WebSession).where(WebSession.user_id == worker.user.id)) == 0
    # Deactivating is for good: the first press asks and changes nothing, the confirmed one acts and says so.
    asked = pages.post(f"/admin/users/{worker.username}/deactivate", {}, from_page="/admin/users")
    assert asked.status_code == 200 and f"Deactivate the account {worker.username}?" in asked.text
    session.expire_all()
    assert session.get(User, worker.user.id).active is True
    # A link cannot make the page claim it: the notice is said only of an account that is deactivated.
    assert "deactivated." not in client.get("/admin/users", params={"deactivated": worker.username}).text
    gone = pages.post(f"/admin/users/{worker.username}/deactivate", {"confirm": "yes"}, from_page="/admin/users")
    assert gone.status_code == 303
    assert f"Account {worker.username} deactivated." in client.get(gone.headers["location"]).text
    session.expire_all()
    assert session.get(User, worker.user.id).active is False
    client.cookies.set("helpline_session", worker_cookie)
    assert client.get("/contacts/new", follow_redirects=False).status_code == 303


def test_only_admins_manage_users(pages, client, factory):
    pages.signed_in(factory.account("coordinator"))
    assert client.get("/admin/users").status_code == 403
    assert pages.post("/admin/users", {"username": "x1", "role": "admin"}, from_page="/dashboard").status_code == 403


def test_analyst_downloads_both_exports_from_the_page(pages, client, factory, session):
    from app.exports import api as export_api

    @contextmanager
    def shared():
        yield session
        session.flush()

    # The end-of-stream audit entry is written in the test's own (rolled-back) session.
    client.app.dependency_overrides[export_api.session_opener] = lambda: shared
    analyst = factory.account("analyst")
    pages.signed_in(analyst)
    page = client.get("/exports")
    assert 'action="/exports/aggregate"' in page.text and 'action="/exports/records"' in page.text
    records = pages.post("/exports/records", {}, from_page="/exports")
    assert records.status_code == 200
    assert records.headers["content-disposition"].startswith("attachment")
    assert records.headers["cache-control"] == "no-store"
    aggregate = pages.post("/exports/aggregate", {"format": "csv"}, from_page="/exports")
    # An empty install has no whole past month yet: the page says so instead of failing.
    assert aggregate.status_code in (200, 422)
    if aggregate.status_code == 422:
        assert 'class="error"' in aggregate.text
    assert client.post("/exports/records", data={}).status_code == 403  # no CSRF token
    audited = session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.actor == analyst.username, AuditEntry.action.like("export%"))
    )
    assert audited >= 1


def test_caseworkers_cannot_export(pages, client, factory):
    pages.signed_in(factory.account("caseworker"))
    assert client.get("/exports").status_code == 403


def test_the_users_page_names_the_account_shows_its_state_and_explains_a_refusal(pages, client, factory, session):
    from datetime import UTC, datetime, timedelta

    locked = factory.account("caseworker")
    held = factory.account("caseworker")
    admin = factory.account("admin")
    # A timed lock-out ends within the hour; a duress hold lasts until an admin unlocks (far in the future).
    session.get(User, locked.user.id).locked_until = datetime.now(UTC) + timedelta(minutes=10)
    session.get(User, held.user.id).locked_until = datetime(9000, 1, 1, tzinfo=UTC)
    session.commit()
    pages.signed_in(admin)
    made = pages.post("/admin/users", {"username": "night-shift", "role": "coordinator"})
    assert made.status_code == 200
    assert "Account night-shift created" in made.text  # the one-time hand-over names whose secrets these are
    assert "<title>QR code for the authenticator app</title>" in made.text  # the QR code's accessible name
    for role in ("caseworker", "coordinator", "analyst", "admin"):
        assert f'<option value="{role}"' in made.text
    row = {name: _row(made.text, name) for name in (locked.username, held.username, admin.username)}
    assert ">locked<" in row[locked.username] and "/unlock" in row[locked.username]
    assert ">held after a duress sign-in<" in row[held.username] and "/unlock" in row[held.username]
    assert ">active<" in row[admin.username] and "/unlock" not in row[admin.username]
    bad = pages.post("/admin/users", {"username": "no spaces", "role": "caseworker"})
    assert bad.status_code == 422
    assert 'id="username-error"' in bad.text and 'aria-invalid="true"' in bad.text


def _row(html: str, username: str) -> str:
    """The accounts table's row of ``username``."""
    start = html.index(f'<td data-label="Name">{username}</td>')
    return html[start : html.index("</tr>", start)]
