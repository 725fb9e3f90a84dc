"""A duress sign-in: the same pages and menus, an empty caseload, and silently — the person's other
sessions and tokens end, the real account is held until an admin unlocks it, the coordinators see an alarm."""

from __future__ import annotations

import re
import time
from datetime import date

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.auth import service as auth_service
from app.auth import sessions, signin
from app.auth.models import User, WebSession
from app.contacts.models import Contact
from app.errors import Invalid
from tests.web.conftest import csrf_of

DURESS = "tea with grandmother at five"
SECRET_ALIAS = "Zarema-Duress-Canary"


def _next_code(account) -> str:
    return account.totp().at(time.time() + 30)


@pytest.fixture
def worker(factory, session):
    """A caseworker with one contact and one case of their own, and a duress password."""
    account = factory.account("caseworker")
    account.user.totp_enrolled = True
    auth_service.set_duress(session, actor="test", user=account.user, password=DURESS)
    account.contact = factory.contact(account.user, alias=SECRET_ALIAS)
    account.case = factory.case(account.user)
    session.commit()
    return account


def _web_sign_in(client, account, password, otp):
    page = client.get("/login")
    return client.post(
        "/login",
        data={"csrf_token": csrf_of(page.text), "username": account.username, "password": password, "otp": otp},
        follow_redirects=False,
    )


def _own_contacts(session, user) -> int:
    return session.scalar(select(func.count()).select_from(Contact).where(Contact.recorded_by_id == user.id))


def test_a_duress_sign_in_on_the_web_shows_nothing_ends_the_rest_holds_the_account_and_alarms(
    client, factory, session, worker
):
    earlier_token = factory.token(worker.user)
    earlier_web = sessions.start(session, user=worker.user)
    session.commit()
    # Under duress: the watcher sees an ordinary sign-in that lands on the ordinary home page.
    response = _web_sign_in(client, worker, DURESS, worker.totp().now())
    assert response.status_code == 303
    assert response.headers["location"] == "/contacts/new"
    contacts = client.get("/contacts")
    assert contacts.status_code == 200
    assert worker.contact.code not in contacts.text and SECRET_ALIAS not in contacts.text
    cases = client.get("/cases")
    assert cases.status_code == 200 and worker.case.code not in cases.text
    assert client.get(f"/contacts/{worker.contact.id}").status_code == 404
    assert client.get(f"/cases/{worker.case.id}").status_code == 404
    assert worker.username in client.get("/contacts/new").text  # their own name, as always
    # The intake form takes a contact and shows it saved, but it goes to nobody's caseload.
    before = _own_contacts(session, worker.user)
    form = client.get("/contacts/new")
    saved = client.post(
        "/contacts/new",
        data={
            "csrf_token": csrf_of(form.text),
            "received_on": date.today().isoformat(),
            "channel": "phone",
            "region": "chechnya",
            "language": "ru",
            "risk": "high",
            "needs": ["evacuation"],
            "alias": "typed under duress",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert client.get(saved.headers["location"]).status_code == 200
    session.expire_all()
    assert _own_contacts(session, worker.user) == before
    # Silently: the earlier session and token are gone, the real password is held, an alarm stands.
    assert client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {earlier_token}"}).status_code == 401
    with pytest.raises(sessions.SessionEnded):
        sessions.resume(session, token=earlier_web.token)
    assert session.scalar(select(func.count()).select_from(WebSession).where(WebSession.user_id == worker.user.id)) == 1
    with pytest.raises(signin.Refused):
        signin.authenticate(session, username=worker.username, password=worker.password, otp=_next_code(worker))
    actions = session.scalars(select(AuditEntry.action).where(AuditEntry.target == worker.username)).all()
    assert "auth.duress" in actions
    # A coordinator's pages carry the alarm; the admin unlocks, and the alarm goes.
    client.cookies.clear()
    coordinator = factory.account("coordinator")
    coordinator.user.totp_enrolled = True
    admin = factory.account("admin")
    session.commit()
    assert _web_sign_in(client, coordinator, coordinator.password, coordinator.totp().now()).status_code == 303
    dashboard = client.get("/dashboard")
    assert "Duress alarm" in dashboard.text and worker.username in dashboard.text
    queue = client.get("/attention")
    assert "Signed in with the duress password" in queue.text and worker.username in queue.text
    auth_service.unlock(session, actor=admin.username, user=session.get(User, worker.user.id))
    session.commit()
    assert "Duress alarm" not in client.get("/dashboard").text
    assert isinstance(
        signin.authenticate(session, username=worker.username, password=worker.password, otp=_next_code(worker)),
        signin.Admitted,
    )


def test_a_duress_token_lists_nothing_and_its_intake_stays_out_of_the_caseload(client, session, worker):
    response = client.post(
        "/api/v1/auth/token", json={"username": worker.username, "password": DURESS, "otp": worker.totp().now()}
    )
    assert response.status_code == 200
    assert set(response.json()) == {"access_token", "token_type", "expires_in"}
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    listed = client.get("/api/v1/contacts", headers=headers)
    assert listed.status_code == 200 and worker.contact.code not in listed.text
    assert client.get("/api/v1/cases", headers=headers).json()["items"] == []
    assert client.get(f"/api/v1/contacts/{worker.contact.id}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/cases/{worker.case.id}", headers=headers).status_code == 404
    before = _own_contacts(session, worker.user)
    made = client.post(
        "/api/v1/contacts",
        headers=headers,
        json={
            "received_on": date.today().isoformat(),
            "channel": "signal",
            "region": "dagestan",
            "language": "ru",
            "risk": "low",
            "needs": ["legal"],
        },
    )
    assert made.status_code == 201 and re.fullmatch(r"[A-Z]-[0-9A-Z-]+", made.json()["code"])
    assert client.get(f"/api/v1/contacts/{made.json()['id']}", headers=headers).status_code == 200
    session.expire_all()
    assert _own_contacts(session, worker.user) == before
    assert signin.is_locked(session.get(User, worker.user.id))


def test_the_duress_password_is_stored_like_a_password_and_never_equal_to_it(session, worker):
    user = session.get(User, worker.user.id)
    assert user.duress_hash.startswith("$argon2id$") and DURESS not in user.duress_hash
    with pytest.raises(Invalid):
        auth_service.set_duress(session, actor="test", user=user, password=worker.password)
    with pytest.raises(Invalid):
        auth_service.set_password(session, actor="test", user=user, password=DURESS)


def test_an_admin_under_duress_seems_to_reset_a_password_but_nothing_changes(client, factory, session):
    from app.auth import passwords

    admin = factory.account("admin")
    admin.user.totp_enrolled = True
    auth_service.set_duress(session, actor="test", user=admin.user, password=DURESS)
    worker = factory.account("caseworker")
    session.commit()
    assert _web_sign_in(client, admin, DURESS, admin.totp().now()).status_code == 303
    page = client.get("/admin/users")
    assert worker.username in page.text
    shown = client.post(
        f"/admin/users/{worker.username}/reset-password", data={"csrf_token": csrf_of(page.text), "confirm": "yes"}
    )
    assert shown.status_code == 200
    one_time = shown.text.split('<code class="secret">', 1)[1].split("<", 1)[0]
    assert len(one_time) > 12  # looks like the real thing ...
    session.expire_all()
    user = session.get(User, worker.user.id)
    assert not passwords.verify_password(user.password_hash, one_time)  # ... but was never stored
    assert passwords.verify_password(user.password_hash, worker.password) and not user.must_change_password
    unlocked = client.post(
        f"/admin/users/{admin.username}/unlock", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False
    )
    assert unlocked.status_code == 303
    session.expire_all()
    assert signin.is_locked(session.get(User, admin.user.id))  # the held account stays held


def test_an_admin_under_duress_seems_to_create_an_account_with_a_code_but_none_exists(client, factory, session):
    admin = factory.account("admin")
    admin.user.totp_enrolled = True
    auth_service.set_duress(session, actor="test", user=admin.user, password=DURESS)
    session.commit()
    assert _web_sign_in(client, admin, DURESS, admin.totp().now()).status_code == 303
    page = client.get("/admin/users")
    shown = client.post(
        "/admin/users", data={"csrf_token": csrf_of(page.text), "username": "new-volunteer", "role": "caseworker"}
    )
    assert shown.status_code == 200
    assert "new-volunteer" in shown.text and '<code class="secret">' in shown.text and "<svg" in shown.text
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(User).where(User.username == "new-volunteer")) == 0
