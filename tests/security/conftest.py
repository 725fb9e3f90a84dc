"""Fixtures of the adversarial suite; its figures go to build/security/last-run.json."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.security import figures
from tests.support.live_server import LiveServer


def pytest_configure(config: pytest.Config) -> None:
    figures.install(config)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real ``helpline serve`` on SQLite for the attacks that need the whole stack."""
    with LiveServer(tmp_path_factory.mktemp("live-security")) as server:
        yield server


@pytest.fixture
def api(client, session):  # type: ignore[no-untyped-def]
    """The in-process client, with streamed exports on the test's own session too.

    Exports stream after the request's session has closed, from a session of their own; in tests
    that must be the test's session, or SQLite would wait on the test's own open transaction.
    """
    from app.exports.api import session_opener

    @contextmanager
    def same_session() -> Iterator[object]:
        yield session

    client.app.dependency_overrides[session_opener] = lambda: same_session
    return client
