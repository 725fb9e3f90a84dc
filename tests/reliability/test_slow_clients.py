"""Slow and half-open clients hold no lock and stall nobody (one worker on SQLite, the worst case).

The attack: a client sends a form post's headers, with a session cookie, then trickles its body a
byte at a time. If any lock or transaction were held while the body is read, every signed-in reader
would wait behind it. Here such a client sits on every form route while ten signed-in reads are made;
each must answer. The timeout on those reads is generous: it is there so that a server that blocks
fails the test instead of hanging it, not to measure speed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.live_server import HOST, LiveServer, unique_name

FORM_ROUTES = (
    "/login",
    "/login/enrol",
    "/login/password",
    "/logout",
    "/lock",
    "/language",
    "/contacts/new",
    "/cases",
    "/cases/00000000-0000-4000-8000-000000000000/transitions",
    "/cases/00000000-0000-4000-8000-000000000000/assign",
    "/cases/00000000-0000-4000-8000-000000000000/verify",
    "/admin/users",
    "/admin/users/nobody/deactivate",
    "/admin/users/nobody/reset-totp",
    "/exports/aggregate",
    "/exports/records",
)
READ_TIMEOUT = 5.0  # seconds; a blocked server took 30 s before this was fixed


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module's slow clients: each test closes every socket it opened."""
    env = {"HELPLINE_BODY_TIMEOUT_SECONDS": "30", "HELPLINE_HEADER_TIMEOUT_SECONDS": "30"}
    with LiveServer(tmp_path_factory.mktemp("slow-clients"), env=env) as server:
        yield server


def _signed_in_reads(live: LiveServer, n: int = 10) -> list[int]:
    token = live.issue_token(live.create_user(unique_name("reader"), "caseworker", via_cli=False))
    statuses = []
    with httpx.Client(
        base_url=live.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=READ_TIMEOUT
    ) as http:
        for _ in range(n):
            statuses.append(http.get("/api/v1/contacts").status_code)
    return statuses


@pytest.mark.slow
def test_a_slow_body_on_every_form_route_holds_up_no_signed_in_reader(live: LiveServer) -> None:
    mark = live.log_mark()
    stop = threading.Event()
    sockets = []
    for path in FORM_ROUTES:
        sock = socket.create_connection((HOST, live.port))
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nCookie: helpline_session=anything\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\nu".encode()
        )
        sockets.append(sock)

    def trickle() -> None:
        while not stop.is_set():
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.sendall(b"x")
            time.sleep(0.5)

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        time.sleep(1.0)  # every slow client is inside the server, mid-body
        assert _signed_in_reads(live) == [200] * 10
    finally:
        stop.set()
        trickler.join(timeout=5)
        for sock in sockets:
            sock.close()
    assert "database is locked" not in live.log_since(mark)


@pytest.mark.slow
def test_fifteen_hundred_half_open_connections_stall_nobody(live: LiveServer) -> None:
    sockets = []
    try:
        for _ in range(1500):
            sock = socket.create_connection((HOST, live.port))
            sock.sendall(b"GET /api/v1/contacts HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            sockets.append(sock)
        assert _signed_in_reads(live) == [200] * 10
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.slow
def test_slow_headers_and_bodies_are_answered_408(tmp_path) -> None:
    env = {"HELPLINE_BODY_TIMEOUT_SECONDS": "1", "HELPLINE_HEADER_TIMEOUT_SECONDS": "1"}
    with LiveServer(tmp_path / "live", env=env) as live:
        answers = []
        for request in (
            b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n",
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nu",
        ):
            with socket.create_connection((HOST, live.port), timeout=10) as sock:
                sock.sendall(request)
                answers.append(sock.recv(100).split(b"\r\n", 1)[0])
    assert answers == [b"HTTP/1.1 408 Request Timeout"] * 2
