"""JSON route for the statistics summary (coordinators, analysts, admins)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from app.dependencies import DbSession, StatsReader
from app.stats import service as stats_service
from app.stats.schemas import Interval, Summary

router = APIRouter(prefix="/stats", tags=["stats"])


@router.get("/summary", response_model=Summary, response_model_by_alias=True)
def summary(
    session: DbSession,
    user: StatsReader,
    from_: Annotated[date | None, Query(alias="from", description="snapped back to its period's first day")] = None,
    to: Annotated[date | None, Query(description="snapped on to its period's last day")] = None,
    interval: Interval = "month",
    noise: Annotated[bool, Query(description="differential-privacy noise; whole past periods only")] = False,
) -> Summary:
    return stats_service.summary(session, start=from_, end=to, interval=interval, noise=noise)
