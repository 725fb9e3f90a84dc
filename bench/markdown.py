"""Render a results file as Markdown tables for docs/PERFORMANCE.md: ``python -m bench.markdown [FILE]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.report import _fmt


def render(doc: dict[str, Any]) -> str:
    m, v = doc["machine"], doc["versions"]
    out = [
        f"Run of {doc['date']} ({'smoke: figures not measurements' if doc.get('smoke') else 'quick' if doc['quick'] else 'full'}, {doc['size']:,} contacts); "
        f"{m['cpu_model']}, {m['cores']} cores, {m['ram_bytes'] / 2**30:.0f} GB RAM, load average at start "
        f"{m['load_average_at_start'][0]:.1f}; Python {v['python']}, SQLite {v['sqlite']}, {v.get('postgres') or 'no PostgreSQL'}, "
        f"SQLAlchemy {v['sqlalchemy']}, FastAPI {v['fastapi']}, uvicorn {v['uvicorn']}, cryptography {v['cryptography']}.",
        "",
    ]
    for name, bench in doc["benchmarks"].items():
        out.append(f"#### {name}")
        out.append("")
        if bench["status"] != "ok":
            out += [f"Not measured ({bench['status']}): {bench.get('reason')}", ""]
            continue
        out += ["| figure | value | unit | floor | target | |", "| --- | ---: | --- | ---: | --- | --- |"]
        for f in bench["figures"]:
            verdict = "" if f["passed"] is None else ("pass" if f["passed"] else "**miss**")
            out.append(
                f"| {f['name']} | {_fmt(f['value'])} | {f['unit']} | {_fmt(f['floor'])} | {f['target'] or ''} | {verdict} |"
            )
        out.append("")
    return "\n".join(out)


def scale_table(doc: dict[str, Any]) -> str:
    """Intake and summary at each scale point of a full run (SQLite), as one Markdown table."""
    figures = {
        f["name"]: f["value"]
        for name in ("intake", "stats")
        if doc["benchmarks"].get(name, {}).get("status") == "ok"
        for f in doc["benchmarks"][name]["figures"]
    }
    columns = [
        ("intake contacts/s", "sqlite{}.intake contacts/s (encrypted)"),
        ("intake p95 ms", "sqlite{}.intake latency p95"),
        ("summary full range by month, ms", "sqlite{}.summary full range, by month (median)"),
        ("summary last 3 months by month, ms", "sqlite{}.summary last 3 months, by month (median)"),
        ("summary full range by week, ms", "sqlite{}.summary full range, by week (median)"),
    ]
    out = ["| contacts | " + " | ".join(c for c, _ in columns) + " |", "| ---: |" + " ---: |" * len(columns)]
    for size in doc.get("scale_sizes") or [doc["size"]]:
        label = "" if size == doc["size"] else f"@{size}"
        cells = [_fmt(figures.get(pattern.format(label))) or "—" for _, pattern in columns]
        out.append(f"| {size:,} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results" / "latest.json"
    doc = json.loads(path.read_text("utf-8"))
    print(render(doc))
    print(scale_table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
