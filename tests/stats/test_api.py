"""The statistics API: exact for coordinators and admins, the ledger only for analysts, releases for all three."""

from __future__ import annotations

from datetime import date

import pytest

from app.stats import ledger
from tests.stats.conftest import build_field_month

MARCH = {"from": "2026-03-01", "to": "2026-03-31", "interval": "month"}


@pytest.mark.parametrize("role", ["coordinator", "admin"])
def test_the_operational_view_is_exact_with_nothing_suppressed(client, factory, role) -> None:
    expected = build_field_month(factory)
    worker = factory.user("caseworker")
    factory.contact(worker, received_on=date(2026, 3, 25), region="abroad")  # a count of one, shown as one
    response = client.get("/api/v1/stats/summary", params=MARCH, headers=factory.headers(factory.user(role)))
    assert response.status_code == 200
    body = response.json()
    assert body["view"] == "operational" and body["suppressed"] == []
    assert body["totals"]["contacts"] == expected["contacts"] + 1
    assert body["totals"]["evacuated"] == expected["evacuated"]
    assert body["by_region"]["contacts"]["abroad"] == 1
    assert body["from"] == "2026-03-01" and body["to"] == "2026-03-31"
    days = client.get(
        "/api/v1/stats/summary", params={**MARCH, "interval": "day"}, headers=factory.headers(factory.user(role))
    ).json()
    assert len(days["series"]) == 31 and sum(p["contacts"] for p in days["series"]) == 81


def test_analysts_get_released_months_only_with_the_release_named(client, factory, session) -> None:
    build_field_month(factory)
    [row] = ledger.release_month(session, month=date(2026, 3, 1), actor="t")
    headers = factory.headers(factory.user("analyst"))
    body = client.get("/api/v1/stats/summary", params=MARCH, headers=headers).json()
    assert body["view"] == "published"
    assert body["totals"]["contacts"] == 80 and body["totals"]["evacuated"] == 40
    [march] = body["series"]
    assert march["release"]["id"] == str(row.id) and march["release"]["period"] == "2026-03"
    assert march["release"]["created_at"]
    assert body["releases"][0]["id"] == str(row.id)
    for interval in ("week", "day"):
        refused = client.get("/api/v1/stats/summary", params={**MARCH, "interval": interval}, headers=headers)
        assert refused.status_code == 422 and "detail" in refused.json()
    # A month that was never released is not there to be read, even though it has contacts.
    factory.contact(factory.user("caseworker"), received_on=date(2026, 4, 2))
    april = client.get("/api/v1/stats/summary", params={"from": "2026-04-01", "to": "2026-04-30"}, headers=headers)
    assert april.status_code == 422


def test_releases_are_listed_and_read_by_period(client, factory, session) -> None:
    build_field_month(factory)
    ledger.release_month(session, month=date(2026, 3, 1), actor="t")
    headers = factory.headers(factory.user("analyst"))
    listed = client.get("/api/v1/stats/releases", headers=headers).json()
    assert "2026-03" in [r["period"] for r in listed]
    one = client.get("/api/v1/stats/releases/2026-03", headers=headers).json()
    assert one["tables"]["contacts"]["total"] == 80 and one["kind"] == "month" and one["k"] == 5
    assert client.get("/api/v1/stats/releases/2019-01", headers=headers).status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/stats/releases", "/api/v1/stats/summary?interval=month"])
@pytest.mark.parametrize("role, status", [("caseworker", 403), ("coordinator", 200), ("analyst", 200), ("admin", 200)])
def test_who_may_read_statistics(client, factory, path, role, status) -> None:
    # Last month is released on first use, so the analyst's default summary has a month to show.
    assert client.get(path, headers=factory.headers(factory.user(role))).status_code == status


def test_without_a_token_statistics_are_refused(client) -> None:
    assert client.get("/api/v1/stats/summary", params=MARCH).status_code == 401
    assert client.get("/api/v1/stats/releases").status_code == 401


def test_a_bad_interval_is_422(client, factory) -> None:
    headers = factory.headers(factory.user("coordinator"))
    response = client.get("/api/v1/stats/summary", params={"interval": "year"}, headers=headers)
    assert response.status_code == 422


def test_what_releases_do_not_hold_is_null_with_the_reason_and_every_figure_names_its_release(
    client, factory, session
) -> None:
    for month in (1, 2, 3):
        build_field_month(factory, month=date(2026, month, 1))
    for month in (1, 2, 3):
        ledger.release_month(session, month=date(2026, month, 1), actor="t")
    quarter = {"from": "2026-01-01", "to": "2026-03-31"}
    analyst = factory.headers(factory.user("analyst"))
    body = client.get("/api/v1/stats/summary", params=quarter, headers=analyst).json()
    listed = {r["period"]: r for r in client.get("/api/v1/stats/releases", headers=analyst).json()}
    # Channel, risk, durations and known-bad alerts are no part of a release: null, and said why; not
    # "suppressed" (nothing was hidden) and not an empty table that reads like "no contacts".
    assert body["by_channel"] is None and body["by_risk"] is None
    assert body["median_days_to_evacuation"] is None and body["p90_days_to_evacuation"] is None
    assert body["totals"]["flagged"] is None and body["series"][0]["suspected_infiltration"] is None
    for name in ("by_channel", "by_risk", "median_days_to_evacuation", "flagged", "suspected_infiltration"):
        assert "not released" in body["not_published"][name]
    assert not [s for s in body["suppressed"] if "flagged" in s or "infiltration" in s]
    # Each month's figures name their release as listed; the by-region table is the quarter's own.
    for point in body["series"]:
        ref = point["release"]
        assert {k: listed[ref["period"]][k] for k in ("id", "created_at")} == {
            "id": ref["id"],
            "created_at": ref["created_at"],
        }
    assert [r["period"] for r in body["releases"]] == ["2026-01", "2026-02", "2026-03", "2026-Q1"]
    assert body["releases"][-1]["id"] == listed["2026-Q1"]["id"]
    assert body["by_region"]["contacts"] == {
        r: v
        for r, v in client.get("/api/v1/stats/releases/2026-Q1", headers=analyst)
        .json()["tables"]["contacts"]["cells"]
        .items()
    }
    # The coordinators' exact view holds them all.
    exact = client.get(
        "/api/v1/stats/summary", params=quarter, headers=factory.headers(factory.user("coordinator"))
    ).json()
    assert exact["not_published"] == {} and exact["by_channel"]["contacts"]["phone"] == 60
    assert exact["median_days_to_evacuation"] is not None
