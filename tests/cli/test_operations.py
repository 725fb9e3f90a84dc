"""Operating the service: a taken port, a bad worker count, a failed command, the container's start."""

from __future__ import annotations

import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_core_commands import assert_one_line_error, run


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_serve_on_a_busy_port_says_so_in_one_line(tmp_path: Path, busy_port: int) -> None:
    assert run(tmp_path, "init").returncode == 0
    line = assert_one_line_error(run(tmp_path, "serve", "--port", str(busy_port)))
    assert line == f"helpline: cannot serve on 127.0.0.1:{busy_port}: already in use"


@pytest.mark.parametrize("workers", ["0", "-1", "many"])
def test_serve_refuses_a_worker_count_below_one(tmp_path: Path, workers: str) -> None:
    line = assert_one_line_error(run(tmp_path, "serve", "--workers", workers), code=2)
    assert "--workers" in line and "workers must be" in line


def test_a_failing_read_only_command_leaves_no_data_directory(tmp_path: Path) -> None:
    line = assert_one_line_error(run(tmp_path, "keys", "status"))
    assert "key file" in line and "not found" in line
    assert not (tmp_path / "data").exists()


def test_the_container_start_explains_keys_and_makes_a_key_file_only_when_absent(
    tmp_path: Path, busy_port: int
) -> None:
    # The taken port stops it right after the set-up, so the test does not serve forever.
    first = run(tmp_path, "start", "--port", str(busy_port))
    assert first.returncode == 1
    key_file = tmp_path / "data" / "keys.json"
    assert first.stdout.splitlines()[0] == (
        f"keys come from the key file {key_file} (key provider 'file'); keep an offline copy, "
        "or set HELPLINE_KEY_PROVIDER=env or vault to keep keys off this disk"
    )
    assert "no admin account yet" in first.stdout and "password:" not in first.stdout
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    before = key_file.read_bytes()
    again = run(tmp_path, "start", "--port", str(busy_port))
    assert again.returncode == 1 and key_file.read_bytes() == before  # reused, never remade
    (tmp_path / "env").mkdir()
    env_start = run(
        tmp_path / "env",
        "start",
        "--port",
        str(busy_port),
        HELPLINE_KEY_PROVIDER="env",
        HELPLINE_MASTER_KEY="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )
    assert env_start.stdout.startswith("keys come from HELPLINE_MASTER_KEY")
    assert not (tmp_path / "env" / "data" / "keys.json").exists()


def test_keys_public_prints_the_key_backups_are_signed_with(tmp_path: Path) -> None:
    import base64

    from app.crypto import signing
    from app.crypto.keyring import FileKeyProvider, Keyring

    assert run(tmp_path, "init").returncode == 0
    result = run(tmp_path, "keys", "public")
    assert result.returncode == 0, result.stderr
    word, key = result.stdout.split()
    assert word == "verify-key" and len(base64.b64decode(key)) == 32
    keyring = Keyring(FileKeyProvider(tmp_path / "data" / "keys.json"))
    signature = signing.sign(keyring, context="backup", message=b"m")
    assert signing.verify(key, context="backup", message=b"m", signature=signature)
