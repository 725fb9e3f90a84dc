"""The request flow on a real uvicorn server: body first, replay on a lock race, every 500 JSON.

A small ASGI application stands behind ``RequestFlow`` and ``HeaderDeadlineProtocol`` exactly as
Helpline's routes do, so failures can be made to happen on demand; the sockets are real.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.types import Receive, Scope, Send

from app.web.flow import HeaderDeadlineProtocol, RequestFlow
from tests.support.live_server import free_port


class Scripted:
    """Raises the scripted failures in turn, then answers 200 with the body it was given."""

    def __init__(self) -> None:
        self.failures: list[BaseException] = []
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.bodies.append(message.get("body", b""))
        if self.failures:
            raise self.failures.pop(0)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


def _locked() -> OperationalError:
    return OperationalError("UPDATE t", {}, sqlite3.OperationalError("database is locked"))


def _unique() -> IntegrityError:
    return IntegrityError("INSERT t", {}, sqlite3.IntegrityError("UNIQUE constraint failed: t.k"))


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Scripted, int]]:
    monkeypatch.setenv("HELPLINE_HEADER_TIMEOUT_SECONDS", "1")
    from app.config import get_settings

    get_settings.cache_clear()
    inner = Scripted()
    app = RequestFlow(inner, body_timeout=1.0, max_body_bytes=1000, max_in_flight=4, in_flight_wait=5)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=HeaderDeadlineProtocol, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield inner, port
    server.should_exit = True
    thread.join(timeout=10)
    get_settings.cache_clear()


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    headers = {k.lower(): v for k, v in headers.items()}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[:length]


def _post(sock: socket.socket, body: bytes) -> None:
    sock.sendall(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def test_an_unexpected_error_answers_json_with_a_request_id_in_the_log_and_the_connection_lives_on(
    served: tuple[Scripted, int], caplog: pytest.LogCaptureFixture
) -> None:
    inner, port = served
    inner.failures.append(RuntimeError("alias Zarema Musaeva"))
    with caplog.at_level(logging.ERROR, logger="helpline"), socket.create_connection(("127.0.0.1", port)) as sock:
        _post(sock, b"{}")
        status, headers, body = _read_answer(sock)
        assert status == 500
        assert headers["content-type"] == "application/json"
        answer = json.loads(body)
        request_id = answer["request_id"]
        assert request_id in answer["detail"] and headers["x-request-id"] == request_id
        _post(sock, b"again")  # the same connection
        assert _read_answer(sock)[0] == 200
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert request_id in logged and "RuntimeError" in logged
    assert "Zarema" not in logged  # the error's message may hold a value: never logged


def test_a_lock_race_replays_the_whole_request_with_the_same_body(
    served: tuple[Scripted, int], caplog: pytest.LogCaptureFixture
) -> None:
    inner, port = served
    inner.failures += [_locked(), _unique()]
    with caplog.at_level(logging.WARNING, logger="helpline"), socket.create_connection(("127.0.0.1", port)) as sock:
        _post(sock, b'{"n": 1}')
        status, _, body = _read_answer(sock)
    assert (status, body) == (200, b"ok")
    assert inner.bodies == [b'{"n": 1}'] * 3
    assert sum("replayed" in r.getMessage() for r in caplog.records) == 2


def test_replays_are_bounded_and_a_rival_that_always_wins_answers_409(served: tuple[Scripted, int]) -> None:
    inner, port = served
    inner.failures += [_unique() for _ in range(10)]
    with socket.create_connection(("127.0.0.1", port)) as sock:
        _post(sock, b"x")
        status, _, body = _read_answer(sock)
    assert status == 409 and "detail" in json.loads(body)
    assert len(inner.bodies) == 4  # app.db.ATTEMPTS


def test_a_trickled_body_is_cut_off_with_408_before_the_application_sees_it(served: tuple[Scripted, int]) -> None:
    inner, port = served
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\nu")
        sock.settimeout(10)
        status, headers, _ = _read_answer(sock)
    assert status == 408 and headers.get("connection") == "close"
    assert inner.bodies == []  # no unit of work ever began


def test_headers_sent_slowly_are_cut_off_with_408(served: tuple[Scripted, int]) -> None:
    _, port = served
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")  # never finished
        sock.settimeout(10)
        status, _, body = _read_answer(sock)
    assert status == 408 and "headers" in json.loads(body)["detail"]


def test_a_body_past_the_limit_answers_413(served: tuple[Scripted, int]) -> None:
    inner, port = served
    with socket.create_connection(("127.0.0.1", port)) as sock:
        _post(sock, b"x" * 2000)
        assert _read_answer(sock)[0] == 413
    assert inner.bodies == []


def test_requests_beyond_the_in_flight_bound_wait_for_a_slot() -> None:
    running = 0
    peak = 0

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal running, peak
        await receive()
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    flow = RequestFlow(slow, body_timeout=1, max_body_bytes=10, max_in_flight=3, in_flight_wait=5)

    async def one() -> int:
        sent: list[dict] = []
        scope = {"type": "http", "method": "GET", "path": "/", "headers": []}

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await flow(scope, receive, send)
        return int(sent[0]["status"])

    async def many() -> list[int]:
        return await asyncio.gather(*(one() for _ in range(12)))

    assert asyncio.run(many()) == [200] * 12
    assert peak == 3
