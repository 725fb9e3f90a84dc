"""A 200,000-row record-level export through the API keeps the server's memory flat."""

from __future__ import annotations

import gc
import uuid
from datetime import date, timedelta

import psutil
import pytest
from sqlalchemy import insert

from app.contacts.models import Contact
from app.stats import counters, ledger

ROWS = 200_000
REGIONS = ("chechnya", "dagestan", "ingushetia", "moscow", "abroad", "unknown")
CHANNELS = ("phone", "telegram", "signal", "whatsapp")
RISKS = ("low", "medium", "high", "immediate")


def _bulk_contacts(session, user_id) -> None:
    """Contacts straight into the table (no sealed fields): fast enough for a memory test, not a model of intake."""
    start = date(2024, 1, 1)
    batch = []
    for i in range(ROWS):
        day = start + timedelta(days=i % 700)
        batch.append(
            {
                "id": uuid.uuid4(),
                "code": f"B-{i:09d}",
                "received_on": day,
                "channel": CHANNELS[i % 4],
                "region": REGIONS[i % 6],
                "language": "ru",
                "risk": RISKS[(i // 7) % 4],
                "needs": "",
                "possible_duplicate": False,
                "flagged_handle": False,
                "recorded_by_id": user_id,
                "last_activity_on": day,
            }
        )
        if len(batch) == 20_000:
            session.execute(insert(Contact.__table__), batch)
            batch = []
    if batch:
        session.execute(insert(Contact.__table__), batch)


@pytest.mark.slow
def test_a_200k_row_export_streams_in_bounded_memory(export_client, factory, session) -> None:
    _bulk_contacts(session, factory.user("caseworker").id)
    counters.rebuild_counters(session)
    month = date(2024, 1, 1)
    while month < date(2025, 12, 1):  # the file covers released months: release every one of the data
        ledger.release_month(session, month=month, actor="t")
        month = counters.next_period(counters.MONTH, month)
    headers = factory.headers(factory.user("analyst"))
    gc.collect()
    process = psutil.Process()
    baseline = peak = process.memory_info().rss
    rows = 0
    with export_client.stream("GET", "/api/v1/exports/records.csv", headers=headers) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            rows += chunk.count(b"\n")
            peak = max(peak, process.memory_info().rss)
    header_lines = 11
    assert rows - header_lines == ROWS  # every row fits a group of k or more in this data set
    growth_mb = (peak - baseline) / 2**20
    assert growth_mb < 150, f"peak RSS grew by {growth_mb:.0f} MB"
