"""Sign-in, TOTP enrolment, first password, lock now, and the admin's user page."""

from __future__ import annotations

import segno
from fastapi import APIRouter
from fastapi.responses import Response

from app.auth import service as auth_service
from app.auth import sessions
from app.auth.models import Role, User
from app.errors import Conflict, Invalid, SignInFailed
from app.web import held, templating
from app.web.visit import AnyVisit, CheckedForm, LoginRequired, SignedIn, Visit, redirect, render, set_session_cookie

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
    if web_stage == sessions.ENROL:
        return "/login/enrol"
    if web_stage == sessions.PASSWORD:
        return "/login/password"
    return home_for(user)


def qr_svg(uri: str, title: str) -> object:
    """The otpauth URI as an inline SVG QR code, drawn here (no script, no external service)."""
    return templating.markup(segno.make(uri, error="m").svg_inline(scale=4, title=title, svgclass="qr"))


def field_errors(exc: Invalid) -> dict[str, str]:
    errors: dict[str, str] = {}
    detail = exc.detail if isinstance(exc.detail, list) else [{"loc": ["body", "_"], "msg": str(exc.detail)}]
    for err in detail:
        loc = err.get("loc") or ["_"]
        errors.setdefault(str(loc[-1]), str(err.get("msg", "")))
    return errors


@router.get("/")
def home(visit: SignedIn) -> Response:
    assert visit.user is not None
    return redirect(visit, home_for(visit.user))


@router.get("/login")
def login_form(visit: AnyVisit, ended: int = 0, locked: int = 0) -> Response:
    if visit.user is not None and visit.web is not None:
        return redirect(visit, _after_stage(visit.web.stage, visit.user))
    notice = None
    if locked:
        notice = visit._("Locked. Nothing is left open in this browser.")
    elif ended or visit.ended == "expired":
        notice = visit._("Your session ended after a period without activity. Please sign in again.")
    return render(visit, "login.html", {"notice": notice, "username": ""})


@router.post("/login")
def login(visit: AnyVisit, form: CheckedForm) -> Response:
    username = str(form.get("username", ""))[:64]
    try:
        started, user = sessions.sign_in(
            visit.db,
            username=username,
            password=str(form.get("password", ""))[:1024],
            otp=str(form.get("otp", ""))[:16],
            locale=visit.locale,
        )
    except SignInFailed:
        # The failure is committed by the unit of work (it counts towards lock-out).
        error = visit._("Sign-in failed: wrong name, password or code, or the account is locked for a while.")
        return render(visit, "login.html", {"error": error, "username": username}, status=401)
    set_session_cookie(visit, started.token)
    if started.web.stage == sessions.FULL and visit.request.cookies.get(held.COOKIE):
        return redirect(visit, "/held")  # a form posted after the last session ended waits there
    return redirect(visit, _after_stage(started.web.stage, user))


def _staged(visit: Visit, stage: str) -> User:
    if visit.web is None or visit.user is None:
        raise LoginRequired()
    if visit.web.stage != stage:
        raise LoginRequired(_after_stage(visit.web.stage, visit.user))
    return visit.user


def _enrol_page(visit: Visit, user: User, *, error: str | None = None, status: int = 200) -> Response:
    secret = sessions.enrolment_secret(visit.db, user=user)
    uri = auth_service.passwords.totp_uri(secret, user.username)
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return render(
        visit,
        "enrol.html",
        {"secret": grouped, "qr": qr_svg(uri, visit._("QR code for your authenticator app")), "error": error},
        status=status,
    )


@router.get("/login/enrol")
def enrol_form(visit: AnyVisit) -> Response:
    return _enrol_page(visit, _staged(visit, sessions.ENROL))


@router.post("/login/enrol")
def enrol(visit: AnyVisit, form: CheckedForm) -> Response:
    user = _staged(visit, sessions.ENROL)
    assert visit.web is not None
    try:
        sessions.confirm_enrolment(visit.db, web=visit.web, user=user, otp=str(form.get("otp", ""))[:16])
    except Invalid:
        error = visit._("That code does not match. Check the clock of your device and try again.")
        return _enrol_page(visit, user, error=error, status=422)
    return redirect(visit, _after_stage(visit.web.stage, user))


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
        errors = {k: visit._(v) for k, v in field_errors(exc).items()}
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


# ----------------------------------------------------------------------------- admin


def _users_page(
    visit: Visit,
    *,
    created: dict[str, object] | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    users = auth_service.list_users(visit.db)
    return render(
        visit,
        "admin_users.html",
        {"users": users, "created": created, "errors": errors or {}, "values": values or {}, "roles": list(Role)},
        status=status,
    )


@router.get("/admin/users")
def users(visit: SignedIn) -> Response:
    visit.require(Role.admin)
    return _users_page(visit)


@router.post("/admin/users")
def create_user(visit: SignedIn, form: CheckedForm) -> Response:
    admin = visit.require(Role.admin)
    username, role = str(form.get("username", ""))[:64], str(form.get("role", ""))
    try:
        account = auth_service.create_user(visit.db, actor=admin.username, username=username, role=role)
    except Invalid as exc:
        errors = {k: visit._(v) for k, v in field_errors(exc).items()}
        return _users_page(visit, errors=errors, values={"username": username, "role": role}, status=422)
    except Conflict:
        errors = {"username": visit._("That name is taken.")}
        return _users_page(visit, errors=errors, values={"username": username, "role": role}, status=409)
    created = {
        "username": account.user.username,
        "password": account.password,
        "uri": account.otpauth_uri,
        "qr": qr_svg(account.otpauth_uri, visit._("QR code for the authenticator app")),
        "kind": "created",
    }
    return _users_page(visit, created=created)


@router.post("/admin/users/{username}/reset-totp")
def reset_totp(username: str, visit: SignedIn, form: CheckedForm) -> Response:
    admin = visit.require(Role.admin)
    target = auth_service.get_user(visit.db, username=username)
    uri = auth_service.reset_totp(visit.db, actor=admin.username, user=target)
    created = {
        "username": target.username,
        "uri": uri,
        "qr": qr_svg(uri, visit._("QR code for the authenticator app")),
        "kind": "totp",
    }
    return _users_page(visit, created=created)


@router.post("/admin/users/{username}/deactivate")
def deactivate(username: str, visit: SignedIn, form: CheckedForm) -> Response:
    admin = visit.require(Role.admin)
    target = auth_service.get_user(visit.db, username=username)
    if target.id == admin.id:
        raise Conflict("you cannot deactivate your own account")
    auth_service.deactivate(visit.db, actor=admin.username, user=target)
    return redirect(visit, "/admin/users")
