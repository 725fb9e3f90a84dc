"""The known-bad list's page for coordinators: add with a reason, list without the handles, remove."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError

from app.auth.models import Role
from app.contacts import flagged
from app.contacts.schemas import FlaggedHandleIn
from app.errors import Conflict, Invalid
from app.web import forms
from app.web.visit import CheckedForm, SignedIn, Visit, redirect, render

router = APIRouter(tags=["pages"], include_in_schema=False)


def _page(visit: Visit, *, extra: dict[str, Any] | None = None, status: int = 200) -> Response:
    user = visit.require(Role.coordinator)
    context: dict[str, Any] = {
        "entries": flagged.list_flagged_handles(session=visit.db, actor=user),
        "errors": {},
        "values": {"handle": "", "reason": ""},
        "added": False,
        "removed": False,
        "confirm": None,
    }
    context.update(extra or {})
    return render(visit, "known_bad.html", context, status=status)


@router.get("/known-bad")
def known_bad(visit: SignedIn, added: int = 0, removed: int = 0) -> Response:
    return _page(visit, extra={"added": bool(added), "removed": bool(removed)})


@router.post("/known-bad")
def add(visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.coordinator)
    typed = forms.values(form, "handle", "reason")
    try:
        data = FlaggedHandleIn.model_validate(typed)
        with visit.db.begin_nested():
            flagged.add_flagged_handle(session=visit.db, actor=user, data=data)
    except (ValidationError, Invalid) as exc:
        errors = forms.translated(visit, exc)
        return _page(visit, extra={"errors": errors, "values": typed}, status=422)
    except Conflict:
        errors = {"handle": visit._("This handle is already on the list.")}
        return _page(visit, extra={"errors": errors, "values": typed}, status=409)
    return redirect(visit, "/known-bad?added=1")


@router.post("/known-bad/{entry_id}/remove")
def remove(entry_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.coordinator)
    ident = forms.parse_id(entry_id)
    if form.get("confirm") != "yes":
        # Removing destroys the entry's key: asked again, and nothing changes until confirmed.
        entries = flagged.list_flagged_handles(session=visit.db, actor=user).items
        entry = next((e for e in entries if e.id == ident), None) or SimpleNamespace(id=ident, added_on=None)
        return _page(visit, extra={"confirm": entry})
    flagged.remove_flagged_handle(session=visit.db, actor=user, entry_id=ident)
    return redirect(visit, "/known-bad?removed=1")
