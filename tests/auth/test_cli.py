"""``helpline user unlock|reset-password|set-duress`` and ``helpline sessions end|end-all``, run in this process.

Each command through ``app.cli.main`` as an admin types it: what it prints, each refusal's one line and exit
code, and what it writes (the account, its sessions and tokens, the audit entry signed "cli").
tests/cli/test_account_commands.py runs the same commands as child processes, as the installed script.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.auth import passwords, sessions, signin
from app.auth import service as auth_service
from app.auth.models import ApiToken, SignInThrottle, User, WebSession
from app.cli import main
from app.config import get_settings
from app.db import get_engine
from tests.factories import PASSWORD, Factory
from tests.lifecycle.seed import Install, new_install

NAMES = ("admin.one", "amina", "boris")
DURESS = "a calm walk by the sea"


@pytest.fixture
def install(backend: str, migrated_url_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """A committed install with an admin, a caseworker and a coordinator, and ``helpline`` pointed at it."""
    inst = new_install(tmp_path / "data", migrated_url_factory(backend))
    with inst.session() as db:
        factory = Factory(db)
        for name, role in zip(NAMES, ("admin", "caseworker", "coordinator"), strict=True):
            factory.account(role, name)
    monkeypatch.setenv("HELPLINE_DATA_DIR", str(inst.settings.data_dir))
    monkeypatch.setenv("HELPLINE_KEY_FILE", str(inst.settings.key_path))
    monkeypatch.setenv("HELPLINE_DATABASE_URL", inst.settings.database_url)
    get_settings.cache_clear()
    umask = os.umask(0o022)  # main() narrows the process's umask; the other tests keep theirs
    os.umask(umask)
    try:
        yield inst
    finally:
        os.umask(umask)
        get_engine(inst.settings).dispose()
        get_settings.cache_clear()
        inst.dispose()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``helpline ARGV``."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _user(install: Install, name: str) -> User:
    with install.session() as db:
        user = db.scalar(select(User).where(User.username == name))
        assert user is not None
        return user


def _audit(install: Install) -> list[tuple[str, str, str, dict]]:
    """(actor, action, target, detail) of every entry written by the CLI, oldest first."""
    with install.session() as db:
        rows = db.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.target, AuditEntry.detail)
            .where(AuditEntry.actor == "cli")
            .order_by(AuditEntry.seq)
        )
        return [(actor, action, target, json.loads(detail)) for actor, action, target, detail in rows]


def _signed_in_everywhere(install: Install, *names: str) -> None:
    """One web session and one API token for each name."""
    with install.session() as db:
        for name in names:
            user = auth_service.get_user(db, username=name)
            sessions.start(db, user=user)
            auth_service.issue_token(db, user=user)


def _credentials(install: Install) -> dict[str, int]:
    """Sessions plus tokens, per name."""
    with install.session() as db:
        out = {}
        for name in NAMES:
            user_id = db.scalar(select(User.id).where(User.username == name))
            web = db.scalar(select(func.count()).select_from(WebSession).where(WebSession.user_id == user_id))
            api = db.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user_id))
            out[name] = web + api
        return out


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


# ----------------------------------------------------------------------------- user unlock


def test_unlock_lifts_the_lock_forgets_the_failures_and_is_audited(install, capsys):
    with install.session() as db:
        for _ in range(2):
            with pytest.raises(signin.Refused):
                signin.authenticate(db, username="boris", password="not the password at all", otp="000000")
        user = auth_service.get_user(db, username="boris")
        user.failed_logins = 5
        user.locked_until = signin._now() + timedelta(minutes=15)
    with install.session() as db:
        assert db.scalar(select(func.count()).select_from(SignInThrottle)) == 1
    assert _run(capsys, "user", "unlock", "boris") == (0, "boris: unlocked; recent sign-in failures forgotten\n", "")
    user = _user(install, "boris")
    assert (user.failed_logins, user.last_failure_at, user.locked_until) == (0, None, None)
    with install.session() as db:
        assert db.scalar(select(func.count()).select_from(SignInThrottle)) == 0
    assert _audit(install) == [("cli", "user.unlock", "boris", {})]


def test_unlock_of_a_name_that_does_not_exist_is_one_line_and_changes_nothing(install, capsys):
    assert _run(capsys, "user", "unlock", "nobody") == (1, "", "helpline: no such user\n")
    assert _audit(install) == []


# ----------------------------------------------------------------------------- user reset-password


def test_reset_password_prints_a_one_time_password_and_ends_every_session_and_token(install, capsys):
    _signed_in_everywhere(install, "amina", "boris")
    code, out, err = _run(capsys, "user", "reset-password", "amina")
    assert (code, err) == (0, "")
    first, second = out.splitlines()
    assert first.startswith("password: ")
    one_time = first.removeprefix("password: ")
    assert len(one_time) >= 24
    assert second == (
        "one-time: they must choose their own at the next sign-in; every session and token of theirs has ended"
    )
    user = _user(install, "amina")
    assert user.must_change_password is True
    assert passwords.verify_password(user.password_hash, one_time)
    assert not passwords.verify_password(user.password_hash, PASSWORD)
    assert _credentials(install) == {"admin.one": 0, "amina": 0, "boris": 2}
    assert _audit(install) == [("cli", "user.password_reset", "amina", {})]


def test_reset_password_of_a_name_that_does_not_exist_prints_no_password(install, capsys):
    assert _run(capsys, "user", "reset-password", "nobody") == (1, "", "helpline: no such user\n")
    assert _audit(install) == []


# ----------------------------------------------------------------------------- user set-duress


@pytest.mark.parametrize(
    ("stdin", "duress", "not_it"),
    [
        (DURESS + "\r\nthe second line is not read\n", DURESS, DURESS + "\r"),
        # Only the line break is taken off: spaces and letters at the end are the password's own.
        (" a calm walk by the sea \n", " a calm walk by the sea ", " a calm walk by the sea"),
        ("a calm walk to sector X\n", "a calm walk to sector X", "a calm walk to sector "),
    ],
)
def test_set_duress_reads_one_line_of_standard_input(install, capsys, monkeypatch, stdin, duress, not_it):
    _stdin(monkeypatch, stdin)
    assert _run(capsys, "user", "set-duress", "boris", "--password-stdin") == (0, "boris: duress password set\n", "")
    user = _user(install, "boris")
    assert passwords.verify_password(user.duress_hash, duress)
    assert not passwords.verify_password(user.duress_hash, not_it)
    assert passwords.verify_password(user.password_hash, PASSWORD)  # the real one is untouched
    assert _audit(install) == [("cli", "user.duress_set", "boris", {})]


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (
            ("boris",),
            DURESS + "\n",
            "helpline: give the duress password on standard input with --password-stdin (never as an argument)\n",
        ),
        (("boris", "--password-stdin"), "", "helpline: no duress password on standard input\n"),
        (("boris", "--password-stdin"), "\n", "helpline: no duress password on standard input\n"),
        (
            ("boris", "--password-stdin"),
            PASSWORD + "\n",
            "helpline: duress: the duress password must differ from the password\n",
        ),
        (("boris", "--password-stdin"), "short\n", "helpline: password: use at least 12 characters\n"),
        (("nobody", "--password-stdin"), DURESS + "\n", "helpline: no such user\n"),
    ],
)
def test_set_duress_refusals_are_one_line_and_set_nothing(install, capsys, monkeypatch, argv, stdin, message):
    _stdin(monkeypatch, stdin)
    assert _run(capsys, "user", "set-duress", *argv) == (1, "", message)
    assert _user(install, "boris").duress_hash is None
    assert _audit(install) == []


# ----------------------------------------------------------------------------- sessions end / end-all


def test_sessions_end_ends_one_persons_sessions_and_tokens_only(install, capsys):
    _signed_in_everywhere(install, *NAMES)
    assert _run(capsys, "sessions", "end", "amina") == (0, "amina: every session and token ended\n", "")
    assert _credentials(install) == {"admin.one": 2, "amina": 0, "boris": 2}
    assert _audit(install) == [("cli", "sessions.end", "amina", {})]
    assert _run(capsys, "sessions", "end", "nobody") == (1, "", "helpline: no such user\n")
    assert len(_audit(install)) == 1


def test_sessions_end_all_keeps_the_admins_only_when_asked(install, capsys):
    _signed_in_everywhere(install, *NAMES)
    kept = _run(capsys, "sessions", "end-all", "--except-me")
    assert kept == (0, "every session and token ended for 2 accounts (admins' sessions kept)\n", "")
    assert _credentials(install) == {"admin.one": 2, "amina": 0, "boris": 0}
    assert _run(capsys, "sessions", "end-all") == (0, "every session and token ended for 3 accounts\n", "")
    assert _credentials(install) == {"admin.one": 0, "amina": 0, "boris": 0}
    assert _audit(install) == [
        ("cli", "sessions.end_all", "*", {"accounts": 2}),
        ("cli", "sessions.end_all", "*", {"accounts": 3}),
    ]


# ----------------------------------------------------------------------------- usage


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("user",), "helpline user: the following arguments are required: user_command (see helpline user --help)"),
        (
            ("sessions",),
            "helpline sessions: the following arguments are required: sessions_command (see helpline sessions --help)",
        ),
        (("user", "unlock"), "helpline user unlock: the following arguments are required: name"),
        (("sessions", "end"), "helpline sessions end: the following arguments are required: name"),
    ],
)
def test_a_command_without_its_subcommand_or_name_is_a_usage_error(install, capsys, argv, message):
    with pytest.raises(SystemExit) as refused:
        main(list(argv))
    assert refused.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(message)
    assert _audit(install) == []


def test_the_help_says_what_each_command_does(install, capsys):
    helps = {}
    for argv in ((), ("user",), ("sessions",), ("user", "set-duress"), ("sessions", "end-all")):
        with pytest.raises(SystemExit) as shown:
            main([*argv, "--help"])
        assert shown.value.code == 0
        helps[argv] = " ".join(capsys.readouterr().out.split())
    assert "user account recovery" in helps[()]
    assert "sessions end sessions and tokens at once" in helps[()]
    assert "unlock lift a lock (wrong codes or a duress sign-in)" in helps[("user",)]
    assert "reset-password a new one-time password; its holder must change it" in helps[("user",)]
    assert "set-duress set the duress password (read from standard input)" in helps[("user",)]
    assert "end end every session and token of one person (a lost phone or laptop)" in helps[("sessions",)]
    assert "end-all end every session and token of everyone (a seizure in progress)" in helps[("sessions",)]
    assert "--password-stdin read the duress password from standard input" in helps[("user", "set-duress")]
    assert "--except-me keep the sessions of admin accounts" in helps[("sessions", "end-all")]
