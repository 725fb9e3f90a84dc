"""What the statistics summary publishes. ``None`` is a suppressed figure; ``suppressed`` names each one."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Interval = Literal["week", "month"]

# The per-period measures, in the order a table shows them.
MEASURES: tuple[str, ...] = (
    "contacts",
    "cases_opened",
    "evacuated",
    "resettled",
    "flagged",
    "suspected_infiltration",
)


class Counts(BaseModel):
    contacts: int | None
    cases_opened: int | None
    evacuated: int | None
    resettled: int | None
    flagged: int | None
    suspected_infiltration: int | None


class PeriodCounts(Counts):
    period: str = Field(description="2026-03 for a month, 2026-W10 for an ISO week")
    start: date
    end: date = Field(description="the period's last day")


class Funnel(BaseModel):
    contacts: int | None
    cases_opened: int | None
    evacuated: int | None
    case_rate: float | None = Field(description="cases opened per contact")
    escape_rate: float | None = Field(description="escapes per contact")
    escape_rate_of_cases: float | None = Field(description="escapes per case opened")


class DpInfo(BaseModel):
    epsilon: float = Field(description="privacy loss of each noisy table")
    per: Literal["table"] = "table"
    tables: list[str]
    mechanism: str = "discrete Laplace (OpenDP), counts clamped at zero, threshold applied after noise"
    released_on: date


class Summary(BaseModel):
    """A disclosure-controlled summary over whole periods of a fixed grid."""

    model_config = ConfigDict(populate_by_name=True)

    interval: Interval
    from_: date = Field(alias="from", description="first day of the first period (snapped outward)")
    to: date = Field(description="last day of the last period")
    k: int
    totals: Counts
    series: list[PeriodCounts]
    by_region: dict[str, dict[str, int | None]] = Field(description="measure -> region -> count over the range")
    by_channel: dict[str, dict[str, int | None]]
    by_risk: dict[str, dict[str, int | None]]
    open_by_status: dict[str, int | None] = Field(description="cases not closed, declined or rejected at `to`")
    open_cases: int | None
    funnel: Funnel
    median_days_to_evacuation: float | None
    p90_days_to_evacuation: float | None
    suppressed: list[str]
    dp: DpInfo | None = None

    def is_suppressed(self, name: str) -> bool:
        """For templates: whether the figure called ``name`` (e.g. ``series[3].evacuated``) is hidden."""
        return name in self._suppressed_set()

    def _suppressed_set(self) -> frozenset[str]:
        return frozenset(self.suppressed)
