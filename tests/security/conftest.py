"""Fixtures of the adversarial suite; its figures go to tests/security/last-run.json."""

from __future__ import annotations

from collections.abc import Iterator

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
