"""The exports page: the two disclosure-controlled downloads, for analysts and admins.

The downloads stream exactly as the API's do (and are audited when the stream ends); the page posts a
CSRF-checked form instead of sending a bearer token.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response

from app.auth.models import Role
from app.errors import Invalid, NotFound
from app.exports import api as exports_api
from app.exports import service as export_service
from app.stats import pages as stats_pages
from app.stats import published
from app.web import forms
from app.web.visit import CheckedForm, SignedIn, Visit, render

router = APIRouter(tags=["pages"], include_in_schema=False)


def _page(visit: Visit, *, error: str | None = None, period: str | None = None, status: int = 200) -> Response:
    releases = published.list_releases(visit.db, today=visit.settings.today())
    k = visit.settings.suppression_k
    context = {
        "k": k,
        "error": error,
        "period": period,
        "releases": releases,
        "names": {r.period: stats_pages.release_name(visit, r.period) for r in releases},
        # Counts only (no row is read): what today's record-level file would hold and withhold.
        "plan": export_service.records_plan(visit.db, today=visit.settings.today()),
    }
    return render(visit, "exports.html", context, status=status)


@router.get("/exports")
def exports(visit: SignedIn) -> Response:
    user = visit.require(Role.analyst, Role.admin)
    export_service.check_exporter(user.role)
    return _page(visit)


@router.post("/exports/aggregate")
def aggregate(visit: SignedIn, form: CheckedForm, opener: exports_api.Opener) -> Response:
    user = visit.require(Role.analyst, Role.admin)
    export_service.check_exporter(user.role)
    fmt: Literal["csv", "json"] = "json" if form.get("format") == "json" else "csv"
    period = str(form.get("period") or "") or None
    try:
        prepared = export_service.aggregate_report(visit.db, fmt=fmt, period=period)
    except (Invalid, NotFound) as exc:
        message = visit._("There is no release for that period.") if isinstance(exc, NotFound) else None
        message = message or "; ".join(forms.translated(visit, exc).values())  # type: ignore[arg-type]
        return _page(visit, error=message, period=period, status=422)
    media = "application/json" if fmt == "json" else "text/csv; charset=utf-8"
    return exports_api._download(
        prepared, media_type=media, filename=f"helpline-aggregate.{fmt}", actor=user.username, opener=opener
    )


@router.post("/exports/records")
def records(visit: SignedIn, form: CheckedForm, opener: exports_api.Opener) -> Response:
    user = visit.require(Role.analyst, Role.admin)
    export_service.check_exporter(user.role)
    prepared = export_service.records_export(visit.db)
    return exports_api._download(
        prepared,
        media_type="text/csv; charset=utf-8",
        filename="helpline-records.csv",
        actor=user.username,
        opener=opener,
    )
