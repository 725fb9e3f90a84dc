"""A response that waits before it is sent: the sign-in slow-down, served outside any transaction.

The wait happens when the response is sent, after the unit of work has committed, as an ``await``:
it holds no database lock, no connection and no worker thread.
"""

from __future__ import annotations

import asyncio

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class Delayed(Response):
    def __init__(self, inner: Response, delay: float) -> None:
        # Not Response.__init__: this only forwards to ``inner`` once the delay has passed.
        self.inner = inner
        self.delay = delay
        self.status_code = inner.status_code
        self.background = None

    @property
    def headers(self):  # type: ignore[no-untyped-def,override]
        return self.inner.headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        await self.inner(scope, receive, send)


def delayed(inner: Response, delay: float) -> Response:
    return Delayed(inner, delay) if delay > 0 else inner
