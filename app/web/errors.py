"""HTML error pages for the browser; the JSON API under /api keeps its own JSON errors."""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.audit.seals import SealBroken
from app.auth import sessions
from app.crypto import service as crypto
from app.db import unit_of_work
from app.dependencies import get_session
from app.errors import HelplineError
from app.idempotency import service as idempotency
from app.web import held, i18n, templating
from app.web.i18n import N_
from app.web.visit import LANG_COOKIE, CsrfRefused, LoginRequired, Who, cookie

TITLES = {
    400: N_("Something in the request was wrong"),
    401: N_("Please sign in"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("Not allowed"),
    409: N_("That change is not possible now"),
    422: N_("Please check what you entered"),
    500: N_("Something went wrong"),
}
EXPLANATIONS = {
    403: N_("Your role does not allow this page or action."),
    404: N_("There is nothing here, or it is not yours to see."),
    409: N_("The record changed or the step is not allowed from its current state."),
}
SEAL_EXPLANATION = N_(
    "This record failed its integrity check: it was changed outside Helpline. It is refused, and an "
    "administrator has been alerted."
)
ALREADY_SENT = N_("This form was already sent; it counts once. Open the list to see what it recorded.")
CSRF_EXPLANATION = N_("This form has expired or did not come from Helpline. Go back, reload the page and try again.")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def error_page(request: Request, status: int, *, message: str | None = None) -> HTMLResponse:
    who: Who | None = getattr(request.state, "who", None)
    locale = getattr(request.state, "locale", None) or i18n.pick_locale(
        request.cookies.get(cookie(LANG_COOKIE, request.app.state.settings.secure_cookies)),
        accept_language=request.headers.get("accept-language"),
    )
    catalog = i18n.translations(locale)
    context: dict[str, Any] = {
        "user": who,
        "csrf_token": who.csrf if who is not None else "",
        "path": request.url.path,
        "idle_seconds": request.app.state.settings.session_idle_minutes * 60,
        "status": status,
        "title": catalog.gettext(TITLES.get(status, TITLES[400 if status < 500 else 500])),
        "explanation": catalog.gettext(message or EXPLANATIONS.get(status, ""))
        if (message or status in EXPLANATIONS)
        else "",
    }
    return HTMLResponse(templating.render_string(locale, "error.html", context), status_code=status)


def _set_held_cookie(request: Request, response: Response, token: str) -> None:
    settings = request.app.state.settings
    response.set_cookie(
        cookie(held.COOKIE, settings.secure_cookies),
        token,
        max_age=settings.held_form_minutes * 60,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )


async def _hold_posted_form(request: Request, exc: LoginRequired) -> str | None:
    """A form posted into a timed-out session, sealed for its owner; the cookie token, or None."""
    if request.method != "POST" or exc.held_for is None or not held.keepable(request.url.path):
        return None
    form = await request.form()  # read before the unit of work below: no transaction waits on the network
    pairs = [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
    user_id, action = exc.held_for, request.url.path

    # The request's own unit of work has ended by now; this is a new one, made the way the app makes
    # them (honouring an override of the session dependency, as the test suite installs).
    provider = request.app.dependency_overrides.get(get_session)

    def store() -> str | None:
        if provider is None:
            state = request.app.state
            with unit_of_work(state.engine) as session:
                crypto.bind(session, settings=state.settings, keyring=state.keyring)
                return held.hold(session, user_id=user_id, action=action, pairs=pairs)
        scope = contextmanager(provider)
        with scope(request) if inspect.signature(provider).parameters else scope() as session:
            return held.hold(session, user_id=user_id, action=action, pairs=pairs)

    return await run_in_threadpool(store)


def install(app: FastAPI) -> None:
    """Wrap the JSON handlers so every path outside /api gets an HTML page instead."""
    json_helpline = app.exception_handlers[HelplineError]
    json_validation = app.exception_handlers[RequestValidationError]

    @app.exception_handler(HelplineError)
    async def helpline_error(request: Request, exc: HelplineError) -> Response:
        if _is_api(request):
            return await json_helpline(request, exc)  # type: ignore[misc,no-any-return]
        if isinstance(exc, LoginRequired):
            token = await _hold_posted_form(request, exc)
            response = RedirectResponse(exc.to + ("&held=1" if token else ""), status_code=303)
            if token:
                _set_held_cookie(request, response, token)
            if exc.clear_cookie:
                response.delete_cookie(
                    sessions.cookie_name(request.app.state.settings.secure_cookies),
                    path="/",
                    secure=request.app.state.settings.secure_cookies,
                    httponly=True,
                    samesite="strict",
                )
            return response
        message = (
            CSRF_EXPLANATION
            if isinstance(exc, CsrfRefused)
            else SEAL_EXPLANATION
            if isinstance(exc, SealBroken)
            else None
        )
        if isinstance(exc, idempotency.AlreadySubmitted):
            message = ALREADY_SENT
        return error_page(request, exc.status_code, message=message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        if _is_api(request):
            return await json_validation(request, exc)  # type: ignore[misc,no-any-return]
        return error_page(request, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request):
            return await http_exception_handler(request, exc)
        return error_page(request, exc.status_code)
