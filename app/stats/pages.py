"""The coordinators' dashboard: the disclosure-controlled summary as numbers and server-drawn charts."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.auth.models import Role
from app.stats import service as stats_service
from app.stats.schemas import MEASURES
from app.web import charts, labels
from app.web.i18n import N_
from app.web.visit import SignedIn, render

router = APIRouter(tags=["pages"], include_in_schema=False)

MEASURE_NAMES = {
    "contacts": N_("Contacts"),
    "cases_opened": N_("Cases opened"),
    "evacuated": N_("Escapes (evacuated)"),
    "resettled": N_("Resettled"),
    "flagged": N_("Known-bad handle alerts"),
    "suspected_infiltration": N_("Suspected infiltration"),
}


@router.get("/dashboard")
def dashboard(visit: SignedIn, interval: str = "week") -> Response:
    visit.require(Role.coordinator, Role.analyst, Role.admin)
    interval = interval if interval in ("week", "month") else "week"
    summary = stats_service.summary(visit.db, interval=interval, today=visit.settings.today())
    k, _ = summary.k, visit._
    periods = [p.period for p in summary.series]
    per_period = charts.grouped_bars(
        periods,
        [
            (_("Contacts"), [p.contacts for p in summary.series]),
            (_("Escapes (evacuated)"), [p.evacuated for p in summary.series]),
        ],
        k=k,
        title=_("Contacts and escapes per period"),
    )
    funnel = charts.horizontal_bars(
        [
            (_("Contacts"), summary.funnel.contacts),
            (_("Cases opened"), summary.funnel.cases_opened),
            (_("Escapes (evacuated)"), summary.funnel.evacuated),
        ],
        k=k,
        title=_("From contact to escape"),
    )
    statuses = charts.horizontal_bars(
        [(_(labels.label("statuses", s)), n) for s, n in summary.open_by_status.items()],
        k=k,
        title=_("Open cases by status"),
    )
    return render(
        visit,
        "dashboard.html",
        {
            "summary": summary,
            "interval": interval,
            "measures": MEASURES,
            "measure_names": MEASURE_NAMES,
            "per_period": per_period,
            "funnel": funnel,
            "statuses": statuses,
        },
    )
