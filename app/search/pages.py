"""The caseworker's search page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.auth.models import Role
from app.cases import permissions
from app.search import service as search_service
from app.web.visit import SignedIn, render

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/search")
def search(visit: SignedIn, q: str = "", by: str = "handle") -> Response:
    user = visit.require(Role.caseworker)
    result = error = None
    if q.strip():
        try:
            result = search_service.search(session=visit.db, actor=user, query=q, alias=by == "alias")
        except permissions.Alarmed:
            # The alarm is kept by the unit of work (a 429 keeps its changes); the page explains.
            error = visit._("Not searched: too many records opened in the last hour. Your coordinator has been told.")
    return render(
        visit,
        "search.html",
        {"q": q[:200], "by": "alias" if by == "alias" else "handle", "result": result, "error": error},
        status=429 if error else 200,
    )
