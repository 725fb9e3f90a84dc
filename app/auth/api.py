"""POST /api/v1/auth/token: password + TOTP in, a short-lived bearer token out."""

from __future__ import annotations

from fastapi import APIRouter

from app.auth import service as auth_service
from app.auth.schemas import TokenRequest, TokenResponse
from app.dependencies import DbSession

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/token", response_model=TokenResponse, responses={401: {"description": "sign-in failed"}})
def issue_token(body: TokenRequest, session: DbSession) -> TokenResponse:
    user = auth_service.authenticate(session, username=body.username, password=body.password, otp=body.otp)
    token, ttl = auth_service.issue_token(session, user=user)
    return TokenResponse(access_token=token, expires_in=ttl)
