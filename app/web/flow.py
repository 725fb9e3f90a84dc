"""How one request flows through a worker: body first, a bounded number at once, replayed on a lock race.

No lock and no transaction is ever held across network I/O. This middleware reads the whole request
body (within ``body_timeout_seconds``, 408 after it; at most ``max_body_bytes``, 413 past it) before
the application — and so before any unit of work — runs; a client that trickles its body one byte at a
time holds a socket, nothing else. Then the request waits for one of ``max_in_flight`` slots of this
worker, so a burst queues here instead of in the database pool.

Each request gets an id. A deadlock, serialization failure or SQLite busy (``app.db.is_retryable``),
or a unique key another transaction claimed first, replays the whole request from the buffered body —
its transaction was rolled back, so the replay starts clean — bounded by ``app.db.ATTEMPTS`` and logged.
Anything else unexpected answers 500 as JSON ``{"detail": …, "request_id": …}``, logs the same id with
the error's class (never a value), and leaves the connection open for the client's next request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import traceback
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from app import db
from app.config import get_settings

log = logging.getLogger("helpline")

# The unit of work reads this from the request's state: a replayed read takes the write lock up front.
REPLAY_AS_WRITER = "replay_as_writer"
REQUEST_ID = "request_id"


class BodyTimeout(Exception):
    pass


class BodyTooLarge(Exception):
    pass


class RequestFlow:
    def __init__(
        self,
        app: ASGIApp,
        *,
        body_timeout: float,
        max_body_bytes: int,
        max_in_flight: int,
        in_flight_wait: float,
    ) -> None:
        self.app = app
        self.body_timeout = body_timeout
        self.max_body_bytes = max_body_bytes
        self.in_flight_wait = in_flight_wait
        self.slots = asyncio.Semaphore(max_in_flight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        try:
            body = await asyncio.wait_for(self._read_body(receive), timeout=self.body_timeout)
        except TimeoutError:
            await _answer(send, 408, "the request body did not arrive in time", request_id, close=True)
            return
        except BodyTooLarge:
            await _answer(send, 413, "the request body is too large", request_id, close=True)
            return
        if body is None:
            return  # the client went away
        try:
            await asyncio.wait_for(self.slots.acquire(), timeout=self.in_flight_wait)
        except TimeoutError:
            await _answer(send, 503, "the server is busy; try again", request_id)
            return
        try:
            await self._run(scope, receive, send, body, request_id)
        finally:
            self.slots.release()

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _run(self, scope: Scope, receive: Receive, send: Send, body: bytes, request_id: str) -> None:
        as_writer = False
        for attempt in range(1, db.ATTEMPTS + 1):
            state = dict(scope.get("state") or {})
            state[REQUEST_ID] = request_id
            state[REPLAY_AS_WRITER] = as_writer
            started = False
            given = False

            async def receive_once() -> Message:
                nonlocal given
                if not given:
                    given = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()  # after the body, only a disconnect can come

            async def tracked_send(message: Message) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                    message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                await send(message)

            attempt_scope = {**scope, "state": state}
            try:
                await self.app(attempt_scope, receive_once, tracked_send)
                return
            except Exception as exc:
                if started:
                    _log_failure(attempt_scope, request_id, exc, "after the answer began")
                    raise
                race = db.is_unique_race(exc)
                if (db.is_retryable(exc) or race) and attempt < db.ATTEMPTS:
                    log.warning(
                        "request %s replayed (attempt %d of %d): %s",
                        request_id,
                        attempt + 1,
                        db.ATTEMPTS,
                        db.failure_name(exc),
                    )
                    as_writer = True
                    await asyncio.sleep(db.backoff(attempt))
                    continue
                if race:
                    # A rival claimed the same unique row every time: the record changed meanwhile.
                    await _answer(send, 409, "the record changed meanwhile; reload and try again", request_id)
                    return
                if db.is_retryable(exc):
                    log.warning("request %s gave up after %d attempts: %s", request_id, attempt, db.failure_name(exc))
                    await _answer(send, 503, "the server is busy; try again", request_id)
                    return
                _log_failure(attempt_scope, request_id, exc, "")
                await _answer(send, 500, f"internal error (request {request_id})", request_id)
                return


def _log_failure(scope: Scope, request_id: str, exc: BaseException, when: str) -> None:
    # The route's template, never the concrete path (it may carry ids) and never the error's message
    # (it may carry a value); the traceback names code lines only.
    route = scope.get("route")
    where = getattr(route, "path", None) or "unrouted"
    frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    log.error(
        "request %s failed%s: %s %s: %s\n%s",
        request_id,
        f" {when}" if when else "",
        scope.get("method", "?"),
        where,
        db.failure_name(exc),
        frames,
    )


async def _answer(send: Send, status: int, detail: str, request_id: str, *, close: bool = False) -> None:
    payload: dict[str, Any] = {"detail": detail, "request_id": request_id}
    body = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-request-id", request_id.encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for a request's headers: 408 and close after it.

    uvicorn times out idle keep-alive connections but not a client that sends its headers slowly;
    such connections cost a socket each, and enough of them would take every file descriptor.
    """

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(get_settings().header_timeout_seconds, self._headers_late)

    def _headers_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is under way: its body has its own deadline (RequestFlow)
        body = b'{"detail": "the request headers did not arrive in time"}'
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            + body
        )
        self.transport.close()
