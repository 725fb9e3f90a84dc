"""The load and fault runs count into the same figures as tests/security."""

from __future__ import annotations

import pytest

from tests.security import figures


def pytest_configure(config: pytest.Config) -> None:
    figures.install(config)
