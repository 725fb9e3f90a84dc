"""helpline user unlock | reset-password | set-duress and helpline sessions end | end-all, as an admin runs them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.auth import passwords, sessions, signin
from app.auth import service as auth_service
from app.auth.models import ApiToken, User, WebSession
from tests.support.live_server import LiveServer


@pytest.fixture(scope="module")
def install(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("accounts-cli"))  # init only: the CLI needs no server
    server.create_user("admin.one", "admin", via_cli=False)
    server.create_user("amina", "caseworker", via_cli=False)
    server.create_user("boris", "coordinator", via_cli=False)
    yield server
    server.close()


def _user(install, name):
    with install.session() as db:
        return db.scalar(select(User).where(User.username == name))


def _credentials(install, name) -> int:
    """How many sessions and tokens the account holds (one of each is made here first)."""
    with install.session() as db:
        user = db.scalar(select(User).where(User.username == name))
        web = db.scalar(select(func.count()).select_from(WebSession).where(WebSession.user_id == user.id))
        api = db.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user.id))
        return web + api


def _sign_in_everywhere(install, *names) -> None:
    with install.session() as db:
        for name in names:
            user = auth_service.get_user(db, username=name)
            sessions.start(db, user=user)
            auth_service.issue_token(db, user=user)


def _one_line_error(proc) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_reset_password_prints_a_one_time_password_that_must_be_changed(install):
    _sign_in_everywhere(install, "amina")
    proc = install.cli("user", "reset-password", "amina")
    one_time = proc.stdout.splitlines()[0].removeprefix("password: ")
    user = _user(install, "amina")
    assert user.must_change_password
    assert passwords.verify_password(user.password_hash, one_time)
    assert not passwords.verify_password(user.password_hash, install.accounts["amina"].password)
    assert _credentials(install, "amina") == 0


def test_unlock_lifts_a_lock_and_forgets_the_failures(install):
    with install.session() as db:
        user = auth_service.get_user(db, username="boris")
        user.failed_logins = 5
        user.last_failure_at = signin._now()
        user.locked_until = signin._now() + timedelta(minutes=15)
    install.cli("user", "unlock", "boris")
    user = _user(install, "boris")
    assert user.locked_until is None and user.failed_logins == 0 and user.last_failure_at is None
    with install.session() as db:
        actors = db.scalars(select(AuditEntry.actor).where(AuditEntry.action == "user.unlock")).all()
    assert actors == ["cli"]
    assert "no such user" in _one_line_error(install.cli("user", "unlock", "nobody", check=False))


def test_set_duress_reads_standard_input_and_refuses_the_real_password(install):
    install.cli("user", "set-duress", "boris", "--password-stdin", input="a calm walk by the sea\n")
    assert passwords.verify_password(_user(install, "boris").duress_hash, "a calm walk by the sea")
    same = install.cli(
        "user", "set-duress", "boris", "--password-stdin", input=install.accounts["boris"].password + "\n", check=False
    )
    assert "differ from the password" in _one_line_error(same)
    weak = install.cli("user", "set-duress", "boris", "--password-stdin", input="password123\n", check=False)
    assert _one_line_error(weak)
    assert "--password-stdin" in _one_line_error(install.cli("user", "set-duress", "boris", check=False))
    assert passwords.verify_password(_user(install, "boris").duress_hash, "a calm walk by the sea")


def test_sessions_end_and_end_all(install):
    _sign_in_everywhere(install, "admin.one", "amina", "boris")
    install.cli("sessions", "end", "amina")
    assert _credentials(install, "amina") == 0
    assert _credentials(install, "boris") == 2
    install.cli("sessions", "end-all", "--except-me")
    assert _credentials(install, "boris") == 0
    assert _credentials(install, "admin.one") == 2
    install.cli("sessions", "end-all")
    assert _credentials(install, "admin.one") == 0
    with install.session() as db:
        actions = db.scalars(select(AuditEntry.action).where(AuditEntry.action.like("sessions.%"))).all()
    assert actions.count("sessions.end_all") == 2 and "sessions.end" in actions
