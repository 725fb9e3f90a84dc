"""What the statistics answers hold. In the published view ``None`` is a suppressed figure, named in
``suppressed``; the operational view is exact and its ``suppressed`` is empty."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Interval = Literal["day", "week", "month"]

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


class ReleaseRef(BaseModel):
    """Which frozen release a published figure comes from."""

    id: uuid.UUID
    period: str
    created_at: datetime


class PeriodCounts(Counts):
    period: str = Field(description="2026-03 for a month, 2026-W10 for an ISO week, 2026-03-05 for a day")
    start: date
    end: date = Field(description="the period's last day")
    partial: bool = Field(default=False, description="the period has not ended yet: not comparable with full ones")
    release: ReleaseRef | None = Field(default=None, description="published view: the release these figures are from")


class Funnel(BaseModel):
    contacts: int | None
    cases_opened: int | None
    evacuated: int | None
    case_rate: float | None = Field(description="cases opened per contact")
    escape_rate: float | None = Field(description="escapes per contact")
    escape_rate_of_cases: float | None = Field(description="escapes per case opened")


class DpInfo(BaseModel):
    epsilon: float = Field(description="privacy loss of the release, shared equally by its noisy tables")
    tables: list[str]
    mechanism: str = "discrete Laplace (OpenDP), counts clamped at zero, threshold applied after noise"


class Summary(BaseModel):
    """A summary over whole periods of a fixed grid."""

    model_config = ConfigDict(populate_by_name=True)

    interval: Interval
    from_: date = Field(alias="from", description="first day of the first period (snapped outward)")
    to: date = Field(description="last day of the last period")
    k: int
    view: Literal["operational", "published"] = Field(
        description="operational: exact, for coordinators and admins; published: from the release ledger"
    )
    totals: Counts
    series: list[PeriodCounts]
    by_region: dict[str, dict[str, int | None]] = Field(description="measure -> region -> count over the range")
    by_channel: dict[str, dict[str, int | None]] | None = Field(
        description="measure -> channel -> count; null in the published view (not released, see not_published)"
    )
    by_risk: dict[str, dict[str, int | None]] | None = Field(
        description="measure -> risk -> count; null in the published view (not released, see not_published)"
    )
    open_by_status: dict[str, int | None] = Field(description="open cases by status at the end of the range")
    open_cases: int | None
    funnel: Funnel
    median_days_to_evacuation: float | None
    p90_days_to_evacuation: float | None
    suppressed: list[str]
    not_published: dict[str, str] = Field(
        default_factory=dict,
        description="published view: figures that are never released (null above, not suppressed), with why",
    )
    releases: list[ReleaseRef] = Field(default_factory=list, description="published view: the releases used")
    dp: DpInfo | None = None

    def is_suppressed(self, name: str) -> bool:
        """For templates: whether the figure called ``name`` (e.g. ``series[3].evacuated``) is hidden."""
        return name in frozenset(self.suppressed)


class ReleaseTable(BaseModel):
    cells: dict[str, int | None] = Field(description="region (or status) -> count; null = suppressed")
    total: int | None


class Release(BaseModel):
    """One frozen release: its figures never change once written."""

    id: uuid.UUID
    period: str = Field(description="2026-03, 2026-Q1 or 2026")
    kind: Literal["month", "quarter", "year"]
    first_day: date
    last_day: date
    created_at: datetime
    k: int
    tables: dict[str, ReleaseTable] = Field(description="measure -> its cells by region and total")
    open_at_end: ReleaseTable | None = Field(description="open cases by status on the month's last day")
    suppressed: list[str]
    dp: DpInfo | None = None


class ReleaseListItem(BaseModel):
    id: uuid.UUID
    period: str
    kind: Literal["month", "quarter", "year"]
    first_day: date
    last_day: date
    created_at: datetime
    epsilon: float | None
