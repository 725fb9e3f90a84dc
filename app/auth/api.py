"""POST /api/v1/auth/token: password + TOTP in, a short-lived bearer token out."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from app.auth import service as auth_service
from app.auth import signin
from app.auth.delayed import delayed
from app.auth.schemas import TokenRequest, TokenResponse
from app.dependencies import DbSession

router = APIRouter(prefix="/auth", tags=["auth"])

MUST_CHANGE = "this account has a one-time password: sign in on the web and choose your own first"


@router.post(
    "/token",
    response_model=TokenResponse,
    responses={401: {"description": "sign-in failed"}, 403: {"description": "the one-time password must be changed"}},
)
def issue_token(body: TokenRequest, session: DbSession) -> Response:
    # Failures are answered here rather than raised, so their counters commit with the unit of work
    # and the answer waits (the name's slow-down) after the transaction has ended.
    try:
        admitted = signin.authenticate(session, username=body.username, password=body.password, otp=body.otp)
    except signin.Refused as exc:
        return delayed(JSONResponse({"detail": exc.detail}, status_code=exc.status_code), exc.delay)
    user = admitted.user
    if admitted.duress:
        from app.auth import duress

        duress.triggered(session, user=user)
    elif user.must_change_password:
        # Only someone with the password and a code gets this far; the code stays spent.
        return delayed(JSONResponse({"detail": MUST_CHANGE}, status_code=403), admitted.delay)
    token, ttl = auth_service.issue_token(session, user=user, duress=admitted.duress)
    answer = TokenResponse(access_token=token, expires_in=ttl)
    return delayed(JSONResponse(answer.model_dump()), admitted.delay)
