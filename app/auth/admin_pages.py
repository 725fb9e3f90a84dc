"""The admin's user page: create accounts, hand over credentials, unlock, end sessions."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response

from app.auth import duress, signin
from app.auth import service as auth_service
from app.auth.models import Role
from app.auth.pages import qr_svg
from app.errors import Conflict, Invalid
from app.web.forms import translated
from app.web.visit import CheckedForm, SignedIn, Visit, redirect, render

router = APIRouter(tags=["pages"], include_in_schema=False)


def _users_page(
    visit: Visit,
    *,
    created: dict[str, object] | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
    confirm: dict[str, str] | None = None,
    done: str | None = None,
) -> Response:
    users = auth_service.list_users(visit.db)
    held = {u.id for u in users if duress.is_held(u)}
    locked = {u.id for u in users if signin.is_locked(u) and u.id not in held}
    context = {
        "users": users,
        "created": created,
        "errors": errors or {},
        "values": values or {},
        "roles": list(Role),
        "held": held,
        "locked": locked,
        "confirm": confirm,
        "done": done,
    }
    return render(visit, "admin_users.html", context, status=status)


def _settle(visit: Visit) -> None:
    """Under duress an admin's actions look done but are undone: no account is made, reset or unlocked
    for the person watching (the generated password or key shown was never stored)."""
    if duress.active(visit.db):
        visit.db.rollback()


@router.get("/admin/users")
def users(visit: SignedIn, deactivated: str | None = None, ended: str | None = None) -> Response:
    visit.require(Role.admin)
    # What the last press did, said only if it is so: a link someone sends cannot make the page claim it.
    accounts = {u.username: u for u in auth_service.list_users(visit.db)}
    if deactivated and deactivated in accounts and not accounts[deactivated].active:
        return _users_page(visit, done=visit._("Account %(name)s deactivated.") % {"name": deactivated})
    if ended and ended in accounts:
        return _users_page(visit, done=visit._("Every session of %(name)s has ended.") % {"name": ended})
    return _users_page(visit)


@router.post("/admin/users")
def create_user(visit: SignedIn, form: CheckedForm) -> Response:
    admin = visit.require(Role.admin)
    username, role = str(form.get("username", ""))[:64], str(form.get("role", ""))
    try:
        account = auth_service.create_user(visit.db, actor=admin.username, username=username, role=role)
    except Invalid as exc:
        errors = translated(visit, exc)
        return _users_page(visit, errors=errors, values={"username": username, "role": role}, status=422)
    except Conflict:
        errors = {"username": visit._("That name is taken.")}
        return _users_page(visit, errors=errors, values={"username": username, "role": role}, status=409)
    shown = _shown_once(visit, account.user.username, "created", uri=account.otpauth_uri, password=account.password)
    _settle(visit)  # after reading the account: under duress this rolls it back
    return _users_page(visit, created=shown)


def _shown_once(
    visit: SignedIn, username: str, kind: str, *, uri: str | None = None, password: str | None = None
) -> dict[str, object]:
    """What the users page shows once after a secret was made: the password and/or the TOTP QR code."""
    shown: dict[str, object] = {"username": username, "kind": kind}
    if password is not None:
        shown["password"] = password
    if uri is not None:
        shown["uri"] = uri
        shown["qr"] = qr_svg(uri, visit._("QR code for the authenticator app"))
    return shown


@router.post("/admin/users/{username}/reset-totp")
def reset_totp(username: str, visit: SignedIn, form: CheckedForm) -> Response:
    admin = visit.require(Role.admin)
    target = auth_service.get_user(visit.db, username=username)
    uri = auth_service.reset_totp(visit.db, actor=admin.username, user=target)
    shown = _shown_once(visit, target.username, "totp", uri=uri)
    _settle(visit)
    return _users_page(visit, created=shown)


@router.post("/admin/users/{username}/deactivate")
def deactivate(username: str, visit: SignedIn, form: CheckedForm) -> Response:
    admin = visit.require(Role.admin)
    target = auth_service.get_user(visit.db, username=username)
    if target.id == admin.id:
        raise Conflict("you cannot deactivate your own account")
    if form.get("confirm") != "yes":
        # The person is shut out for good (no page turns an account back on): asked again first.
        return _users_page(visit, confirm={"action": "deactivate", "username": target.username})
    auth_service.deactivate(visit.db, actor=admin.username, user=target)
    _settle(visit)
    return redirect(visit, f"/admin/users?deactivated={quote(target.username)}")


@router.post("/admin/users/{username}/reset-password")
def reset_password(username: str, visit: SignedIn, form: CheckedForm) -> Response:
    admin = visit.require(Role.admin)
    target = auth_service.get_user(visit.db, username=username)
    if form.get("confirm") != "yes":
        # The person's password stops working at once and their sessions end: asked again first.
        return _users_page(visit, confirm={"action": "reset-password", "username": target.username})
    password = auth_service.reset_password(visit.db, actor=admin.username, user=target)
    if target.id == admin.id:
        return redirect(visit, "/login")
    shown = _shown_once(visit, target.username, "password", password=password)
    _settle(visit)
    return _users_page(visit, created=shown)


@router.post("/admin/users/{username}/unlock")
def unlock(username: str, visit: SignedIn, form: CheckedForm) -> Response:
    admin = visit.require(Role.admin)
    target = auth_service.get_user(visit.db, username=username)
    auth_service.unlock(visit.db, actor=admin.username, user=target)
    _settle(visit)
    return redirect(visit, "/admin/users")


@router.post("/admin/users/{username}/end-sessions")
def end_sessions(username: str, visit: SignedIn, form: CheckedForm) -> Response:
    admin = visit.require(Role.admin)
    target = auth_service.get_user(visit.db, username=username)
    auth_service.end_sessions(visit.db, actor=admin.username, user=target)
    _settle(visit)
    return redirect(visit, "/login" if target.id == admin.id else f"/admin/users?ended={quote(target.username)}")


@router.post("/admin/sessions/end-all")
def end_all_sessions(visit: SignedIn, form: CheckedForm) -> Response:
    admin = visit.require(Role.admin)
    keep_me = form.get("except_me") == "1"
    auth_service.end_all_sessions(visit.db, actor=admin.username, keep=admin if keep_me else None)
    _settle(visit)
    return redirect(visit, "/admin/users?ended=1" if keep_me else "/login")
