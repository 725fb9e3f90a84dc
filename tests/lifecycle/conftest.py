"""A committed, migrated install per test (rotation, backup and purge manage their own transactions)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lifecycle.seed import Install, new_install


@pytest.fixture
def install(backend: str, migrated_url_factory, tmp_path: Path) -> Iterator[Install]:
    inst = new_install(tmp_path / "data", migrated_url_factory(backend))
    yield inst
    inst.dispose()
