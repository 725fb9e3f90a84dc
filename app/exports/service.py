"""The two exports, for analysts and admins: disclosure-controlled, streamed, and audited.

Each export is a ``Prepared`` value: a header, the text as an iterator of chunks, and the figures that go
into its audit entry. Callers (the CLI, the API) write the chunks where they belong and then call
``record_export`` with the number of rows actually delivered.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.models import Role
from app.crypto import service as crypto
from app.errors import Forbidden, Invalid
from app.exports import aggregate, records
from app.stats import ledger, published

EXPORTERS = (Role.analyst, Role.admin)


@dataclass
class Prepared:
    """An export ready to be written: ``chunks`` yields text; ``rows`` counts what it will contain."""

    name: str
    chunks: Iterator[str]
    rows: int
    detail: dict[str, object] = field(default_factory=dict)


def check_exporter(role: str) -> None:
    """Only analysts and admins export (403 for everyone else)."""
    if role not in EXPORTERS:
        raise Forbidden("only analysts and admins may export")


def aggregate_report(
    session: Session,
    *,
    fmt: Literal["csv", "json"] = "csv",
    start: date | None = None,
    end: date | None = None,
    period: str | None = None,
    today: date | None = None,
) -> Prepared:
    """The aggregate report: one release (``period``), or every release within [start, end]; ledger only."""
    if fmt not in ("csv", "json"):
        raise Invalid.field("format", "must be csv or json")
    today = today or crypto.settings_of(session).today()
    ledger.ensure_previous_month(session, today=today)
    if period:
        rows = [ledger.get_release(session, period=period)]
    else:
        first, last = start or date(1, 1, 1), end or today
        rows = [r for r in ledger.list_releases(session) if r.first_on >= first and r.last_on <= last]
    if not rows:
        raise Invalid.field("period", "no released period in that range")
    releases = [published.release(r) for r in rows]
    head = aggregate.header(releases, generated_on=today)
    text = aggregate.csv_text(releases, head) if fmt == "csv" else aggregate.json_text(releases, head)
    detail: dict[str, object] = {
        "format": fmt,
        "from": head.period_from.isoformat(),
        "to": head.period_to.isoformat(),
        "k": head.k,
        "noise": head.noise,
        "epsilon": head.epsilon,
        "releases": [str(r.id) for r in releases],
    }
    return Prepared(name="aggregate", chunks=aggregate.chunks(text), rows=len(releases), detail=detail)


# The released measures the file's rows can be counted against: contacts by the month they came in, and
# cases opened (a case is opened within days of its contact, so the file's "has a case" is close to it).
COMPARABLE = ("contacts", "cases_opened")


def release_figures(session: Session, *, today: date | None = None) -> records.Published:
    """What the frozen releases show of the measures the research file can be counted against."""
    ledger.ensure_previous_month(session, today=today)
    figures: dict[str, list[tuple[dict[str, int | None], int | None]]] = {}
    for row in ledger.list_releases(session):
        tables = published.release(row).tables
        figures[row.period] = [(t.cells, t.total) if t else ({}, None) for t in map(tables.get, COMPARABLE)]
    return records.Published.of(figures)


def records_plan(session: Session, *, today: date | None = None) -> records.Plan:
    """The research file's plan for today's rows, under what the releases show (counts only, no row read)."""
    settings = crypto.settings_of(session)
    published_figures = release_figures(session, today=today or settings.today())
    return records.plan(records.count_fine(session), k=settings.suppression_k, published=published_figures)


def records_export(session: Session, *, today: date | None = None) -> Prepared:
    """The k-anonymous record-level file; the database is read (counts only) before the first chunk."""
    settings = crypto.settings_of(session)
    today = today or settings.today()
    k = settings.suppression_k
    plan = records_plan(session, today=today)

    def text() -> Iterator[str]:
        yield "".join(records.header_lines(plan, k=k, today=today))
        for chunk, _ in records.rows(plan):
            yield chunk

    detail: dict[str, object] = {
        "k": k,
        "generalisation": plan.name,
        "dropped": plan.dropped,
        "suppressed_values": plan.suppressed_values,
        "withheld_regions": plan.withheld_values,
        "periods": list(plan.periods),
        "information_loss": round(plan.information_loss, 4),
    }
    return Prepared(name="records", chunks=text(), rows=plan.rows, detail=detail)


def record_export(session: Session, *, actor: str, prepared: Prepared, rows: int, complete: bool = True) -> None:
    """Write the audit entry for an export: who, which, its parameters and the rows delivered."""
    audit.record(
        session,
        actor=actor,
        action=f"export.{prepared.name}",
        detail={**prepared.detail, "rows": rows, "complete": complete},
    )
