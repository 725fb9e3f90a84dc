"""JSON routes for statistics: the summary (exact or published by role) and the release ledger."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from app.auth.models import Role
from app.dependencies import DbSession, StatsReader
from app.stats import published
from app.stats import service as stats_service
from app.stats.schemas import Interval, Release, ReleaseListItem, Summary

router = APIRouter(prefix="/stats", tags=["stats"])

# Who already sees every case's region, dates and status gets exact counts; everyone else the ledger.
OPERATIONAL = (Role.coordinator, Role.admin)


def sees_exact(role: str) -> bool:
    return role in OPERATIONAL


@router.get("/summary", response_model=Summary, response_model_by_alias=True)
def summary(
    session: DbSession,
    user: StatsReader,
    from_: Annotated[date | None, Query(alias="from", description="snapped back to its period's first day")] = None,
    to: Annotated[date | None, Query(description="snapped on to its period's last day")] = None,
    interval: Interval = "month",
) -> Summary:
    if sees_exact(user.role):
        return stats_service.summary(session, start=from_, end=to, interval=interval)
    return published.summary(session, start=from_, end=to, interval=interval)


@router.get("/releases", response_model=list[ReleaseListItem])
def releases(session: DbSession, user: StatsReader) -> list[ReleaseListItem]:
    return published.list_releases(session)


@router.get("/releases/{period}", response_model=Release)
def release(session: DbSession, user: StatsReader, period: str) -> Release:
    return published.get_release(session, period=period)
