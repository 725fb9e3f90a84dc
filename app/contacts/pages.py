"""The intake form, the contact list and a contact's page: through the contacts service, like the API."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError

from app.auth.models import Role
from app.contacts import service as contact_service
from app.contacts.schemas import ContactIn, Need, Outcome
from app.errors import Invalid
from app.web import forms
from app.web.visit import CheckedForm, SignedIn, Visit, redirect, render

router = APIRouter(tags=["pages"], include_in_schema=False)

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
        return _intake(visit, typed, forms.translated(visit, forms.field_errors(exc)), status=422)
    return redirect(visit, f"/contacts/{saved.id}?saved=1")


@router.get("/contacts")
def contacts(
    visit: SignedIn,
    region: str = "",
    outcome: str = "",
    received_from: str = "",
    received_to: str = "",
    page: int = 1,
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
        },
    )


@router.get("/contacts/{contact_id}")
def contact(contact_id: str, visit: SignedIn, saved: int = 0) -> Response:
    user = visit.require(Role.caseworker, Role.admin)
    ident = forms.parse_id(contact_id)
    if user.role == Role.caseworker:
        detail = contact_service.read_contact(session=visit.db, actor=user, contact_id=ident)
    else:
        detail = contact_service.contact_view(session=visit.db, actor=user, contact_id=ident)
    return render(visit, "contact.html", {"contact": detail, "saved": bool(saved)})
