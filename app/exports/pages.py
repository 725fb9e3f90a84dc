"""The exports page: the two disclosure-controlled downloads, for analysts and admins."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.auth.models import Role
from app.web.visit import SignedIn, render

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/exports")
def exports(visit: SignedIn) -> Response:
    visit.require(Role.analyst, Role.admin)
    return render(visit, "exports.html", {"k": visit.settings.suppression_k})
