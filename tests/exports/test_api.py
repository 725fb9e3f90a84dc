"""The exports through the API: who may export, what never leaves, k-anonymity and suppression, audit."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.cases.models import Case
from app.contacts.models import Contact
from app.stats import ledger

K = 5
ENDPOINTS = ("/api/v1/exports/aggregate.csv", "/api/v1/exports/aggregate.json", "/api/v1/exports/records.csv")
CANARY = "Canary-7Q9Z-Xhwx"


def _canary_data(factory) -> None:
    worker = factory.user("caseworker")
    coordinator = factory.user("coordinator")
    start = date(2026, 5, 4)
    for i in range(12):
        contact = factory.contact(
            worker,
            received_on=start + timedelta(days=i),
            alias=f"{CANARY}-alias-{i}",
            handle=f"@{CANARY}handle{i}",
            notes=f"{CANARY} notes {i}",
        )
        if i < 8:
            factory.case(
                worker,
                contact_id=contact.id,
                status="evacuated" if i < 6 else "planning",
                opened_on=contact.received_on,
                on=contact.received_on + timedelta(days=2),
                verifier=coordinator,
                full_name=f"{CANARY} name {i}",
                handle=f"@{CANARY}case{i}",
                location=f"{CANARY} location {i}",
                family_situation=f"{CANARY} family {i}",
                notes=f"{CANARY} case notes {i}",
            )


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("role, status", [("caseworker", 403), ("coordinator", 403), ("analyst", 200), ("admin", 200)])
def test_only_analysts_and_admins_export(export_client, factory, path, role, status) -> None:
    response = export_client.get(path, headers=factory.headers(factory.user(role)))
    assert response.status_code == status


def test_no_export_holds_a_canary_or_a_record_code(export_client, factory, session) -> None:
    _canary_data(factory)
    ledger.release_month(session, month=date(2026, 5, 1), actor="t")  # the file covers released months
    codes = session.execute(select(Contact.code)).scalars().all() + session.execute(select(Case.code)).scalars().all()
    assert len(codes) == 20
    headers = factory.headers(factory.user("analyst"))
    for path in ENDPOINTS:
        body = export_client.get(path, headers=headers).content
        assert body, path
        assert CANARY.encode() not in body and CANARY.lower().encode() not in body.lower()
        for code in codes:
            assert code.encode() not in body, (path, code)
    records = export_client.get(ENDPOINTS[2], headers=headers).text
    head = dict(line[2:].split(": ", 1) for line in records.splitlines() if line.startswith("# ") and ": " in line)
    # Six evacuated rows form one group. The two open cases and four case-less contacts cannot share a
    # blanked status (May's released cases opened would tell the two from the four): they are dropped,
    # six together, so the released month less the file's rows says nothing small.
    assert int(head["rows"]) == 6 and head["dropped_rows"].startswith("6 ")
    assert head["suppressed_values"].startswith("0 ") and head["periods"].startswith("2026-05 ")


def _records(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    lines = text.splitlines()
    header = dict(line[2:].split(": ", 1) for line in lines if line.startswith("# ") and ": " in line)
    return header, list(csv.DictReader(line for line in lines if not line.startswith("#")))


def test_records_are_k_anonymous_and_the_dropped_count_is_right(export_client, factory, session) -> None:
    worker = factory.user("caseworker")
    groups = [
        (6, date(2026, 1, 5), "chechnya", "phone", "high"),
        (3, date(2026, 1, 9), "dagestan", "phone", "high"),
        (5, date(2026, 2, 3), "abroad", "signal", "medium"),
        (2, date(2026, 2, 10), "moscow", "telegram", "low"),
        (4, date(2026, 4, 10), "moscow", "telegram", "low"),
        (1, date(2025, 4, 10), "unknown", "email", "immediate"),  # alone in its year whatever is blanked
    ]
    for n, day, region, channel, risk in groups:
        for _ in range(n):
            factory.contact(worker, received_on=day, region=region, channel=channel, risk=risk)
    for month in (date(2025, 4, 1), date(2026, 1, 1), date(2026, 2, 1), date(2026, 4, 1)):
        ledger.release_month(session, month=month, actor="t")
    response = export_client.get(ENDPOINTS[2], headers=factory.headers(factory.user("analyst")))
    assert response.status_code == 200
    header, rows = _records(response.text)
    assert int(header["rows"]) == len(rows)
    # Released months only; a period whose released total is hidden is left out: April 2025's one contact
    # and April 2026's four (the releases hide both months' totals, the file must not give them).
    assert int(header["rows"]) + int(header["dropped_rows"].split()[0]) == 16
    assert not [row for row in rows if row["period"].startswith("2025")]  # the lone 2025 contact is left out
    assert "2025" not in header["periods"].split(" (")[0]
    assert 0 <= float(header["information_loss"].split()[0]) <= 1
    combos: dict[tuple[str, ...], int] = {}
    for row in rows:
        key = (row["period"], row["region"], row["channel"], row["risk"], row["case_status"])
        combos[key] = combos.get(key, 0) + 1
    assert combos and min(combos.values()) >= K
    assert sum(v.count("*") for row in rows for v in row.values()) == int(header["suppressed_values"].split()[0])
    assert all(sum(v == "*" for v in row.values()) <= 1 for row in rows)
    assert len({row["row_id"] for row in rows}) == len(rows)
    assert set(rows[0]) == {"row_id", "period", "region", "channel", "risk", "case_status"}


def _count_cells_csv(text: str) -> list[int]:
    """Every integer cell of the report's tables (the header block and the release list excluded)."""
    found = []
    for row in csv.reader(io.StringIO(text.split("\n\n", 1)[1])):
        if row and row[0] in ("by_region", "open_at_end"):
            found += [int(cell) for cell in row[3:] if cell.isdigit()]
    return found


def test_no_aggregate_cell_is_a_small_count(export_client, factory, session) -> None:
    from app.stats import ledger
    from tests.stats.conftest import build_field_month

    build_field_month(factory)
    worker = factory.user("caseworker")
    for region in ("ingushetia", "ingushetia", "abroad"):
        factory.contact(worker, received_on=date(2026, 4, 15), region=region, channel="email")
    march = ledger.release_month(session, month=date(2026, 3, 1), actor="t")[0]
    ledger.release_month(session, month=date(2026, 4, 1), actor="t")
    headers = factory.headers(factory.user("analyst"))
    params = {"from": "2026-03-01", "to": "2026-04-30"}
    text = export_client.get(ENDPOINTS[0], params=params, headers=headers).text
    assert "period_from,2026-03-01" in text and "period_to,2026-04-30" in text and "noise,no" in text
    assert f"k,{K}" in text and "generated_on," in text
    assert f"release,2026-03,month,{march.id}," in text
    counts = _count_cells_csv(text)
    assert 80 in counts and 40 in counts
    assert not [c for c in counts if 0 < c < K]
    assert f"<{K}" in text  # the small April cells were there, and were withheld
    doc = json.loads(export_client.get(ENDPOINTS[1], params=params, headers=headers).text)
    assert doc["k"] == K and doc["noise"] is False and doc["epsilon"] is None
    assert [r["period"] for r in doc["releases"]] == ["2026-03", "2026-04"]
    figures = [v for r in doc["releases"] for t in r["tables"].values() for v in [*t["cells"].values(), t["total"]]]
    assert None in figures and 80 in figures
    assert not [v for v in figures if v is not None and 0 < v < K]
    one = export_client.get(ENDPOINTS[0], params={"period": "2026-04"}, headers=headers).text
    assert "by_region,2026-04," in one and "by_region,2026-03," not in one


def test_the_aggregate_report_is_the_ledger_by_default(export_client, factory) -> None:
    from tests.stats.conftest import build_field_month

    build_field_month(factory)
    text = export_client.get(ENDPOINTS[0], headers=factory.headers(factory.user("admin"))).text
    head = dict(row[:2] for row in csv.reader(io.StringIO(text.split("\n\n", 1)[0])))
    # Nobody released March: it is not in the report; last month, frozen on first use, is.
    last = date.fromisoformat(head["period_to"])
    assert last < date.today().replace(day=1) and (last + timedelta(days=1)).day == 1
    assert "by_region,2026-03," not in text


def test_every_export_is_audited_with_its_row_count(export_client, factory, session) -> None:
    worker = factory.user("caseworker")
    for _ in range(7):
        factory.contact(worker, received_on=date(2026, 6, 2))
    ledger.release_month(session, month=date(2026, 6, 1), actor="t")
    analyst = factory.user("analyst")
    assert export_client.get(ENDPOINTS[2], headers=factory.headers(analyst)).status_code == 200
    entry = (
        session.execute(select(AuditEntry).where(AuditEntry.action == "export.records").order_by(AuditEntry.seq.desc()))
        .scalars()
        .first()
    )
    assert entry is not None and entry.actor == analyst.username
    detail = json.loads(entry.detail)
    assert detail["rows"] == 7 and detail["complete"] is True and detail["k"] == K
