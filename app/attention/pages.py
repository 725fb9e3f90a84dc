"""The coordinators' "needs attention" page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.attention import service as attention
from app.auth.models import Role
from app.web import forms
from app.web.visit import CheckedForm, SignedIn, redirect, render

router = APIRouter(tags=["pages"], include_in_schema=False)


PAGE_SIZE = 25


@router.get("/attention")
def queue(visit: SignedIn, done: int = 0, page: int = 1) -> Response:
    user = visit.require(Role.coordinator)
    page = max(1, min(page, 100_000))
    listing = attention.list_open(session=visit.db, actor=user, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    context = {
        "queue": listing,
        "done": bool(done),
        "page": page,
        "pages": max(1, -(-listing.total // PAGE_SIZE)),
    }
    return render(visit, "attention.html", context)


@router.post("/attention/{item_id}/resolve")
def resolve(item_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.coordinator)
    attention.resolve(session=visit.db, actor=user, item_id=forms.parse_id(item_id))
    return redirect(visit, "/attention?done=1")
