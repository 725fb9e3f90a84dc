"""JSON routes for evacuation cases. Thin: the service checks need-to-know, seals, audits.

Routes that act on one case take the signed-in user as it is and let the service decide, so that a
case you may not see is a 404 before any role check could tell you it exists.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Body, Query, status

from app.cases import service as case_service
from app.cases.schemas import AssignIn, CaseDetail, CaseFields, CaseIn, CasePage, CaseSummary, TransitionIn, VerifyIn
from app.cases.workflow import CaseStatus
from app.contacts.schemas import ERROR_RESPONSES, REGION_PATTERN
from app.dependencies import Caseworker, CurrentUser, DbSession
from app.notes.schemas import CaseCorrectionIn, NoteIn, NoteOut

router = APIRouter(tags=["cases"])

Limit = Annotated[int, Query(ge=1, le=200)]
# Bounded: a larger offset overflows the databases' integers (a 500, found by fuzzing).
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]


@router.post("/cases", status_code=status.HTTP_201_CREATED, response_model=CaseSummary, responses=ERROR_RESPONSES)
def open_case(body: CaseIn, session: DbSession, user: Caseworker) -> CaseSummary:
    """Open an evacuation case from a contact you can see; it starts ``new`` and is assigned to you."""
    fields = CaseFields(**body.model_dump(include=set(CaseFields.model_fields)))
    return case_service.open_case(
        session=session, actor=user, contact_id=body.contact_id, data=fields, on=body.opened_on
    )


@router.get("/cases", response_model=CasePage, responses=ERROR_RESPONSES)
def list_cases(
    session: DbSession,
    user: CurrentUser,
    status: CaseStatus | None = None,
    region: Annotated[str | None, Query(pattern=REGION_PATTERN)] = None,
    opened_from: date | None = None,
    opened_to: date | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> CasePage:
    """Cases you may see (assigned to you; all of them for coordinators), without any decrypted field."""
    return case_service.list_cases(
        session=session,
        actor=user,
        status=status.value if status else None,
        region=region,
        opened_from=opened_from,
        opened_to=opened_to,
        limit=limit,
        offset=offset,
    )


@router.get("/cases/{case_id}", response_model=CaseDetail, responses=ERROR_RESPONSES)
def get_case(case_id: uuid.UUID, session: DbSession, user: CurrentUser) -> CaseDetail:
    """A case and its history; sealed fields only for its assigned caseworker (audited), redacted for coordinators."""
    return case_service.read_case(session=session, actor=user, case_id=case_id)


@router.post("/cases/{case_id}/transitions", response_model=CaseSummary, responses=ERROR_RESPONSES)
def transition(case_id: uuid.UUID, body: TransitionIn, session: DbSession, user: CurrentUser) -> CaseSummary:
    """Move a case along the workflow; 409 with the allowed moves if this one is not."""
    return case_service.transition(
        session=session, actor=user, case_id=case_id, to=body.to.value, on=body.on, note=body.note
    )


@router.post("/cases/{case_id}/assign", response_model=CaseSummary, responses=ERROR_RESPONSES)
def assign(case_id: uuid.UUID, body: AssignIn, session: DbSession, user: CurrentUser) -> CaseSummary:
    """Hand a case to an active caseworker (coordinators)."""
    return case_service.assign(session=session, actor=user, case_id=case_id, username=body.user)


@router.post("/cases/{case_id}/verify", response_model=CaseSummary, responses=ERROR_RESPONSES)
def verify(
    case_id: uuid.UUID, session: DbSession, user: CurrentUser, body: Annotated[VerifyIn | None, Body()] = None
) -> CaseSummary:
    """Record the second person's verification (a coordinator, or an assigned caseworker who did not open it)."""
    return case_service.verify(session=session, actor=user, case_id=case_id, on=body.on if body else None)


@router.post(
    "/cases/{case_id}/notes", status_code=status.HTTP_201_CREATED, response_model=NoteOut, responses=ERROR_RESPONSES
)
def add_note(case_id: uuid.UUID, body: NoteIn, session: DbSession, user: CurrentUser) -> NoteOut:
    """Append a note to a case assigned to you; sealed under the case's key, dated by day, audited."""
    return case_service.add_note(session=session, actor=user, case_id=case_id, text=body.text)


@router.patch("/cases/{case_id}", response_model=CaseDetail, responses=ERROR_RESPONSES)
def correct_case(case_id: uuid.UUID, body: CaseCorrectionIn, session: DbSession, user: CurrentUser) -> CaseDetail:
    """Correct sealed fields of a case assigned to you; the previous values stay, sealed, in its history."""
    return case_service.correct_case(session=session, actor=user, case_id=case_id, data=body)


@router.post(
    "/cases/{case_id}/verification-request",
    status_code=status.HTTP_201_CREATED,
    response_model=CaseSummary,
    responses=ERROR_RESPONSES,
)
def request_verification(case_id: uuid.UUID, session: DbSession, user: CurrentUser) -> CaseSummary:
    """Ask for the second person's verification: the case goes to the coordinators' "needs attention" queue."""
    return case_service.request_verification(session=session, actor=user, case_id=case_id)
