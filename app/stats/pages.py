"""Statistics pages: the coordinators' exact dashboard, and the analysts' page of frozen releases."""

from __future__ import annotations

from datetime import date, timedelta

from babel.dates import format_date
from fastapi import APIRouter
from fastapi.responses import Response

from app.auth.models import Role
from app.errors import NotFound
from app.stats import counters as c
from app.stats import ledger, published
from app.stats import service as stats_service
from app.stats.api import sees_exact
from app.stats.schemas import MEASURES
from app.web import charts, labels
from app.web.i18n import NC_
from app.web.visit import SignedIn, Visit, render

router = APIRouter(tags=["pages"], include_in_schema=False)

# Counts, not a case's status: «Проверено случаев», not the status label «Проверен».
MEASURE_CONTEXT = "measure"
MEASURE_NAMES = {
    "contacts": NC_("measure", "Contacts"),
    "cases_opened": NC_("measure", "Cases opened"),
    "verified": NC_("measure", "Verified"),
    "evacuated": NC_("measure", "Escapes (evacuated)"),
    "resettled": NC_("measure", "Resettled"),
    "flagged": NC_("measure", "Known-bad handle alerts"),
    "suspected_infiltration": NC_("measure", "Suspected infiltration"),
}


def measure_names(visit: Visit) -> dict[str, str]:
    """Each measure's name in the visitor's language."""
    return {m: visit.pgettext(MEASURE_CONTEXT, name) for m, name in MEASURE_NAMES.items()}


CARD_MEASURES = ("contacts", "cases_opened", "verified", "evacuated", "resettled", "flagged")


def period_name(visit: Visit, interval: str, start: date, label: str) -> str:
    """A period as people read it, in the page's language: "March 2026", "март 2026", "W10 · 2 Mar"."""
    if interval == c.MONTH:
        return _capital(format_date(start, "LLLL y", locale=visit.locale))
    if interval == "day":
        return format_date(start, "d MMM y", locale=visit.locale)
    return visit._("week of %(day)s") % {"day": format_date(start, "d MMM y", locale=visit.locale)}


def tick(visit: Visit, interval: str, start: date) -> str:
    """A period's short axis label: "Mar" / "мар.", or the day of the month for days and weeks."""
    if interval == c.MONTH:
        return format_date(start, "LLL", locale=visit.locale)
    return format_date(start, "d MMM" if interval == c.WEEK else "d", locale=visit.locale)


def _headline(visit: Visit, today: date) -> list[dict[str, object]]:
    """This month (partial), last month and this year so far, exact, with verifications from the rows."""
    this_month = today.replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    first = min(last_month, today.replace(month=1, day=1))
    months = stats_service.summary(visit.db, start=first, end=today, interval=c.MONTH, today=today)
    by_start = {p.start: p for p in months.series}
    columns = []
    for name, start, end, partial in (
        (visit._("This month"), this_month, c.next_period(c.MONTH, this_month), True),
        (visit._("Last month"), last_month, this_month, False),
        (visit._("This year"), today.replace(month=1, day=1), c.next_period(c.MONTH, this_month), True),
    ):
        periods = [p for s, p in by_start.items() if start <= s < end]
        values: dict[str, object] = {m: sum(getattr(p, m) or 0 for p in periods) for m in MEASURES}
        values["verified"] = stats_service.verified_between(visit.db, start, end)
        columns.append(
            {
                "name": name,
                "when": _capital(format_date(start, "LLLL y", locale=visit.locale))
                if end == c.next_period(c.MONTH, start)
                else str(start.year),
                "partial": partial,
                "values": values,
            }
        )
    return columns


def _operational(visit: Visit, interval: str) -> Response:
    today = visit.settings.today()
    summary = stats_service.summary(visit.db, interval=interval, today=today)
    _ = visit._
    measure = measure_names(visit)
    names = [period_name(visit, interval, p.start, p.period) for p in summary.series]
    per_period = charts.grouped_bars(
        names,
        [
            (measure["contacts"], [p.contacts for p in summary.series]),
            (measure["evacuated"], [p.evacuated for p in summary.series]),
        ],
        k=summary.k,
        title=_("Contacts and escapes per period"),
        ticks=[tick(visit, interval, p.start) for p in summary.series],
    )
    verified = stats_service.verified_between(visit.db, summary.from_, summary.to + timedelta(days=1))
    funnel = charts.horizontal_bars(
        [
            (measure["contacts"], summary.funnel.contacts),
            (measure["cases_opened"], summary.funnel.cases_opened),
            (measure["verified"], verified),
            (measure["evacuated"], summary.funnel.evacuated),
        ],
        k=summary.k,
        title=_("From contact to escape"),
    )
    now = stats_service.status_at(visit.db, c.next_period(c.MONTH, today.replace(day=1)))
    open_now = {s: max(now.get(s, 0), 0) for s in stats_service.OPEN_STATUSES}
    statuses = charts.horizontal_bars(
        [(_(labels.label("statuses", s)), n) for s, n in open_now.items()], k=summary.k, title=_("Open cases now")
    )
    return render(
        visit,
        "dashboard.html",
        {
            "summary": summary,
            "interval": interval,
            "headline": _headline(visit, today),
            "card_measures": CARD_MEASURES,
            "measures": MEASURES,
            "measure_names": measure,
            "period_names": names,
            "per_period": per_period,
            "funnel": funnel,
            "verified": verified,
            "statuses": statuses,
            "open_now": open_now,
        },
    )


def _published(visit: Visit, period: str | None) -> Response:
    items = published.list_releases(visit.db, today=visit.settings.today())
    chosen = None
    if items:
        wanted = period or next((i.period for i in reversed(items) if i.kind == "month"), items[-1].period)
        try:
            chosen = published.get_release(visit.db, period=wanted)
        except NotFound:
            chosen = None
    names = {i.period: release_name(visit, i.period) for i in items}
    return render(
        visit,
        "releases.html",
        {
            "items": items,
            "release": chosen,
            # A period asked for by name that has no release is said, not shown as the picker alone.
            "missing": period is not None and chosen is None,
            "names": names,
            "measures": ledger.TABLE_MEASURES,
            "measure_names": measure_names(visit),
            "k": visit.settings.suppression_k,
        },
    )


def release_name(visit: Visit, period: str) -> str:
    if "-Q" in period:
        return visit._("Quarter %(q)s %(year)s") % {"q": period[-1], "year": period[:4]}
    if len(period) == 4:
        return period
    return _capital(format_date(ledger.parse_month(period), "LLLL y", locale=visit.locale))


def _capital(text: str) -> str:
    # Russian month names are lower case in running text; as a label or heading they start a sentence.
    return text[:1].upper() + text[1:]


@router.get("/dashboard")
def dashboard(visit: SignedIn, interval: str = "month", release: str | None = None) -> Response:
    user = visit.require(Role.coordinator, Role.analyst, Role.admin)
    if sees_exact(user.role):
        return _operational(visit, interval if interval in ("day", "week", "month") else "month")
    return _published(visit, release)
