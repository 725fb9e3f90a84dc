"""Sign-in, first password, lock now, and the person's own account page (the admin's are in admin_pages)."""

from __future__ import annotations

import segno
from fastapi import APIRouter
from fastapi.responses import Response

from app.auth import service as auth_service
from app.auth import sessions, signin
from app.auth.delayed import delayed
from app.auth.models import Role, User
from app.errors import Invalid
from app.web import held, templating
from app.web.forms import translated
from app.web.visit import (
    AnyVisit,
    CheckedForm,
    LoginRequired,
    SignedIn,
    Visit,
    cookie,
    redirect,
    render,
    set_session_cookie,
)

router = APIRouter(tags=["pages"], include_in_schema=False)

HOME_BY_ROLE = {
    Role.caseworker: "/contacts/new",
    Role.coordinator: "/dashboard",
    Role.analyst: "/exports",
    Role.admin: "/admin/users",
}


def home_for(user: User) -> str:
    return HOME_BY_ROLE.get(Role(user.role), "/")


def _after_stage(web_stage: str, user: User) -> str:
    if web_stage == sessions.PASSWORD:
        return "/login/password"
    return home_for(user)


def qr_svg(uri: str, title: str) -> object:
    """The otpauth URI as an inline SVG QR code, drawn here (no script, no external service)."""
    return templating.markup(segno.make(uri, error="m").svg_inline(scale=4, title=title, svgclass="qr"))


@router.get("/")
def home(visit: SignedIn) -> Response:
    assert visit.user is not None
    return redirect(visit, home_for(visit.user))


@router.get("/login")
def login_form(visit: AnyVisit, ended: int = 0, locked: int = 0, needed: int = 0) -> Response:
    if visit.user is not None and visit.web is not None:
        return redirect(visit, _after_stage(visit.web.stage, visit.user))
    notice = None
    if locked:
        notice = visit._("Locked. Nothing is left open in this browser.")
    elif ended or visit.ended == "expired":
        notice = visit._("Your session ended after a period without activity. Please sign in again.")
    elif needed:
        notice = visit._("Please sign in to open that page.")
    return render(visit, "login.html", {"notice": notice, "username": ""})


@router.post("/login")
def login(visit: AnyVisit, form: CheckedForm) -> Response:
    username = str(form.get("username", ""))[:64]
    if visit.web is not None and visit.user is not None:
        # A new sign-in never inherits the session (or its id) that came with the request.
        sessions.end(visit.db, web=visit.web, user=visit.user)
        visit.web = None
    try:
        started, admitted = sessions.sign_in(
            visit.db,
            username=username,
            password=str(form.get("password", ""))[:1024],
            otp=str(form.get("otp", ""))[:16],
            locale=visit.locale,
        )
    except signin.Refused as exc:
        # Answered, not raised: the failure is committed by the unit of work (it counts), and the
        # answer waits for the name's slow-down after the transaction has ended.
        error = visit._("Sign-in failed: wrong name, password or code, or the account is locked for a while.")
        return delayed(render(visit, "login.html", {"error": error, "username": username}, status=401), exc.delay)
    set_session_cookie(visit, started.token)
    if started.web.stage == sessions.FULL and visit.request.cookies.get(
        cookie(held.COOKIE, visit.settings.secure_cookies)
    ):
        # A form posted after the last session ended waits there.
        return delayed(redirect(visit, "/held"), admitted.delay)
    return delayed(redirect(visit, _after_stage(started.web.stage, admitted.user)), admitted.delay)


def _staged(visit: Visit, stage: str) -> User:
    if visit.web is None or visit.user is None:
        raise LoginRequired()
    if visit.web.stage != stage:
        raise LoginRequired(_after_stage(visit.web.stage, visit.user))
    return visit.user


@router.get("/login/password")
def password_form(visit: AnyVisit) -> Response:
    _staged(visit, sessions.PASSWORD)
    return render(visit, "password.html", {"errors": {}})


@router.post("/login/password")
def change_password(visit: AnyVisit, form: CheckedForm) -> Response:
    user = _staged(visit, sessions.PASSWORD)
    try:
        started = sessions.change_password(
            visit.db,
            user=user,
            password=str(form.get("password", "")),
            repeat=str(form.get("repeat", "")),
            locale=visit.locale,
        )
    except Invalid as exc:
        errors = translated(visit, exc)
        return render(visit, "password.html", {"errors": errors}, status=422)
    set_session_cookie(visit, started.token)
    return redirect(visit, home_for(user))


@router.post("/lock")
@router.post("/logout")
def lock(visit: AnyVisit, form: CheckedForm) -> Response:
    if visit.web is not None and visit.user is not None:
        # "Lock now" keeps what was being typed: the page sends the open form along (see helpline.js).
        action = str(form.get("keep_action", ""))
        pairs = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        token = held.hold(visit.db, user_id=visit.user.id, action=action, pairs=pairs)
        if token:
            visit.cookies.append((held.COOKIE, token, visit.settings.held_form_minutes * 60))
        sessions.end(visit.db, web=visit.web, user=visit.user)
        visit.web = None
        visit.ended = "locked"  # makes the response delete the cookie
    return redirect(visit, "/login?locked=1")


# ----------------------------------------------------------------------------- own account


def _account_page(visit: Visit, *, errors: dict[str, str] | None = None, done: str | None = None, status: int = 200):
    user = visit.require()
    return render(
        visit,
        "account.html",
        {"errors": errors or {}, "done": done, "has_duress": user.duress_hash is not None},
        status=status,
    )


@router.get("/account")
def account(visit: SignedIn, done: str | None = None) -> Response:
    # ``done`` names what the last form did (see the redirects below), for the notice that says so.
    return _account_page(visit, done=done)


@router.post("/account/password")
def change_own_password(visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require()
    try:
        auth_service.change_own_password(
            visit.db,
            user=user,
            current=str(form.get("current", ""))[:1024],
            otp=str(form.get("otp", ""))[:16],
            password=str(form.get("password", ""))[:2048],
            repeat=str(form.get("repeat", ""))[:2048],
        )
    except Invalid as exc:
        errors = translated(visit, exc)
        if isinstance(exc, signin.NotConfirmed):
            # The counted failure must be kept: render, don't raise (the unit of work commits).
            return _account_page(visit, errors=errors, status=422)
        visit.db.rollback()
        return _account_page(visit, errors=errors, status=422)
    # Every session ended with the change, this one too: a new one, with a new id, takes its place.
    started = sessions.start(visit.db, user=user, locale=visit.locale)
    visit.web = started.web
    set_session_cookie(visit, started.token)
    return redirect(visit, "/account?done=password")


@router.post("/account/duress")
def set_own_duress(visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require()
    try:
        auth_service.set_duress(
            visit.db,
            actor=user.username,
            user=user,
            password=str(form.get("duress", ""))[:2048],
            current=str(form.get("current", ""))[:1024],
            otp=str(form.get("otp", ""))[:16],
        )
    except Invalid as exc:
        errors = {("duress" if k == "password" else k): v for k, v in translated(visit, exc).items()}
        if not isinstance(exc, signin.NotConfirmed):
            visit.db.rollback()
        return _account_page(visit, errors=errors, status=422)
    return redirect(visit, "/account?done=duress")
