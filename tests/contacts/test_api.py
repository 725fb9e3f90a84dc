"""Contacts over the JSON API: intake answers, validation that writes nothing, need-to-know, the known-bad list."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, text

from app.audit.models import AuditEntry
from app.contacts.models import Contact, FlaggedHandle
from app.crypto.models import BlindIndexEntry, DataKey

VALID = {
    "received_on": date.today().isoformat(),
    "channel": "telegram",
    "region": "chechnya",
    "language": "ru",
    "risk": "high",
    "needs": ["evacuation", "legal"],
}


def _counts(session):
    return tuple(
        session.scalar(select(func.count()).select_from(model))
        for model in (Contact, DataKey, BlindIndexEntry, AuditEntry)
    )


def test_intake_answers_201_with_code_and_flags(client, factory):
    worker = factory.user("caseworker")
    response = client.post("/api/v1/contacts", json={**VALID, "handle": "@caller_1"}, headers=factory.headers(worker))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["code"].startswith("H-")
    assert body["possible_duplicate"] is False and body["flagged_handle"] is False
    assert body["needs"] == ["evacuation", "legal"]
    assert "@caller_1" not in response.text


def test_the_same_phone_written_differently_is_a_possible_duplicate(client, factory):
    headers = factory.headers(factory.user("caseworker"))
    answers = [
        client.post("/api/v1/contacts", json={**VALID, "channel": "phone", "handle": handle}, headers=headers).json()
        for handle in ("+7 912 345-67-89", "89123456789", "+7 912 345-67-88")
    ]
    assert [a["possible_duplicate"] for a in answers] == [False, True, False]


def test_a_known_bad_handle_is_flagged_and_its_table_holds_no_plaintext(client, factory, session):
    coordinator = factory.user("coordinator")
    added = client.post(
        "/api/v1/flagged-handles",
        json={"handle": "@Trap_Account_4242", "reason": "used in the March raids"},
        headers=factory.headers(coordinator),
    )
    assert added.status_code == 201, added.text
    assert "4242" not in added.text
    worker = factory.user("caseworker")
    hit = client.post(
        "/api/v1/contacts", json={**VALID, "handle": "trap_account_4242"}, headers=factory.headers(worker)
    )
    assert hit.json()["flagged_handle"] is True
    audit = session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "contact.flagged_handle", AuditEntry.target == hit.json()["code"])
    )
    assert audit == 1
    # Every byte of every row of the list's table, read raw: no form of the handle or the reason.
    rows = session.execute(text("SELECT * FROM flagged_handle")).all()
    assert len(rows) == 1
    raw = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in rows[0])
    for needle in (b"Trap_Account", b"trap_account", b"4242", b"raids"):
        assert needle not in raw
    listed = client.get("/api/v1/flagged-handles", headers=factory.headers(coordinator))
    assert listed.status_code == 200
    assert listed.json()["items"][0]["reason"] == "used in the March raids"
    assert "4242" not in listed.text and "Trap" not in listed.text
    assert client.get("/api/v1/flagged-handles", headers=factory.headers(worker)).status_code == 403
    removed = client.delete(f"/api/v1/flagged-handles/{added.json()['id']}", headers=factory.headers(coordinator))
    assert removed.status_code == 204
    assert session.scalar(select(func.count()).select_from(FlaggedHandle)) == 0


INVALID = [
    ("region", {"region": "atlantis-unknown-region"}, "atlantis-unknown-region"),
    ("channel", {"channel": "carrier-pigeon"}, "carrier-pigeon"),
    ("received_on", {"received_on": (date.today() + timedelta(days=1)).isoformat()}, None),
    ("notes", {"notes": "N" * 1_000_000}, "N" * 1000),
    ("received_on", {"received_on": 1700000000}, "1700000000"),
    ("needs", {"needs": "evacuation-as-a-string"}, "evacuation-as-a-string"),
    ("risk", {"risk": 7}, None),
    ("language", {"language": "not a language code!"}, "not a language code!"),
    ("alias", {"alias": "A" * 201}, "A" * 201),
    ("surprise", {"surprise": "extra-field-value"}, "extra-field-value"),
    # No letter or digit: written the usual way it is nothing, and every such handle would be "the same caller".
    ("handle", {"handle": "@ + -"}, "@ + -"),
]


@pytest.mark.parametrize(("field", "change", "echo"), INVALID, ids=[f"{c[0]}-{i}" for i, c in enumerate(INVALID)])
def test_invalid_input_is_422_naming_the_field_without_echo_and_writes_nothing(
    client, factory, session, field, change, echo
):
    headers = factory.headers(factory.user("caseworker"))
    session.commit()  # a refused request rolls back to here: the set-up must not count as "written"
    before = _counts(session)
    response = client.post("/api/v1/contacts", json={**VALID, **change}, headers=headers)
    assert response.status_code == 422, response.text
    fields = [err["loc"][-1] for err in response.json()["detail"]]
    assert field in fields
    if echo is not None:
        assert echo not in response.text
    assert _counts(session) == before


def test_contact_detail_is_for_its_recorder_audited_and_404_for_others(client, factory, session):
    owner, other = factory.user("caseworker"), factory.user("caseworker")
    made = client.post(
        "/api/v1/contacts", json={**VALID, "alias": "Canary Alias 3141"}, headers=factory.headers(owner)
    ).json()
    reads = (
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "contact.read", AuditEntry.target == made["code"])
    )
    for expected in (1, 2):
        shown = client.get(f"/api/v1/contacts/{made['id']}", headers=factory.headers(owner))
        assert shown.status_code == 200 and shown.json()["alias"] == "Canary Alias 3141"
        assert session.scalar(reads) == expected
    hidden = client.get(f"/api/v1/contacts/{made['id']}", headers=factory.headers(other))
    assert hidden.status_code == 404 and "3141" not in hidden.text
    assert session.scalar(reads) == 2


def test_admin_lists_and_sees_contacts_without_decrypted_fields_and_analyst_is_refused(client, factory, session):
    owner = factory.user("caseworker")
    admin, analyst = factory.headers(factory.user("admin")), factory.headers(factory.user("analyst"))
    session.commit()  # refused requests roll back to here
    made = client.post(
        "/api/v1/contacts", json={**VALID, "alias": "Canary Alias 2718"}, headers=factory.headers(owner)
    ).json()
    listing = client.get("/api/v1/contacts", headers=admin)
    assert listing.status_code == 200 and made["code"] in listing.text and "2718" not in listing.text
    detail = client.get(f"/api/v1/contacts/{made['id']}", headers=admin)
    assert detail.status_code == 200 and detail.json()["redacted"] is True and "2718" not in detail.text
    assert client.get("/api/v1/contacts", headers=analyst).status_code == 403
    assert client.get(f"/api/v1/contacts/{made['id']}", headers=analyst).status_code == 403
    assert client.post("/api/v1/contacts", json=VALID, headers=admin).status_code == 403


def test_lists_are_paginated_filtered_and_hold_no_decrypted_field(client, factory):
    worker = factory.user("caseworker")
    headers = factory.headers(worker)
    old = (date.today() - timedelta(days=40)).isoformat()
    for i in range(5):
        body = {**VALID, "alias": f"Canary Alias 16{i}", "region": "dagestan" if i < 2 else "moscow"}
        if i == 0:
            body["received_on"] = old
        assert client.post("/api/v1/contacts", json=body, headers=headers).status_code == 201
    page = client.get("/api/v1/contacts", params={"limit": 2, "offset": 1}, headers=headers).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (5, 2, 1, 2)
    listing = client.get("/api/v1/contacts", params={"limit": 200}, headers=headers)
    assert "Canary" not in listing.text
    assert client.get("/api/v1/contacts", params={"region": "dagestan"}, headers=headers).json()["total"] == 2
    assert client.get("/api/v1/contacts", params={"received_to": old}, headers=headers).json()["total"] == 1
    assert client.get("/api/v1/contacts", params={"received_from": old}, headers=headers).json()["total"] == 5
    assert client.get("/api/v1/contacts", params={"limit": 201}, headers=headers).status_code == 422


def test_outcome_is_set_over_the_api(client, factory):
    worker = factory.user("caseworker")
    made = client.post("/api/v1/contacts", json=VALID, headers=factory.headers(worker)).json()
    done = client.post(
        f"/api/v1/contacts/{made['id']}/outcome", json={"outcome": "referred"}, headers=factory.headers(worker)
    )
    assert done.status_code == 200 and done.json()["outcome"] == "referred"
    filtered = client.get("/api/v1/contacts", params={"outcome": "referred"}, headers=factory.headers(worker))
    assert [i["id"] for i in filtered.json()["items"]] == [made["id"]]


@pytest.mark.parametrize("handle", ["@", " @ ", "+", "--"])
def test_a_handle_without_a_letter_or_digit_is_refused_on_the_known_bad_list_too(client, factory, session, handle):
    # On the list it would flag every contact whose handle is as empty, and alert the coordinators each time.
    coordinator = factory.user("coordinator")
    refused = client.post("/api/v1/flagged-handles", json={"handle": handle}, headers=factory.headers(coordinator))
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"][-1] == "handle"
    assert "at least one letter or digit" in refused.json()["detail"][0]["msg"]
    assert session.scalar(select(func.count()).select_from(FlaggedHandle)) == 0
