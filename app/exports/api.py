"""Streamed exports for analysts and admins: the same files as the CLI.

The database work (the stats read, or the record counts) happens in the request's unit of work before the
response starts, so a bad range is still a clean 422. The rows are then streamed from counts held in memory,
and the audit entry is written when the stream ends, in its own short transaction (the request's session is
closed by then).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from app.crypto import service as crypto
from app.db import unit_of_work
from app.dependencies import DbSession, Exporter
from app.exports import service as export_service

router = APIRouter(prefix="/exports", tags=["exports"])

SessionOpener = Callable[[], AbstractContextManager[Session]]


def session_opener(request: Request) -> SessionOpener:
    """Opens a fresh unit of work on the app's engine (for work after the request's session is closed)."""
    state = request.app.state

    @contextmanager
    def open_session() -> Iterator[Session]:
        with unit_of_work(state.engine) as session:
            crypto.bind(session, settings=state.settings, keyring=state.keyring)
            yield session

    return open_session


Opener = Annotated[SessionOpener, Depends(session_opener)]


def _stream(prepared: export_service.Prepared, *, actor: str, opener: SessionOpener) -> Iterator[str]:
    complete = False
    try:
        yield from prepared.chunks
        complete = True
    finally:
        with opener() as session:
            rows = prepared.rows if complete else 0
            export_service.record_export(session, actor=actor, prepared=prepared, rows=rows, complete=complete)


def _download(
    prepared: export_service.Prepared, *, media_type: str, filename: str, actor: str, opener: SessionOpener
) -> StreamingResponse:
    return StreamingResponse(
        _stream(prepared, actor=actor, opener=opener),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@router.get("/aggregate.csv", response_class=StreamingResponse)
def aggregate_csv(
    session: DbSession,
    user: Exporter,
    opener: Opener,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: date | None = None,
    period: Annotated[str | None, Query(description="one release: 2026-03, 2026-Q1 or 2026")] = None,
) -> StreamingResponse:
    prepared = export_service.aggregate_report(session, fmt="csv", start=from_, end=to, period=period)
    return _download(
        prepared,
        media_type="text/csv; charset=utf-8",
        filename="helpline-aggregate.csv",
        actor=user.username,
        opener=opener,
    )


@router.get("/aggregate.json", response_class=StreamingResponse)
def aggregate_json(
    session: DbSession,
    user: Exporter,
    opener: Opener,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: date | None = None,
    period: Annotated[str | None, Query(description="one release: 2026-03, 2026-Q1 or 2026")] = None,
) -> StreamingResponse:
    prepared = export_service.aggregate_report(session, fmt="json", start=from_, end=to, period=period)
    return _download(
        prepared, media_type="application/json", filename="helpline-aggregate.json", actor=user.username, opener=opener
    )


@router.get("/records.csv", response_class=StreamingResponse)
def records_csv(session: DbSession, user: Exporter, opener: Opener) -> StreamingResponse:
    prepared = export_service.records_export(session)
    return _download(
        prepared,
        media_type="text/csv; charset=utf-8",
        filename="helpline-records.csv",
        actor=user.username,
        opener=opener,
    )
