"""The coordinators' "needs attention" page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.attention import service as attention
from app.auth.models import Role
from app.web import forms
from app.web.visit import CheckedForm, SignedIn, redirect, render

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/attention")
def queue(visit: SignedIn, done: int = 0) -> Response:
    user = visit.require(Role.coordinator)
    context = {"queue": attention.list_open(session=visit.db, actor=user), "done": bool(done)}
    return render(visit, "attention.html", context)


@router.post("/attention/{item_id}/resolve")
def resolve(item_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.coordinator)
    attention.resolve(session=visit.db, actor=user, item_id=forms.parse_id(item_id))
    return redirect(visit, "/attention?done=1")
