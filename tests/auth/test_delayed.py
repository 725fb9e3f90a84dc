"""The sign-in answer that waits: the inner response exactly, sent after its wait and never without it."""

from __future__ import annotations

import asyncio

import pytest
from starlette.responses import JSONResponse

from app.auth import delayed


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """Every wait the response awaits (and really waits)."""
    seen: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(seconds: float) -> None:
        seen.append(seconds)
        await real_sleep(seconds)

    monkeypatch.setattr(delayed.asyncio, "sleep", recording_sleep)
    return seen


def _sent(response) -> list[dict]:
    messages: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        messages.append(message)

    asyncio.run(response({"type": "http", "method": "POST", "path": "/login"}, receive, send))
    return messages


def test_a_delayed_answer_is_the_inner_one_sent_after_its_wait(waits):
    inner = JSONResponse({"detail": "refused"}, status_code=401, headers={"x-test": "kept"})
    answer = delayed.delayed(inner, 0.003)
    assert (answer.status_code, answer.background) == (401, None)
    assert answer.headers is inner.headers  # what middleware adds to it is what is sent
    messages = _sent(answer)
    assert waits == [0.003]
    assert messages[0]["type"] == "http.response.start"
    assert messages[0]["status"] == 401
    assert (b"x-test", b"kept") in messages[0]["headers"]
    assert messages[1]["body"] == b'{"detail":"refused"}'


def test_no_wait_means_no_wrapper_and_no_sleep(waits):
    inner = JSONResponse({"detail": "ok"})
    assert delayed.delayed(inner, 0.0) is inner
    assert _sent(delayed.Delayed(inner, 0.0))[1]["body"] == b'{"detail":"ok"}'
    assert waits == []
