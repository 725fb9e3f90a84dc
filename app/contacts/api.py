"""JSON routes for hotline contacts and the known-bad list. Thin: the service checks, seals and audits."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from app.auth.models import Role
from app.contacts import flagged
from app.contacts import service as contact_service
from app.contacts.schemas import (
    ERROR_RESPONSES,
    REGION_PATTERN,
    ContactDetail,
    ContactIn,
    ContactPage,
    ContactSummary,
    FlaggedHandleIn,
    FlaggedHandleList,
    FlaggedHandleOut,
    Outcome,
    OutcomeIn,
)
from app.db import finish_in_route
from app.dependencies import Bearer, Coordinator, CurrentUser, DbSession, caller
from app.notes.schemas import ContactCorrectionIn, NoteIn, NoteOut

router = APIRouter()

Limit = Annotated[int, Query(ge=1, le=200)]
# Bounded: a larger offset overflows the databases' integers (a 500, found by fuzzing).
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]


@router.post(
    "/contacts",
    tags=["contacts"],
    status_code=status.HTTP_201_CREATED,
    response_model=ContactSummary,
    responses=ERROR_RESPONSES,
)
async def record_contact(request: Request, body: ContactIn, session: DbSession, credentials: Bearer) -> ContactSummary:
    """Record a hotline contact; answers whether the handle called before or is on the known-bad list."""
    # With an Idempotency-Key its first answer is stored in this same transaction after the route returns.
    keyed = getattr(request.state, "idempotency_session", None) is not None

    # The busiest write: the caller's check, the service and the commit in one threadpool call.
    def work() -> ContactSummary:
        user = caller(session, credentials, Role.caseworker)
        summary = contact_service.record_contact(session=session, actor=user, data=body)
        if not keyed:
            finish_in_route(session)
        return summary

    return await run_in_threadpool(work)


@router.get("/contacts", tags=["contacts"], response_model=ContactPage, responses=ERROR_RESPONSES)
def list_contacts(
    session: DbSession,
    user: CurrentUser,
    region: Annotated[str | None, Query(pattern=REGION_PATTERN)] = None,
    outcome: Outcome | None = None,
    received_from: date | None = None,
    received_to: date | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> ContactPage:
    """The contacts you may see, newest first, without any decrypted field."""
    return contact_service.list_contacts(
        session=session,
        actor=user,
        region=region,
        outcome=outcome.value if outcome else None,
        received_from=received_from,
        received_to=received_to,
        limit=limit,
        offset=offset,
    )


@router.get("/contacts/{contact_id}", tags=["contacts"], response_model=ContactDetail, responses=ERROR_RESPONSES)
def get_contact(contact_id: uuid.UUID, session: DbSession, user: CurrentUser) -> ContactDetail:
    """A contact; its recorder (or the caseworker of its case) gets the sealed fields, audited."""
    return contact_service.read_contact(session=session, actor=user, contact_id=contact_id)


@router.post(
    "/contacts/{contact_id}/notes",
    tags=["contacts"],
    status_code=status.HTTP_201_CREATED,
    response_model=NoteOut,
    responses=ERROR_RESPONSES,
)
def add_note(contact_id: uuid.UUID, body: NoteIn, session: DbSession, user: CurrentUser) -> NoteOut:
    """Append a note to a contact you may read; sealed under the contact's key, dated by day, audited."""
    return contact_service.add_note(session=session, actor=user, contact_id=contact_id, text=body.text)


@router.patch("/contacts/{contact_id}", tags=["contacts"], response_model=ContactDetail, responses=ERROR_RESPONSES)
def correct_contact(
    contact_id: uuid.UUID, body: ContactCorrectionIn, session: DbSession, user: CurrentUser
) -> ContactDetail:
    """Correct sealed fields of a contact you may read; the previous values stay, sealed, in its history."""
    return contact_service.correct_contact(session=session, actor=user, contact_id=contact_id, data=body)


@router.post(
    "/contacts/{contact_id}/outcome", tags=["contacts"], response_model=ContactSummary, responses=ERROR_RESPONSES
)
def set_outcome(contact_id: uuid.UUID, body: OutcomeIn, session: DbSession, user: CurrentUser) -> ContactSummary:
    """What came of a contact; set by the caseworker who recorded it."""
    return contact_service.set_outcome(session=session, actor=user, contact_id=contact_id, outcome=body.outcome.value)


@router.post(
    "/flagged-handles",
    tags=["known-bad list"],
    status_code=status.HTTP_201_CREATED,
    response_model=FlaggedHandleOut,
    responses=ERROR_RESPONSES,
)
def add_flagged_handle(body: FlaggedHandleIn, session: DbSession, user: Coordinator) -> FlaggedHandleOut:
    """Put a handle used for entrapment on the list; it is stored sealed and blind-indexed only."""
    return flagged.add_flagged_handle(session=session, actor=user, data=body)


@router.get("/flagged-handles", tags=["known-bad list"], response_model=FlaggedHandleList, responses=ERROR_RESPONSES)
def list_flagged_handles(session: DbSession, user: Coordinator) -> FlaggedHandleList:
    """The entries with who added them, when and why; never the handles."""
    return flagged.list_flagged_handles(session=session, actor=user)


@router.delete(
    "/flagged-handles/{entry_id}",
    tags=["known-bad list"],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=ERROR_RESPONSES,
)
def remove_flagged_handle(entry_id: uuid.UUID, session: DbSession, user: Coordinator) -> Response:
    """Take an entry off the list; its key is destroyed with it."""
    flagged.remove_flagged_handle(session=session, actor=user, entry_id=entry_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
