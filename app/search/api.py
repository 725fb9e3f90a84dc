"""JSON route of a caseworker's search."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.contacts.schemas import ERROR_RESPONSES
from app.dependencies import Caseworker, DbSession
from app.search import service as search_service
from app.search.schemas import SearchResult

router = APIRouter(tags=["search"])


@router.get("/search", response_model=SearchResult, responses=ERROR_RESPONSES)
def search(
    session: DbSession,
    user: Caseworker,
    q: Annotated[str, Query(max_length=200)] = "",
    by: Literal["handle", "alias"] = "handle",
) -> SearchResult:
    """Your contacts and cases by code, by handle (any spelling), or by alias; every record opened is audited."""
    return search_service.search(session=session, actor=user, query=q, alias=by == "alias")
