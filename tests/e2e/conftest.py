"""Browser tests: a real server and one Debian Chromium per test module.

Each test opens its own browser context (its own cookies, storage and clock), so the tests of a module share
the browser process and nothing else. Module scope, not package: this folder is not a Python package, and a
"package" fixture here would live to the end of the session, leaving Playwright's event loop running under
every later test (``asyncio.run`` and a second ``sync_playwright`` then refuse to start).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.browser import launch_chromium
from tests.support.live_server import LiveServer


@pytest.fixture(scope="module")
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp(f"{request.module.__name__.rsplit('.', 1)[-1]}-e2e")) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = launch_chromium(pw)
        yield chromium
        chromium.close()
