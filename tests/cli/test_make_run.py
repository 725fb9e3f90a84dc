"""`make run` as a new user meets it: it comes up, prints a first admin once, and a second run
keeps the data and the keys."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _make_run(data_dir: Path) -> tuple[str, str]:
    """Run `make run` until /api/v1/health answers; return (stdout, stderr) and stop it."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
    env.update({"HELPLINE_DATA_DIR": str(data_dir), "PORT": str(port)})
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"make run exited: {proc.communicate()}"
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
                if response.status_code == 200:
                    assert response.json() == {"status": "ok"}
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "make run did not come up within 120 s"
            time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
    return out, err


@pytest.mark.slow
def test_make_run_twice(tmp_path) -> None:
    data_dir = tmp_path / "data"
    out, _ = _make_run(data_dir)
    assert re.search(r"^\s+password: \S{20,}$", out, re.M), out
    assert re.search(r"^\s+otpauth://totp/Helpline:admin\?secret=", out, re.M), out
    key_file = data_dir / "keys.json"
    keys_before = key_file.read_bytes()
    db_size = (data_dir / "helpline.db").stat().st_size

    out2, _ = _make_run(data_dir)
    assert "password:" not in out2 and "otpauth://" not in out2, "a second run must not make another admin"
    assert key_file.read_bytes() == keys_before
    assert (data_dir / "helpline.db").stat().st_size >= db_size
