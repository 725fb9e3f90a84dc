"""Shared page routes: the language switch, the keep-alive, a held form handed back.

(Sign-in and lock live in app/auth/pages.py.)
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.auth import sessions
from app.web import held, i18n
from app.web.visit import LANG_COOKIE, AnyVisit, CheckedForm, SignedIn, cookie, redirect, render, safe_next

router = APIRouter(tags=["pages"], include_in_schema=False)

ONE_YEAR = 365 * 24 * 3600


@router.post("/language")
def switch_language(visit: AnyVisit, form: CheckedForm) -> Response:
    locale = str(form.get("locale", ""))
    if locale in i18n.LOCALES:
        if visit.web is not None:
            sessions.set_locale(visit.web, locale)
        visit.cookies.append((LANG_COOKIE, locale, ONE_YEAR))
    return redirect(visit, safe_next(form.get("next"), "/"))


@router.post("/session/keepalive")
def keepalive(visit: SignedIn, form: CheckedForm) -> Response:
    """Typing keeps the session alive: resuming it (in SignedIn) reset its idle clock. The absolute limit stays."""
    return Response(status_code=204)


@router.get("/held")
def held_form(visit: SignedIn) -> Response:
    """The form posted after the session ended, once more for review; then it is gone from the server."""
    user = visit.require()
    token = visit.request.cookies.get(cookie(held.COOKIE, visit.settings.secure_cookies))
    kept = held.take(visit.db, token=token, user=user)
    if kept is None:
        # Someone else's form stays waiting for them (another person may have signed in on this browser).
        if not held.waiting(visit.db, token=token):
            visit.cookies.append((held.COOKIE, "", 0))
        return redirect(visit, "/")
    visit.cookies.append((held.COOKIE, "", 0))
    action, pairs = kept
    shown = [(name, value) for name, value in pairs if name in held.SHOWN]
    hidden = [(name, value) for name, value in pairs if name not in held.SHOWN]
    return render(visit, "held.html", {"action": action, "shown": shown, "hidden": hidden})
