"""The core commands as a person runs them: exit codes, one-line errors, what is printed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pyotp
import pytest


def run(tmp_path: Path, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
    environment.update({"HELPLINE_DATA_DIR": str(tmp_path / "data"), **env})
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=environment,
        cwd=tmp_path,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *, code: int = 1) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_init_creates_a_private_key_file_and_a_migrated_database(tmp_path) -> None:
    result = run(tmp_path, "init")
    assert result.returncode == 0, result.stderr
    key_file = tmp_path / "data" / "keys.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "data" / "helpline.db").stat().st_mode) & 0o077 == 0
    assert len(json.loads(key_file.read_text())["keks"]) == 1


def test_init_refuses_to_overwrite_a_key(tmp_path) -> None:
    assert run(tmp_path, "init").returncode == 0
    key_file = tmp_path / "data" / "keys.json"
    before = key_file.read_bytes()
    line = assert_one_line_error(run(tmp_path, "init"))
    assert "already exists" in line and "refusing to overwrite" in line
    assert key_file.read_bytes() == before


def test_create_user_prints_a_password_and_a_totp_uri(tmp_path) -> None:
    run(tmp_path, "init")
    result = run(tmp_path, "create-user", "amina", "--role", "caseworker")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("password: ") and len(lines[0]) > len("password: ") + 12
    assert lines[1].startswith("otpauth://")
    assert pyotp.parse_uri(lines[1]).name == "amina"


def test_create_user_with_password_on_stdin_does_not_echo_it(tmp_path) -> None:
    run(tmp_path, "init")
    result = run(
        tmp_path, "create-user", "zaur", "--role", "coordinator", "--password-stdin", stdin="a long passphrase here\n"
    )
    assert result.returncode == 0, result.stderr
    assert "a long passphrase here" not in result.stdout
    assert [line[:10] for line in result.stdout.splitlines()] == ["otpauth://"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("create-user", "x", "--role", "superuser"), "invalid choice"),
        (("create-user", "bad name!", "--role", "admin"), "username"),
        (("frobnicate",), "invalid choice"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, args, expected) -> None:
    run(tmp_path, "init")
    result = run(tmp_path, *args)
    assert result.returncode != 0
    line = result.stderr.strip().splitlines()
    assert len(line) == 1 and expected in line[0], result.stderr
    assert "Traceback" not in result.stderr


def test_duplicate_user_is_refused_in_one_line(tmp_path) -> None:
    run(tmp_path, "init")
    assert run(tmp_path, "create-user", "amina", "--role", "caseworker").returncode == 0
    assert "already exists" in assert_one_line_error(run(tmp_path, "create-user", "amina", "--role", "admin"))


def test_commands_without_a_key_file_say_so(tmp_path) -> None:
    line = assert_one_line_error(run(tmp_path, "audit", "verify"))
    assert "key file" in line and "helpline init" in line


def test_a_group_readable_key_file_is_refused_at_start(tmp_path) -> None:
    run(tmp_path, "init")
    os.chmod(tmp_path / "data" / "keys.json", 0o640)
    line = assert_one_line_error(run(tmp_path, "audit", "verify"))
    assert "chmod 600" in line


def test_bad_settings_are_named(tmp_path) -> None:
    line = assert_one_line_error(run(tmp_path, "migrate", HELPLINE_SUPPRESSION_K="one"))
    assert "HELPLINE_SUPPRESSION_K" in line
    line = assert_one_line_error(run(tmp_path, "migrate", HELPLINE_KEY_PROVIDER="env"))
    assert "HELPLINE_MASTER_KEY" in line


def test_env_key_provider_works_without_a_key_file(tmp_path) -> None:
    import base64

    key = base64.b64encode(os.urandom(32)).decode()
    env = {"HELPLINE_KEY_PROVIDER": "env", "HELPLINE_MASTER_KEY": key}
    assert run(tmp_path, "migrate", **env).returncode == 0
    result = run(tmp_path, "create-user", "amina", "--role", "caseworker", **env)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "data" / "keys.json").exists()
