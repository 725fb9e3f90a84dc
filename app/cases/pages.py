"""Cases: "my cases", a case's page (timeline, allowed moves, verification, assignment), opening a case."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError

from app.auth import service as auth_service
from app.auth.models import Role
from app.cases import service as case_service
from app.cases import workflow
from app.cases.schemas import CaseFields, TransitionIn
from app.cases.workflow import CaseStatus
from app.contacts import pages as contact_pages
from app.errors import Conflict, Forbidden, Invalid
from app.notes import pages as note_pages
from app.notes.schemas import CaseCorrectionIn
from app.referrals import pages as referral_pages
from app.web import forms, labels
from app.web.i18n import N_, filled, reason
from app.web.visit import CheckedForm, SignedIn, Visit, redirect, render

router = APIRouter(tags=["pages"], include_in_schema=False)

PAGE_SIZE = 25
CASE_FIELDS = ("full_name", "handle", "location", "family_situation", "notes")


# What the case services may say to a page, marked here for the catalog (the services stay free of the web layer).
SERVICE_MESSAGES = (
    N_("the case moved meanwhile; reload it"),
    N_("this contact was shredded"),
    N_("a case is already open from this contact"),
    N_("a case cannot move from {status} to {target}"),
    N_("moving to {target} needs a verification by someone other than the case's opener"),
    N_("a {status} case cannot be verified"),
    N_("this case is already verified"),
    N_("this case was shredded"),
)


def _conflict_message(visit: Visit, exc: Conflict) -> str:
    """The service's reason in the visitor's language, a status named by its translated label."""

    def shown(_place: str, value: object) -> str:
        return visit._(labels.label("statuses", str(value)))

    return filled(
        visit._, N_("That change is not possible now: {reason}"), {"reason": reason(visit._, exc, shown=shown)}
    )


@router.get("/cases")
def cases(
    visit: SignedIn, status: str = "", region: str = "", opened_from: str = "", opened_to: str = "", page: int = 1
) -> Response:
    user = visit.require(Role.caseworker, Role.coordinator)
    page = max(1, min(page, 100_000))
    listing = case_service.list_cases(
        session=visit.db,
        actor=user,
        status=status if status in CaseStatus.__members__ else None,
        region=region if region in visit.settings.regions else None,
        opened_from=forms.optional_day(opened_from),
        opened_to=forms.optional_day(opened_to),
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    filters = {"status": status, "region": region, "opened_from": opened_from, "opened_to": opened_to}
    return render(
        visit,
        "cases.html",
        {
            "listing": listing,
            "filters": filters,
            "query": urlencode({k: v for k, v in filters.items() if v}),
            "page": page,
            "pages": max(1, -(-listing.total // PAGE_SIZE)),
            "regions": visit.settings.regions,
            "statuses": [s.value for s in CaseStatus],
        },
    )


@router.post("/cases")
def open_case(visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.caseworker)
    contact_id = forms.parse_id(str(form.get("contact_id", "")))
    typed = forms.values(form, *CASE_FIELDS)
    try:
        data = CaseFields.model_validate(typed)
        with visit.db.begin_nested():
            opened = case_service.open_case(session=visit.db, actor=user, contact_id=contact_id, data=data)
    except (ValidationError, Invalid) as exc:
        errors = forms.translated(visit, exc)
        extra = {"case_values": typed, "case_errors": errors}
        return contact_pages.contact_page(visit, str(contact_id), extra=extra, status=422)
    return redirect(visit, f"/cases/{opened.id}")


# The usual next move from each status, first allowed one wins: the page's main button.
USUAL_NEXT: dict[str, tuple[str, ...]] = {
    "new": ("verifying",),
    "verifying": ("planning",),
    "planning": ("in_transit",),
    "in_transit": ("evacuated",),
    "evacuated": ("resettled",),
    "resettled": ("closed",),
    "paused": ("planning", "verifying"),
    "lost_contact": ("planning", "verifying"),
    "declined": ("closed",),
    "rejected": ("closed",),
}


def _moves(allowed: list[str], status: str) -> tuple[str | None, list[str], list[str]]:
    """(main move, other moves, terminal moves) for the case page; terminal ones ask for confirmation."""
    main = next((s for s in USUAL_NEXT.get(status, ()) if s in allowed), None)
    terminal = [s for s in allowed if s in workflow.TERMINAL and s != main]
    others = [s for s in allowed if s != main and s not in terminal]
    return main, others, terminal


def _case_page(
    visit: Visit,
    case_id: str,
    *,
    error: str | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
    extra: dict[str, Any] | None = None,
) -> Response:
    user = visit.require(Role.caseworker, Role.coordinator)
    ident = forms.parse_id(case_id)
    detail = case_service.read_case(session=visit.db, actor=user, case_id=ident)
    may_verify = (
        not detail.verified
        and detail.status not in ("closed", "declined", "rejected")
        and (
            user.role == Role.coordinator or (detail.opened_by != user.username and detail.assigned_to == user.username)
        )
    )
    caseworkers = []
    if user.role == Role.coordinator:
        caseworkers = [u.username for u in auth_service.list_users(visit.db) if u.role == Role.caseworker and u.active]
    main, others, terminal = _moves([s.value for s in detail.allowed_transitions], detail.status.value)
    context: dict[str, Any] = {
        "case": detail,
        "error": error,
        "values": values or {"on": visit.settings.today().isoformat(), "note": ""},
        "may_verify": may_verify,
        "may_ask": not detail.redacted
        and not detail.verified
        and not detail.verification_requested
        and detail.status not in workflow.TERMINAL,
        "main_move": main,
        "other_moves": others,
        "terminal_moves": terminal,
        "confirm": None,
        "caseworkers": caseworkers,
        "today": visit.settings.today().isoformat(),
        "edit_errors": {},
        "referral_steps": referral_pages.timeline(visit, case_id=ident),
    }
    context.update(extra or {})
    return render(visit, "case.html", context, status=status)


@router.get("/cases/{case_id}")
def case(
    case_id: str, visit: SignedIn, asked: int = 0, corrected: int = 0, assigned: int = 0, verified: int = 0
) -> Response:
    shown = {"asked": asked, "corrected": corrected, "assigned": assigned, "verified": verified}
    return _case_page(visit, case_id, extra={k: bool(v) for k, v in shown.items()})


@router.post("/cases/{case_id}/transitions")
def move(case_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.caseworker, Role.coordinator)
    ident = forms.parse_id(case_id)
    typed = forms.values(form, "to", "on", "note")
    if typed["to"] in workflow.TERMINAL and form.get("confirm") != "yes":
        # A move nothing comes back from is asked again, with what was typed; nothing changes until confirmed.
        return _case_page(visit, case_id, values=typed, extra={"confirm": typed["to"]})
    try:
        data = TransitionIn.model_validate(typed)
        with visit.db.begin_nested():
            case_service.transition(
                session=visit.db, actor=user, case_id=ident, to=data.to.value, on=data.on, note=data.note
            )
    except (ValidationError, Invalid) as exc:
        errors = forms.translated(visit, exc)
        message = "; ".join(errors.values())
        return _case_page(visit, case_id, error=message, values=typed, status=422)
    except Conflict as exc:
        return _case_page(visit, case_id, error=_conflict_message(visit, exc), values=typed, status=409)
    return redirect(visit, f"/cases/{ident}")


@router.post("/cases/{case_id}/verify")
def verify(case_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.caseworker, Role.coordinator)
    ident = forms.parse_id(case_id)
    try:
        with visit.db.begin_nested():
            case_service.verify(session=visit.db, actor=user, case_id=ident, on=forms.optional_day(str(form.get("on"))))
    except Conflict as exc:
        return _case_page(visit, case_id, error=_conflict_message(visit, exc), status=409)
    except Forbidden:
        return _case_page(visit, case_id, error=visit._("A second person must verify this case."), status=403)
    except Invalid as exc:
        errors = forms.translated(visit, exc)
        return _case_page(visit, case_id, error="; ".join(errors.values()), status=422)
    return redirect(visit, f"/cases/{ident}?verified=1")


@router.post("/cases/{case_id}/verification-request")
def ask_for_verification(case_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.caseworker)
    ident = forms.parse_id(case_id)
    try:
        with visit.db.begin_nested():
            case_service.request_verification(session=visit.db, actor=user, case_id=ident)
    except Conflict as exc:
        return _case_page(visit, case_id, error=_conflict_message(visit, exc), status=409)
    return redirect(visit, f"/cases/{ident}?asked=1")


@router.post("/cases/{case_id}/notes")
def add_note(case_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.caseworker)
    ident = forms.parse_id(case_id)
    return note_pages.submit_note(
        visit,
        form,
        save=lambda text: case_service.add_note(session=visit.db, actor=user, case_id=ident, text=text),
        again=lambda extra: _case_page(visit, case_id, extra=extra, status=422),
        done=f"/cases/{ident}#notes",
    )


@router.post("/cases/{case_id}/edit")
def correct(case_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.caseworker)
    ident = forms.parse_id(case_id)
    return note_pages.submit_correction(
        visit,
        form,
        fields=CASE_FIELDS,
        model=CaseCorrectionIn,
        save=lambda data: case_service.correct_case(session=visit.db, actor=user, case_id=ident, data=data),
        again=lambda extra: _case_page(visit, case_id, extra=extra, status=422),
        done=f"/cases/{ident}?corrected=1",
    )


@router.post("/cases/{case_id}/assign")
def assign(case_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.coordinator)
    ident = forms.parse_id(case_id)
    try:
        with visit.db.begin_nested():
            case_service.assign(session=visit.db, actor=user, case_id=ident, username=str(form.get("user", ""))[:64])
    except Invalid as exc:
        errors = forms.translated(visit, exc)
        return _case_page(visit, case_id, error="; ".join(errors.values()), status=422)
    return redirect(visit, f"/cases/{ident}?assigned=1")
