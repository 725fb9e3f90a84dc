"""Figures, targets and the table they are printed in."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass
class Figure:
    """One measured number, with its unit, an optional target (``">= 1000"``) and floor."""

    name: str
    value: float
    unit: str
    target: str | None = None
    floor: float | None = None
    note: str | None = None
    passed: bool | None = None

    def __post_init__(self) -> None:
        self.value = float(self.value)
        if self.floor is not None:
            self.floor = float(self.floor)
        if self.target is not None:
            op, _, bound = self.target.partition(" ")
            self.passed = bool(_COMPARE[op](self.value, float(bound))) if math.isfinite(self.value) else False


@dataclass
class Outcome:
    """What one benchmark produced: figures, or the reason it could not run."""

    name: str
    status: str = "ok"  # ok | unavailable | error
    reason: str | None = None
    seconds: float = 0.0
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        figure = Figure(*args, **kwargs)
        self.figures.append(figure)
        return figure

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["figures"] = [asdict(f) for f in self.figures]
        return doc


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(outcomes: list[Outcome]) -> str:
    """A plain-text table: benchmark, figure, value, unit, floor, target, verdict."""
    rows = [("benchmark", "figure", "value", "unit", "floor", "target", "")]
    for outcome in outcomes:
        if outcome.status != "ok":
            rows.append((outcome.name, f"[{outcome.status}] {outcome.reason or ''}"[:90], "", "", "", "", ""))
            continue
        for f in outcome.figures:
            verdict = "" if f.passed is None else ("PASS" if f.passed else "MISS")
            rows.append((outcome.name, f.name, _fmt(f.value), f.unit, _fmt(f.floor), f.target or "", verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.ljust(widths[j]) if j in (0, 1, 3, 5) else cell.rjust(widths[j]) for j, cell in enumerate(row)
            ).rstrip()
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
