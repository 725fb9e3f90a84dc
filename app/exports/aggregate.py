"""The aggregate report: frozen releases from the ledger, written verbatim as CSV or JSON.

Nothing here is computed from records or counters: each table is a release's published figures, with a
suppressed one written as ``<K`` in CSV and ``null`` in JSON, and every table names its release (id,
period, created), so a reader can tell exactly which frozen figures they hold.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence

from app.exports.schemas import AggregateHeader
from app.stats.ledger import TABLE_MEASURES
from app.stats.schemas import Release


def header(releases: Sequence[Release], *, generated_on) -> AggregateHeader:  # type: ignore[no-untyped-def]
    epsilons = [r.dp.epsilon for r in releases if r.dp]
    return AggregateHeader(
        period_from=min(r.first_day for r in releases),
        period_to=max(r.last_day for r in releases),
        k=releases[0].k,
        noise=bool(epsilons),
        epsilon=max(epsilons) if epsilons else None,
        generated_on=generated_on,
        releases=[r.period for r in releases],
    )


def _cell(value: int | None, k: int) -> str:
    return f"<{k}" if value is None else str(value)


def csv_text(releases: Sequence[Release], head: AggregateHeader) -> str:
    """The report as CSV: header block, the releases used, then each release's tables."""
    k = head.k
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    for name, value in (
        ("report", head.report),
        ("period_from", head.period_from.isoformat()),
        ("period_to", head.period_to.isoformat()),
        ("k", k),
        ("noise", "yes" if head.noise else "no"),
        ("epsilon", "" if head.epsilon is None else f"{head.epsilon:.3f}"),
        ("generated_on", head.generated_on.isoformat()),
        ("suppressed", f"<{k} marks a figure withheld because it is small or would reveal one that is"),
    ):
        w.writerow([name, value])
    w.writerow([])
    w.writerow(["table", "period", "kind", "release_id", "created_at", "epsilon"])
    for r in releases:
        eps = "" if r.dp is None else f"{r.dp.epsilon:.3f}"
        w.writerow(["release", r.period, r.kind, str(r.id), r.created_at.isoformat(), eps])
    w.writerow([])
    w.writerow(["table", "period", "region", *TABLE_MEASURES])
    for r in releases:
        regions = list(r.tables[TABLE_MEASURES[0]].cells)
        for region in regions:
            w.writerow(
                ["by_region", r.period, region, *(_cell(r.tables[m].cells.get(region), k) for m in TABLE_MEASURES)]
            )
        w.writerow(["by_region", r.period, "total", *(_cell(r.tables[m].total, k) for m in TABLE_MEASURES)])
    w.writerow([])
    w.writerow(["table", "period", "status", "open_cases"])
    for r in releases:
        if r.open_at_end is None:
            continue
        for status, count in r.open_at_end.cells.items():
            w.writerow(["open_at_end", r.period, status, _cell(count, k)])
        w.writerow(["open_at_end", r.period, "total", _cell(r.open_at_end.total, k)])
    return out.getvalue()


def json_text(releases: Sequence[Release], head: AggregateHeader) -> str:
    """The report as one JSON document: the header fields, then the releases (null = suppressed)."""
    doc = head.model_dump(mode="json")
    doc["releases"] = [r.model_dump(mode="json") for r in releases]
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def chunks(text: str, size: int = 65536) -> Iterator[str]:
    for i in range(0, len(text), size):
        yield text[i : i + size]
