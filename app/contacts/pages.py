"""The intake form, the contact list and a contact's page: through the contacts service, like the API."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import ValidationError

from app.auth.models import Role
from app.cases import permissions
from app.contacts import service as contact_service
from app.contacts.schemas import ContactIn, ContactSummary, Need, Outcome
from app.errors import Conflict, Invalid, NotFound
from app.notes import pages as note_pages
from app.notes.schemas import ContactCorrectionIn
from app.web import forms
from app.web.i18n import N_, reason
from app.web.visit import CheckedForm, SignedIn, Visit, redirect, render

router = APIRouter(tags=["pages"], include_in_schema=False)

# The contacts service's refusals a page shows, so the catalog has them (the services give them in English).
SERVICE_MESSAGES = (
    N_("a case is open from this contact; its outcome stays case_opened"),
    N_("this contact was shredded"),
)

FIELDS = ("received_on", "channel", "region", "language", "risk", "alias", "handle", "notes")
PAGE_SIZE = 25


def _intake(visit: Visit, values: Mapping[str, object], errors: dict[str, str], *, status: int = 200) -> Response:
    return render(
        visit,
        "contact_new.html",
        {
            "values": values,
            "errors": errors,
            "regions": visit.settings.regions,
            "languages": visit.settings.languages,
            "needs": [n.value for n in Need],
        },
        status=status,
    )


@router.get("/contacts/new")
def intake_form(visit: SignedIn) -> Response:
    visit.require(Role.caseworker)
    defaults = {
        "received_on": visit.settings.today().isoformat(),
        "channel": "phone",
        "region": "",
        "language": "ru",
        "risk": "",
        "needs": [],
    }
    return _intake(visit, defaults, {})


@router.post("/contacts/new")
def record(visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.caseworker)
    typed = forms.values(form, *FIELDS, lists=("needs",))
    try:
        data = ContactIn.model_validate(typed)
        # A savepoint, so a refusal from the service leaves nothing half-written behind.
        with visit.db.begin_nested():
            saved = contact_service.record_contact(session=visit.db, actor=user, data=data)
    except (ValidationError, Invalid) as exc:
        # Everything typed comes back, the sealed fields included: it is this caseworker's own input,
        # shown only in this response (never stored, never logged).
        return _intake(visit, typed, forms.translated(visit, exc), status=422)
    except permissions.Alarmed as exc:
        # Refused for volume: the alarm is written again outside the rolled-back savepoint, and what
        # was typed stays on the screen.
        permissions.keep_alarm(visit.db, exc)
        message = visit._("Not saved: too many contacts or look-ups in the last hour. Your coordinator has been told.")
        return _intake(visit, typed, {"_": message}, status=429)
    earlier = "".join(f"&dup={ref.id}" for ref in saved.duplicate_of)
    return redirect(visit, f"/contacts/{saved.id}?saved=1{earlier}")


@router.get("/contacts")
def contacts(
    visit: SignedIn,
    region: str = "",
    outcome: str = "",
    received_from: str = "",
    received_to: str = "",
    page: int = 1,
    names: int = 0,
) -> Response:
    user = visit.require(Role.caseworker, Role.admin)
    page = max(1, min(page, 100_000))
    listing = contact_service.list_contacts(
        session=visit.db,
        actor=user,
        region=region if region in visit.settings.regions else None,
        outcome=outcome if outcome in Outcome.__members__ else None,
        received_from=forms.optional_day(received_from),
        received_to=forms.optional_day(received_to),
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    filters = {"region": region, "outcome": outcome, "received_from": received_from, "received_to": received_to}
    query = urlencode({k: v for k, v in filters.items() if v})
    aliases: dict[uuid.UUID, str] = {}
    alarm = None
    if names:
        # Names are opened only when asked for, page by page: each is a decrypted read on the record.
        try:
            aliases = contact_service.aliases_for(
                session=visit.db, actor=user, contact_ids=[c.id for c in listing.items]
            )
        except permissions.Alarmed:
            alarm = visit._(
                "Names not shown: too many records opened in the last hour. Your coordinator has been told."
            )
    return render(
        visit,
        "contacts.html",
        {
            "listing": listing,
            "filters": filters,
            "query": query,
            "page": page,
            "pages": max(1, -(-listing.total // PAGE_SIZE)),
            "regions": visit.settings.regions,
            "outcomes": [o.value for o in Outcome],
            "names": bool(names) and alarm is None,
            "aliases": aliases,
            "alarm": alarm,
        },
    )


def _earlier(visit: Visit, ids: list[str]) -> list[ContactSummary]:
    """The earlier contacts named in the link after intake, those this caseworker may open (no decryption)."""
    found: list[ContactSummary] = []
    for raw in ids[:10]:
        try:
            found.append(
                contact_service.contact_view(session=visit.db, actor=visit.require(), contact_id=uuid.UUID(raw))
            )
        except (ValueError, NotFound):
            continue
    return found


def contact_page(visit: Visit, contact_id: str, *, extra: dict[str, Any] | None = None, status: int = 200) -> Response:
    user = visit.require(Role.caseworker, Role.admin)
    ident = forms.parse_id(contact_id)
    if user.role == Role.caseworker:
        detail = contact_service.read_contact(session=visit.db, actor=user, contact_id=ident)
    else:
        detail = contact_service.contact_view(session=visit.db, actor=user, contact_id=ident)
    context: dict[str, Any] = {
        "contact": detail,
        "saved": False,
        "earlier": [],
        "outcomes": [o.value for o in Outcome if o != Outcome.case_opened],
        "note_error": None,
        "edit_errors": {},
    }
    context.update(extra or {})
    return render(visit, "contact.html", context, status=status)


@router.get("/contacts/{contact_id}")
def contact(
    contact_id: str,
    visit: SignedIn,
    saved: int = 0,
    corrected: int = 0,
    outcome: int = 0,
    dup: Annotated[list[str] | None, Query()] = None,
) -> Response:
    extra = {
        "saved": bool(saved),
        "corrected": bool(corrected),
        "outcome_saved": bool(outcome),
        "earlier": _earlier(visit, dup or []),
    }
    return contact_page(visit, contact_id, extra=extra)


@router.post("/contacts/{contact_id}/notes")
def add_note(contact_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.caseworker)
    ident = forms.parse_id(contact_id)
    return note_pages.submit_note(
        visit,
        form,
        save=lambda text: contact_service.add_note(session=visit.db, actor=user, contact_id=ident, text=text),
        again=lambda extra: contact_page(visit, contact_id, extra=extra, status=422),
        done=f"/contacts/{ident}#notes",
    )


@router.post("/contacts/{contact_id}/edit")
def correct(contact_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.caseworker)
    ident = forms.parse_id(contact_id)
    return note_pages.submit_correction(
        visit,
        form,
        fields=contact_service.SEALED,
        model=ContactCorrectionIn,
        save=lambda data: contact_service.correct_contact(session=visit.db, actor=user, contact_id=ident, data=data),
        again=lambda extra: contact_page(visit, contact_id, extra=extra, status=422),
        done=f"/contacts/{ident}?corrected=1",
    )


@router.post("/contacts/{contact_id}/outcome")
def outcome(contact_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.caseworker)
    ident = forms.parse_id(contact_id)
    chosen = str(form.get("outcome", ""))
    try:
        with visit.db.begin_nested():
            contact_service.set_outcome(session=visit.db, actor=user, contact_id=ident, outcome=Outcome(chosen).value)
    except ValueError:
        return contact_page(
            visit, contact_id, extra={"outcome_error": visit._("Choose one of the options.")}, status=422
        )
    except Invalid as exc:
        message = "; ".join(forms.translated(visit, exc).values())
        return contact_page(visit, contact_id, extra={"outcome_error": message}, status=422)
    except Conflict as exc:
        return contact_page(visit, contact_id, extra={"outcome_error": reason(visit._, exc)}, status=409)
    return redirect(visit, f"/contacts/{ident}?outcome=1")
