"""Who is browsing: the page-session dependency, role checks, CSRF-checked forms, rendering.

Pages ask for ``Visit`` (anyone), ``SignedIn`` (a full session) or a role alias, and read
POST bodies through ``CheckedForm``, which refuses a form without the right CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from app.attention import service as attention
from app.auth import duress, sessions
from app.auth.models import Role, User, WebSession
from app.config import Settings
from app.dependencies import DbSession
from app.errors import Forbidden, HelplineError
from app.idempotency import service as idempotency
from app.web import i18n, templating

PRE_COOKIE = "helpline_pre"  # a pre-sign-in CSRF token (double submit) for the login and language forms
LANG_COOKIE = "helpline_lang"


def cookie(name: str, secure: bool) -> str:
    """The cookie's name as set: with Secure cookies, ``__Host-``-prefixed (no sibling host can set it)."""
    return f"__Host-{name}" if secure else name


class LoginRequired(HelplineError):
    """No full session: the page handler redirects to the sign-in page (or the next sign-in stage)."""

    status_code = 401
    keep_changes = True

    def __init__(self, to: str = "/login", *, clear_cookie: bool = False, held_for: uuid.UUID | None = None) -> None:
        self.to = to
        self.clear_cookie = clear_cookie
        self.held_for = held_for  # whose timed-out session this was: a posted form is held for them
        super().__init__("sign-in needed")


class CsrfRefused(Forbidden):
    def __init__(self) -> None:
        super().__init__("this form has expired or did not come from Helpline; reload the page and try again")


@dataclass(frozen=True)
class Who:
    """Plain values of the signed-in user for error pages (rendered after the unit of work ended)."""

    username: str
    role: str
    csrf: str


@dataclass
class Visit:
    request: Request
    db: Session
    settings: Settings
    web: WebSession | None
    user: User | None
    locale: str
    ended: str | None = None  # why a session cookie was refused ("expired", "unknown")
    ended_user_id: uuid.UUID | None = None  # whose session timed out
    new_pre_token: str | None = None
    cookies: list[tuple[str, str, int | None]] = field(default_factory=list)

    @property
    def csrf(self) -> str:
        if self.web is not None:
            return sessions.csrf_token(self.web)
        token = self.request.cookies.get(cookie(PRE_COOKIE, self.settings.secure_cookies)) or self.new_pre_token
        if not token:
            self.new_pre_token = token = secrets.token_urlsafe(24)
        return token

    def csrf_ok(self, token: object) -> bool:
        if not isinstance(token, str) or not token:
            return False
        if self.web is not None:
            return sessions.csrf_ok(self.web, token)
        expected = self.request.cookies.get(cookie(PRE_COOKIE, self.settings.secure_cookies))
        return expected is not None and bool(expected) and hmac.compare_digest(expected.encode(), token.encode())

    def require(self, *roles: Role) -> User:
        if self.user is None or self.web is None or self.web.stage != sessions.FULL:
            raise LoginRequired()
        if roles and self.user.role not in roles:
            raise Forbidden()
        return self.user

    def _(self, message: str) -> str:
        return i18n.translations(self.locale).gettext(message)

    def pgettext(self, context: str, message: str) -> str:
        """``message`` as translated under ``context`` (``i18n.NC_``)."""
        return str(i18n.translations(self.locale).pgettext(context, message))


def get_visit(request: Request, db: DbSession) -> Visit:
    settings: Settings = request.app.state.settings
    web = user = None
    ended = ended_user_id = None
    token = request.cookies.get(sessions.cookie_name(settings.secure_cookies))
    if token:
        try:
            web, user = sessions.resume(db, token=token)
        except sessions.SessionEnded as exc:
            ended, ended_user_id = exc.reason, exc.user_id
    locale = i18n.pick_locale(
        web.locale if web else None,
        request.cookies.get(cookie(LANG_COOKIE, settings.secure_cookies)),
        accept_language=request.headers.get("accept-language"),
    )
    visit = Visit(
        request=request,
        db=db,
        settings=settings,
        web=web,
        user=user,
        locale=locale,
        ended=ended,
        ended_user_id=ended_user_id,
    )
    request.state.locale = locale
    if web is not None and user is not None and web.stage == sessions.FULL:
        # Copied now: after a rollback the ORM objects are expired and detached.
        request.state.who = Who(username=user.username, role=user.role, csrf=sessions.csrf_token(web))
    return visit


def get_signed_in(visit: Annotated[Visit, Depends(get_visit)]) -> Visit:
    if visit.web is not None and visit.web.stage == sessions.PASSWORD:
        raise LoginRequired("/login/password")
    if visit.user is None or visit.web is None:
        if visit.ended == "expired":
            raise LoginRequired("/login?ended=1", clear_cookie=True, held_for=visit.ended_user_id)
        # A page asked for by its address (a bookmark, a link) says why the sign-in page came instead.
        to = "/login" if visit.request.url.path == "/" else "/login?needed=1"
        raise LoginRequired(to, clear_cookie=bool(visit.ended))
    return visit


async def get_checked_form(request: Request, visit: Annotated[Visit, Depends(get_visit)]) -> FormData:
    form = await request.form()
    if not visit.csrf_ok(form.get("csrf_token")):
        raise CsrfRefused()
    once = form.get(idempotency.FORM_FIELD)
    await run_in_threadpool(idempotency.spend_form_token, visit.db, once if isinstance(once, str) else None)
    return form


AnyVisit = Annotated[Visit, Depends(get_visit)]
SignedIn = Annotated[Visit, Depends(get_signed_in)]
CheckedForm = Annotated[FormData, Depends(get_checked_form)]


def render(visit: Visit, name: str, context: dict[str, Any] | None = None, *, status: int = 200) -> HTMLResponse:
    """A page in the visitor's language, with the base layout's needs (user, CSRF, idle timeout)."""
    ctx: dict[str, Any] = {
        "visit": visit,
        "user": visit.user if visit.web is not None and visit.web.stage == sessions.FULL else None,
        "csrf_token": visit.csrf,
        "path": visit.request.url.path,
        "idle_seconds": visit.settings.session_idle_minutes * 60,
    }
    if ctx["user"] is not None and ctx["user"].role == Role.coordinator:
        ctx["attention_count"] = attention.open_count(visit.db)  # the number beside "Needs attention"
    # Coordinators and admins see a standing duress alarm on every page (never a duress session itself).
    viewer = ctx["user"]
    if viewer is not None and viewer.role in ("coordinator", "admin") and not duress.active(visit.db):
        ctx["duress_alarms"] = duress.open_alarms(visit.db)
    ctx.update(context or {})
    response = HTMLResponse(templating.render_string(visit.locale, name, ctx), status_code=status)
    finish(visit, response)
    return response


def redirect(visit: Visit, to: str) -> RedirectResponse:
    """After a successful POST: see-other, so a reload never submits twice."""
    response = RedirectResponse(to, status_code=303)
    finish(visit, response)
    return response


def finish(visit: Visit, response: Response) -> None:
    secure = visit.settings.secure_cookies
    if visit.new_pre_token and not visit.request.cookies.get(cookie(PRE_COOKIE, secure)):
        set_cookie(response, PRE_COOKIE, visit.new_pre_token, secure=secure)
    if visit.ended and visit.web is None:
        response.delete_cookie(sessions.cookie_name(secure), path="/", secure=secure, httponly=True, samesite="strict")
    for name, value, max_age in visit.cookies:
        set_cookie(response, name, value, secure=secure, max_age=max_age)


def set_cookie(response: Response, name: str, value: str, *, secure: bool, max_age: int | None = None) -> None:
    response.set_cookie(
        cookie(name, secure), value, max_age=max_age, path="/", secure=secure, httponly=True, samesite="strict"
    )


def set_session_cookie(visit: Visit, token: str) -> None:
    # No max-age: a browser-session cookie; the server enforces idle and absolute expiry anyway.
    visit.cookies.append((sessions.COOKIE_NAME, token, None))


def safe_next(value: object, default: str = "/") -> str:
    """A same-site path to return to (never another host: no open redirect)."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default
