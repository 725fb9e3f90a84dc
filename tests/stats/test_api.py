"""The summary endpoint: the field month's totals, roles, and the stored noisy release."""

from __future__ import annotations

import pytest

from tests.stats.conftest import build_field_month

MARCH = {"from": "2026-03-01", "to": "2026-03-31", "interval": "month"}


def test_the_field_month_gives_exactly_its_totals(client, factory) -> None:
    expected = build_field_month(factory)
    headers = factory.headers(factory.user("coordinator"))
    response = client.get("/api/v1/stats/summary", params=MARCH, headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert {key: body["totals"][key] for key in expected} == expected
    assert [row["period"] for row in body["series"]] == ["2026-03"]
    assert {key: body["series"][0][key] for key in expected} == expected
    assert body["k"] == 5
    assert body["from"] == "2026-03-01" and body["to"] == "2026-03-31"
    assert body["funnel"]["escape_rate"] == pytest.approx(40 / 80)
    assert body["median_days_to_evacuation"] is not None


@pytest.mark.parametrize("role, status", [("caseworker", 403), ("coordinator", 200), ("analyst", 200), ("admin", 200)])
def test_who_may_read_the_summary(client, factory, role, status) -> None:
    response = client.get("/api/v1/stats/summary", params=MARCH, headers=factory.headers(factory.user(role)))
    assert response.status_code == status


def test_without_a_token_the_summary_is_refused(client) -> None:
    assert client.get("/api/v1/stats/summary", params=MARCH).status_code == 401


def test_noise_is_integer_states_epsilon_and_repeats(client, factory, settings) -> None:
    build_field_month(factory)
    headers = factory.headers(factory.user("analyst"))
    params = {**MARCH, "noise": "true"}
    first = client.get("/api/v1/stats/summary", params=params, headers=headers)
    assert first.status_code == 200
    body = first.json()
    assert body["dp"]["epsilon"] == settings.dp_epsilon
    counts = [v for row in body["series"] for k, v in row.items() if k not in ("period", "start", "end")]
    counts += [v for v in body["totals"].values()]
    counts += [v for table in body["by_region"].values() for v in table.values()]
    assert counts and all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in counts)
    assert all(v is None or v == 0 or v >= body["k"] for v in counts)
    again = client.get("/api/v1/stats/summary", params=params, headers=headers)
    assert again.json() == body


def test_noise_only_for_whole_past_periods(client, factory) -> None:
    headers = factory.headers(factory.user("analyst"))
    response = client.get("/api/v1/stats/summary", params={"interval": "month", "noise": "true"}, headers=headers)
    assert response.status_code == 200
    body = response.json()
    # The current month has not ended, so it is not in a noisy release.
    from datetime import date

    assert date.fromisoformat(body["to"]) < date.today().replace(day=1)


def test_bad_interval_is_422(client, factory) -> None:
    headers = factory.headers(factory.user("analyst"))
    response = client.get("/api/v1/stats/summary", params={"interval": "day"}, headers=headers)
    assert response.status_code == 422
