"""JSON routes of the coordinators' "needs attention" queue."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from app.attention import service as attention
from app.attention.schemas import AttentionList
from app.contacts.api import Limit, Offset
from app.contacts.schemas import ERROR_RESPONSES
from app.dependencies import Coordinator, DbSession

router = APIRouter(tags=["attention"])


@router.get("/attention", response_model=AttentionList, responses=ERROR_RESPONSES)
def list_attention(session: DbSession, user: Coordinator, limit: Limit = 50, offset: Offset = 0) -> AttentionList:
    """Open entries, oldest first: cases waiting for verification, immediate danger, known-bad hits, duplicates
    to reconcile; ``total`` says how many are open in all."""
    return attention.list_open(session=session, actor=user, limit=limit, offset=offset)


@router.post(
    "/attention/{item_id}/resolve",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=ERROR_RESPONSES,
)
def resolve(item_id: uuid.UUID, session: DbSession, user: Coordinator) -> Response:
    """Mark an entry dealt with."""
    attention.resolve(session=session, actor=user, item_id=item_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
