"""Shared page routes: the language switch. (Sign-in and lock live in app/auth/pages.py.)"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.auth import sessions
from app.web import i18n
from app.web.visit import LANG_COOKIE, AnyVisit, CheckedForm, redirect, safe_next

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
