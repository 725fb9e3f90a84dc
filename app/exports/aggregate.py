"""The aggregate report: the summary's measures by month as CSV or JSON, with a header block.

Everything here comes from an already protected ``Summary``: a suppressed figure is ``None`` there, and it
is written as ``<K`` in CSV and ``null`` in JSON. Medians and rates are written with a decimal point, so no
statistic that is not a count reads like one.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence

from app.exports.schemas import AggregateHeader
from app.stats.schemas import MEASURES, Summary


def header(summary: Summary, *, generated_on) -> AggregateHeader:  # type: ignore[no-untyped-def]
    return AggregateHeader(
        period_from=summary.from_,
        period_to=summary.to,
        k=summary.k,
        noise=summary.dp is not None,
        epsilon=summary.dp.epsilon if summary.dp else None,
        generated_on=generated_on,
    )


def _cell(value: int | float | None, k: int) -> str:
    if value is None:
        return f"<{k}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def csv_text(summary: Summary, head: AggregateHeader) -> str:
    """The whole report as CSV: header block, then one table per section, separated by blank lines."""
    k = summary.k
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
    w.writerow(["table", "period", *MEASURES])
    for row in summary.series:
        w.writerow(["by_month", row.period, *(_cell(getattr(row, m), k) for m in MEASURES)])
    w.writerow(["by_month", "total", *(_cell(getattr(summary.totals, m), k) for m in MEASURES)])
    for dim, table in (("region", summary.by_region), ("channel", summary.by_channel), ("risk", summary.by_risk)):
        _breakdown(w, f"by_{dim}", dim, table, k)
    w.writerow([])
    w.writerow(["table", "status", "open_cases"])
    for status, count in summary.open_by_status.items():
        w.writerow(["open_by_status", status, _cell(count, k)])
    w.writerow(["open_by_status", "total", _cell(summary.open_cases, k)])
    w.writerow([])
    w.writerow(["table", "statistic", "value"])
    f = summary.funnel
    for name, rate in (
        ("case_rate", f.case_rate),
        ("escape_rate", f.escape_rate),
        ("escape_rate_of_cases", f.escape_rate_of_cases),
    ):
        w.writerow(["funnel", name, _statistic(summary, f"funnel.{name}", rate)])
    w.writerow(
        [
            "days_to_evacuation",
            "median",
            _statistic(summary, "median_days_to_evacuation", summary.median_days_to_evacuation),
        ]
    )
    w.writerow(
        ["days_to_evacuation", "p90", _statistic(summary, "p90_days_to_evacuation", summary.p90_days_to_evacuation)]
    )
    return out.getvalue()


def _statistic(summary: Summary, name: str, value: float | None) -> str:
    """A rate or a number of days: ``<K`` if withheld, empty if there is nothing to compute it from."""
    if value is None:
        return f"<{summary.k}" if summary.is_suppressed(name) else ""
    return f"{float(value):.3f}"


def _breakdown(w, table: str, dim: str, data: dict[str, dict[str, int | None]], k: int) -> None:  # type: ignore[no-untyped-def]
    measures: Sequence[str] = list(data)
    if not measures:
        return
    w.writerow([])
    w.writerow(["table", dim, *measures])
    for value in data[measures[0]]:
        w.writerow([table, value, *(_cell(data[m].get(value), k) for m in measures)])


def json_text(summary: Summary, head: AggregateHeader) -> str:
    """The report as one JSON document: the header fields, then the protected summary (null = suppressed)."""
    body = summary.model_dump(mode="json", by_alias=True, exclude={"dp"})
    doc = {**head.model_dump(mode="json"), "dp": summary.dp.model_dump(mode="json") if summary.dp else None}
    doc["by_month"] = body.pop("series")
    doc.update(body)
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def chunks(text: str, size: int = 65536) -> Iterator[str]:
    for i in range(0, len(text), size):
        yield text[i : i + size]
