"""JSON routes for partners, consents and referrals. Thin: the service checks need-to-know, seals, audits."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, status
from fastapi.responses import Response

from app.auth.models import Role, User
from app.contacts.schemas import ERROR_RESPONSES
from app.dependencies import CurrentUser, DbSession, StatsReader, role_required
from app.referrals import delivery
from app.referrals import service as referral_service
from app.referrals import stats as referral_stats
from app.referrals.schemas import ConsentIn, ConsentOut, PartnerOut, ReferralIn, ReferralOut, StatusIn, WithdrawIn

router = APIRouter(tags=["referrals"])

PartnerReader = Annotated[User, role_required(Role.caseworker, Role.coordinator, Role.admin)]


@router.get("/partners", response_model=list[PartnerOut], responses=ERROR_RESPONSES)
def partners(session: DbSession, user: PartnerReader) -> list[PartnerOut]:
    """The partner organisations referrals can go to, with their public keys."""
    return referral_service.list_partners(session=session)


@router.post(
    "/cases/{case_id}/consents",
    status_code=status.HTTP_201_CREATED,
    response_model=ConsentOut,
    responses=ERROR_RESPONSES,
)
def record_consent(case_id: uuid.UUID, body: ConsentIn, session: DbSession, user: CurrentUser) -> ConsentOut:
    """Record the person's consent to share kinds of data with one partner (the assigned caseworker)."""
    return referral_service.record_consent(session=session, actor=user, case_id=case_id, data=body)


@router.get("/cases/{case_id}/consents", response_model=list[ConsentOut], responses=ERROR_RESPONSES)
def consents(case_id: uuid.UUID, session: DbSession, user: CurrentUser) -> list[ConsentOut]:
    """A case's consents; their terms only for the assigned caseworker."""
    return referral_service.list_consents(session=session, actor=user, case_id=case_id)


@router.post("/cases/{case_id}/consents/{consent_id}/withdraw", responses=ERROR_RESPONSES)
def withdraw_consent(
    case_id: uuid.UUID,
    consent_id: uuid.UUID,
    session: DbSession,
    user: CurrentUser,
    body: Annotated[WithdrawIn | None, Body()] = None,
) -> dict[str, list[str]]:
    """Withdraw a consent; every open referral made on it is withdrawn too (listed in ``ended``)."""
    ended = referral_service.withdraw_consent(
        session=session, actor=user, case_id=case_id, consent_id=consent_id, on=body.on if body else None
    )
    return {"ended": ended}


@router.post(
    "/cases/{case_id}/referrals",
    status_code=status.HTTP_201_CREATED,
    response_model=ReferralOut,
    responses=ERROR_RESPONSES,
)
def create_referral(case_id: uuid.UUID, body: ReferralIn, session: DbSession, user: CurrentUser) -> ReferralOut:
    """Refer chosen fields to a partner under a fresh code; 409 unless a consent covers them."""
    return referral_service.create_referral(session=session, actor=user, case_id=case_id, data=body)


@router.get("/stats/referrals", response_model=referral_stats.ReferralStats, responses=ERROR_RESPONSES)
def stats(session: DbSession, user: StatsReader) -> referral_stats.ReferralStats:
    """Referrals made and accepted per month by partner: exact for coordinators and admins, disclosure-controlled
    (closed months, no count from 1 to K-1) for analysts."""
    return referral_stats.monthly(session=session, actor=user)


@router.get("/referrals", response_model=list[ReferralOut], responses=ERROR_RESPONSES)
def referrals(session: DbSession, user: CurrentUser, case_id: uuid.UUID | None = None) -> list[ReferralOut]:
    """Referrals of the cases you may see, newest first; no field value."""
    return referral_service.list_referrals(session=session, actor=user, case_id=case_id)


@router.get("/referrals/{referral_id}", response_model=ReferralOut, responses=ERROR_RESPONSES)
def referral(referral_id: uuid.UUID, session: DbSession, user: CurrentUser) -> ReferralOut:
    """One referral and its status steps."""
    return referral_service.referral_view(session=session, actor=user, referral_id=referral_id)


@router.get(
    "/referrals/{referral_id}/package",
    response_class=Response,
    responses={**ERROR_RESPONSES, 200: {"content": {"application/octet-stream": {}}}},
)
def package(referral_id: uuid.UUID, session: DbSession, user: CurrentUser) -> Response:
    """The age-encrypted, signed package of an open referral, built now from the case (audited)."""
    code, data = referral_service.build_package(session=session, actor=user, referral_id=referral_id)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="referral-{code}.age"', "Cache-Control": "no-store"},
    )


@router.post("/referrals/{referral_id}/status", response_model=ReferralOut, responses=ERROR_RESPONSES)
def move(referral_id: uuid.UUID, body: StatusIn, session: DbSession, user: CurrentUser) -> ReferralOut:
    """Move a referral by hand (withdraw it, or record what the partner said); 409 if the move is illegal."""
    return referral_service.move(session=session, actor=user, referral_id=referral_id, to=body.to.value, on=body.on)


@router.post("/referrals/{referral_id}/deliver", responses=ERROR_RESPONSES)
def deliver(referral_id: uuid.UUID, session: DbSession, user: CurrentUser) -> dict[str, str]:
    """Send an open referral's package straight to its partner's Helpline inbox (audited); 409 if it has none."""
    return {"delivered": delivery.deliver(session=session, actor=user, referral_id=referral_id)}


@router.post(
    "/referrals/inbox",
    status_code=status.HTTP_201_CREATED,
    response_model=delivery.DeliveryOut,
    responses=ERROR_RESPONSES,
)
def inbox(body: delivery.DeliveryIn, session: DbSession) -> delivery.DeliveryOut:
    """A partner's direct delivery: no account, authenticated by the partner's signature; off by default (404)."""
    return delivery.accept(session=session, body=body)
