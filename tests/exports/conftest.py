"""Export tests share the test's rolled-back session with the streamed responses' audit step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy.orm import Session


@pytest.fixture
def export_client(client, session: Session):
    """The API client, with the end-of-stream audit transaction running in the test's own session."""
    from app.exports import api as export_api

    @contextmanager
    def shared() -> Iterator[Session]:
        yield session
        session.flush()

    client.app.dependency_overrides[export_api.session_opener] = lambda: shared
    return client
