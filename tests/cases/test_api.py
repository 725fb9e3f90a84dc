"""Cases over the JSON API: the month from the field, need-to-know on every route, redaction, audited reads."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from fastapi.routing import APIRoute
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.cases.models import Case, CaseTransition

API = "/api/v1"
CANARIES = {
    "full_name": "Canary Fullname 8128",
    "handle": "@canary_case_8128",
    "location": "Canary Street 8128",
    "family_situation": "Canary family 8128",
    "notes": "Canary notes 8128",
}


def _contact(client, headers, **extra):
    body = {
        "received_on": date.today().isoformat(),
        "channel": "signal",
        "region": "ingushetia",
        "language": "ru",
        "risk": "immediate",
        "needs": ["evacuation"],
        **extra,
    }
    response = client.post(f"{API}/contacts", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _open(client, headers, contact_id, **extra):
    response = client.post(f"{API}/cases", json={"contact_id": contact_id, **extra}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _move(client, headers, case_id, to, on):
    response = client.post(f"{API}/cases/{case_id}/transitions", json={"to": to, "on": on.isoformat()}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_month_from_the_field(client, factory, session):
    """80 people called, 50 cases were opened, 40 people escaped: the counts say exactly that."""
    worker, coordinator = factory.user("caseworker"), factory.user("coordinator")
    cw, co = factory.headers(worker), factory.headers(coordinator)
    first = (date.today().replace(day=1) - timedelta(days=1)).replace(day=1)  # the first of last month
    month_end = date.today().replace(day=1) - timedelta(days=1)
    contacts = [
        _contact(client, cw, received_on=(first + timedelta(days=i % 20)).isoformat(), handle=f"@demo_caller_{i}")
        for i in range(80)
    ]
    cases = [
        _open(client, cw, c["id"], opened_on=(first + timedelta(days=i % 20)).isoformat())
        for i, c in enumerate(contacts[:50])
    ]
    for i, case in enumerate(cases[:45]):
        day = first + timedelta(days=i % 20 + 1)
        _move(client, cw, case["id"], "verifying", day)
        if i < 40:
            assert (
                client.post(f"{API}/cases/{case['id']}/verify", json={"on": day.isoformat()}, headers=co).status_code
                == 200
            )
            for step in ("planning", "in_transit", "evacuated"):
                _move(client, cw, case["id"], step, min(day + timedelta(days=3), month_end))
    counts = {
        status: client.get(
            f"{API}/cases",
            params={"status": status, "opened_from": first.isoformat(), "opened_to": month_end.isoformat()},
            headers=co,
        ).json()["total"]
        for status in ("new", "verifying", "planning", "in_transit", "evacuated", "closed")
    }
    assert counts == {"new": 5, "verifying": 5, "planning": 0, "in_transit": 0, "evacuated": 40, "closed": 0}
    admin = factory.headers(factory.user("admin"))
    month = {"received_from": first.isoformat(), "received_to": month_end.isoformat()}
    assert client.get(f"{API}/contacts", params=month, headers=admin).json()["total"] == 80
    assert (
        client.get(f"{API}/contacts", params={**month, "outcome": "case_opened"}, headers=admin).json()["total"] == 50
    )
    assert session.scalar(select(func.count()).select_from(Case).where(Case.evacuated_on.is_not(None))) == 40


def _expected_routes():
    """Every contact and case route, with a valid body: a new route must be added here to pass."""
    return {
        ("POST", f"{API}/contacts"): "collection",
        ("GET", f"{API}/contacts"): "collection",
        ("GET", f"{API}/contacts/{{contact_id}}"): None,
        ("POST", f"{API}/contacts/{{contact_id}}/outcome"): {"outcome": "referred"},
        ("POST", f"{API}/contacts/{{contact_id}}/notes"): {"text": "B was here"},
        ("PATCH", f"{API}/contacts/{{contact_id}}"): {"alias": "B was here"},
        ("POST", f"{API}/cases"): "collection",
        ("GET", f"{API}/cases"): "collection",
        ("GET", f"{API}/cases/{{case_id}}"): None,
        ("POST", f"{API}/cases/{{case_id}}/transitions"): {"to": "verifying", "on": date.today().isoformat()},
        ("POST", f"{API}/cases/{{case_id}}/assign"): {"user": "__B__"},
        ("POST", f"{API}/cases/{{case_id}}/verify"): None,
        ("POST", f"{API}/cases/{{case_id}}/notes"): {"text": "B was here"},
        ("PATCH", f"{API}/cases/{{case_id}}"): {"location": "B was here"},
        ("POST", f"{API}/cases/{{case_id}}/verification-request"): None,
        ("POST", f"{API}/cases/{{case_id}}/consents"): {
            "partner": "Shelter",
            "given_on": date.today().isoformat(),
            "how": "spoken",
            "fields": ["region"],
        },
        ("GET", f"{API}/cases/{{case_id}}/consents"): None,
        ("POST", f"{API}/cases/{{case_id}}/consents/{{consent_id}}/withdraw"): None,
        ("POST", f"{API}/cases/{{case_id}}/referrals"): {
            "partner": "Shelter",
            "fields": ["region"],
            "consent_id": str(uuid.uuid4()),
        },
    }


def _walk(routes, prefix=""):
    """Every API route of the app, looking into included routers (FastAPI keeps them lazily)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route.methods
        elif hasattr(route, "original_router"):
            yield from _walk(route.original_router.routes, prefix + route.include_context.prefix)
        elif hasattr(route, "routes") and hasattr(route, "path"):
            yield from _walk(route.routes, prefix + route.path)


def test_caseworker_b_gets_404_for_a_s_contact_and_case_on_every_route(client, factory, session):
    a, b = factory.user("caseworker"), factory.user("caseworker")
    ha, hb = factory.headers(a), factory.headers(b)
    session.commit()
    contact = _contact(client, ha, alias="Canary Alias 8128")
    other_contact = _contact(client, ha)
    case = _open(client, ha, contact["id"], **CANARIES)
    routes = {
        (method, path)
        for path, methods in _walk(client.app.routes)
        if path.startswith((f"{API}/contacts", f"{API}/cases"))
        for method in methods
    }
    # The published document too, so a route hidden from either listing still cannot escape.
    for path, operations in client.app.openapi()["paths"].items():
        if path.startswith((f"{API}/contacts", f"{API}/cases")):
            routes |= {(method.upper(), path) for method in operations}
    expected = _expected_routes()
    assert routes == set(expected), "a contact/case route is not covered by this test"
    for (method, path), body in expected.items():
        if body == "collection":
            continue
        url = path.replace("{contact_id}", contact["id"]).replace("{case_id}", case["id"])
        url = url.replace("{consent_id}", str(uuid.uuid4()))
        if isinstance(body, dict) and body.get("user") == "__B__":
            body = {"user": b.username}
        response = client.request(method, url, json=body, headers=hb)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
        assert "8128" not in response.text
    # The collection routes: B's lists do not hold A's records, and B cannot open a case on A's contact.
    assert client.get(f"{API}/contacts", headers=hb).json()["total"] == 0
    assert client.get(f"{API}/cases", headers=hb).json()["total"] == 0
    refused = client.post(f"{API}/cases", json={"contact_id": other_contact["id"]}, headers=hb)
    assert refused.status_code == 404
    # And nothing B tried changed A's case.
    row = session.get(Case, uuid.UUID(case["id"]))
    assert (row.status, row.assigned_to_id, row.verified_by_id) == ("new", a.id, None)


def test_coordinator_case_view_has_no_decrypted_field(client, factory, session):
    worker, coordinator = factory.user("caseworker"), factory.user("coordinator")
    cw, co = factory.headers(worker), factory.headers(coordinator)
    contact = _contact(client, cw, alias="Canary Alias 8128", handle="@canary_contact_8128", notes="canary 8128")
    case = _open(client, cw, contact["id"], **CANARIES)
    client.post(
        f"{API}/cases/{case['id']}/transitions",
        json={"to": "verifying", "on": date.today().isoformat(), "note": "Canary transition note 8128"},
        headers=cw,
    )
    reads_before = session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "case.read"))
    view = client.get(f"{API}/cases/{case['id']}", headers=co)
    assert view.status_code == 200
    body = view.json()
    assert body["redacted"] is True and body["code"] == case["code"] and body["status"] == "verifying"
    assert [step["to_status"] for step in body["history"]] == ["new", "verifying"]
    assert "8128" not in view.text and "Canary" not in view.text and "canary" not in view.text
    listing = client.get(f"{API}/cases", headers=co)
    assert case["code"] in listing.text and "8128" not in listing.text
    after = session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "case.read"))
    assert after == reads_before  # nothing was decrypted, so nothing to audit as a read
    # The assigned caseworker does see it all, and the read is audited.
    full = client.get(f"{API}/cases/{case['id']}", headers=cw).json()
    assert full["redacted"] is False and full["full_name"] == CANARIES["full_name"]
    assert full["history"][1]["note"] == "Canary transition note 8128"
    reads = (
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "case.read", AuditEntry.target == case["code"])
    )
    assert session.scalar(reads) == 1
    client.get(f"{API}/cases/{case['id']}", headers=cw)
    assert session.scalar(reads) == 2


def test_analysts_and_admins_are_refused_on_cases(client, factory, session):
    worker = factory.user("caseworker")
    analyst, admin = factory.headers(factory.user("analyst")), factory.headers(factory.user("admin"))
    session.commit()
    case = _open(client, factory.headers(worker), _contact(client, factory.headers(worker))["id"], **CANARIES)
    for headers in (analyst, admin):
        assert client.get(f"{API}/cases", headers=headers).status_code == 403
        shown = client.get(f"{API}/cases/{case['id']}", headers=headers)
        assert shown.status_code == 403 and "8128" not in shown.text


def test_illegal_transition_is_409_listing_the_allowed_moves_and_changes_nothing(client, factory, session):
    worker = factory.user("caseworker")
    cw = factory.headers(worker)
    session.commit()
    case = _open(client, cw, _contact(client, cw)["id"])
    history = select(func.count()).select_from(CaseTransition).where(CaseTransition.case_id == uuid.UUID(case["id"]))
    audits = select(func.count()).select_from(AuditEntry)
    before = (session.scalar(history), session.scalar(audits))
    response = client.post(
        f"{API}/cases/{case['id']}/transitions", json={"to": "evacuated", "on": date.today().isoformat()}, headers=cw
    )
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert set(detail) == {"message", "allowed"}
    assert detail["allowed"] == ["verifying", "paused", "lost_contact", "declined", "rejected"]
    assert (session.scalar(history), session.scalar(audits)) == before
    future = client.post(
        f"{API}/cases/{case['id']}/transitions",
        json={"to": "verifying", "on": (date.today() + timedelta(days=1)).isoformat()},
        headers=cw,
    )
    assert future.status_code == 422 and future.json()["detail"][0]["loc"] == ["body", "on"]


def test_two_person_rule_over_the_api(client, factory, session):
    opener, second, coordinator = factory.user("caseworker"), factory.user("caseworker"), factory.user("coordinator")
    h1, h2, co = factory.headers(opener), factory.headers(second), factory.headers(coordinator)
    session.commit()
    case = _open(client, h1, _contact(client, h1)["id"])
    _move(client, h1, case["id"], "verifying", date.today())
    assert client.post(f"{API}/cases/{case['id']}/verify", headers=h1).status_code == 403
    blocked = client.post(
        f"{API}/cases/{case['id']}/transitions", json={"to": "planning", "on": date.today().isoformat()}, headers=h1
    )
    assert blocked.status_code == 409 and "planning" not in blocked.json()["detail"]["allowed"]
    assigned = client.post(f"{API}/cases/{case['id']}/assign", json={"user": second.username}, headers=co)
    assert assigned.status_code == 200 and assigned.json()["assigned_to"] == second.username
    bad = client.post(f"{API}/cases/{case['id']}/assign", json={"user": coordinator.username}, headers=co)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "user"]
    assert client.post(f"{API}/cases/{case['id']}/verify", headers=h2).status_code == 200
    assert _move(client, h2, case["id"], "planning", date.today())["status"] == "planning"
    # The opener, no longer assigned, no longer sees the case at all.
    assert client.get(f"{API}/cases/{case['id']}", headers=h1).status_code == 404


def test_case_lists_are_paginated_and_filtered(client, factory, session):
    worker, coordinator = factory.user("caseworker"), factory.user("coordinator")
    cw, co = factory.headers(worker), factory.headers(coordinator)
    old = date.today() - timedelta(days=50)
    for i in range(4):
        contact = _contact(client, cw, received_on=old.isoformat(), region="moscow" if i % 2 else "dagestan")
        _open(client, cw, contact["id"], opened_on=(old if i == 0 else date.today()).isoformat())
    page = client.get(f"{API}/cases", params={"limit": 3, "offset": 2}, headers=co).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (4, 3, 2, 2)
    assert client.get(f"{API}/cases", params={"region": "moscow"}, headers=co).json()["total"] == 2
    assert client.get(f"{API}/cases", params={"opened_to": old.isoformat()}, headers=co).json()["total"] == 1
    assert client.get(f"{API}/cases", params={"status": "new"}, headers=cw).json()["total"] == 4
    assert client.get(f"{API}/cases", params={"status": "no-such-status"}, headers=co).status_code == 422


def test_invalid_case_input_is_422_naming_the_field_and_writes_nothing(client, factory, session):
    worker = factory.user("caseworker")
    cw = factory.headers(worker)
    session.commit()
    contact = _contact(client, cw)
    cases = select(func.count()).select_from(Case)
    before = (session.scalar(cases), session.scalar(select(func.count()).select_from(AuditEntry)))
    tries = [
        ({"contact_id": contact["id"], "notes": "N" * 1_000_000}, "notes"),
        ({"contact_id": contact["id"], "full_name": 42}, "full_name"),
        ({"contact_id": "not-a-uuid"}, "contact_id"),
        ({"contact_id": contact["id"], "opened_on": (date.today() + timedelta(days=2)).isoformat()}, "opened_on"),
        ({"contact_id": contact["id"], "status": "evacuated"}, "status"),
    ]
    for body, field in tries:
        response = client.post(f"{API}/cases", json=body, headers=cw)
        assert response.status_code == 422, (field, response.text)
        assert field in [err["loc"][-1] for err in response.json()["detail"]]
        assert "NNNN" not in response.text and "not-a-uuid" not in response.text
    assert (session.scalar(cases), session.scalar(select(func.count()).select_from(AuditEntry))) == before
    case = _open(client, cw, contact["id"])
    for body, field in (
        ({"to": "flying", "on": date.today().isoformat()}, "to"),
        ({"to": "verifying", "on": 20260101}, "on"),
        ({"to": "verifying", "on": date.today().isoformat(), "note": "N" * 20_001}, "note"),
    ):
        response = client.post(f"{API}/cases/{case['id']}/transitions", json=body, headers=cw)
        assert response.status_code == 422 and field in [e["loc"][-1] for e in response.json()["detail"]]
    assert session.get(Case, uuid.UUID(case["id"])).status == "new"


def test_filters_with_odd_characters_are_422_not_500(client, factory, session):
    co = factory.headers(factory.user("coordinator"))
    cw = factory.headers(factory.user("caseworker"))
    session.commit()
    assert client.get(f"{API}/cases", params={"region": "moscow\x00"}, headers=co).status_code == 422
    assert client.get(f"{API}/contacts", params={"region": "a' OR 1=1"}, headers=cw).status_code == 422
    assert client.get(f"{API}/cases", params={"region": "moscow"}, headers=co).status_code == 200


def test_openapi_declares_the_error_answers(client):
    paths = client.get(f"{API}/openapi.json").json()["paths"]
    transition = paths[f"{API}/cases/{{case_id}}/transitions"]["post"]
    assert {"200", "401", "403", "404", "409", "422"} <= set(transition["responses"])
    created = paths[f"{API}/contacts"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert created["$ref"].endswith("/ContactSummary")
