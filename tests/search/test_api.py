"""Search: a caseworker finds their own records by code, by a handle written another way (blind index,
contacts and cases), and by alias, and nothing outside what they may read is found or decrypted."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from app.audit.models import AuditEntry

API = "/api/v1"
BASE = {
    "received_on": date.today().isoformat(),
    "channel": "phone",
    "region": "moscow",
    "language": "ru",
    "risk": "low",
}


def _record(client, headers, **extra):
    response = client.post(f"{API}/contacts", json={**BASE, **extra}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _search(client, headers, q, by="handle"):
    response = client.get(f"{API}/search", params={"q": q, "by": by}, headers=headers)
    assert response.status_code == 200, response.text
    return {(h["kind"], h["code"], h["matched"]) for h in response.json()["hits"]}


def test_a_handle_written_another_way_finds_the_contact_and_the_case(client, factory):
    worker = factory.user("caseworker")
    headers = factory.headers(worker)
    contact = _record(client, headers, handle="+7 928 555-01-47")
    other = _record(client, headers)
    case = client.post(f"{API}/cases", json={"contact_id": other["id"], "handle": "@Aslan_K"}, headers=headers).json()
    assert _search(client, headers, "89285550147") == {("contact", contact["code"], "handle")}
    assert _search(client, headers, "aslan_k") == {("case", case["code"], "handle")}
    assert _search(client, headers, "+7 900 000-00-00") == set()


def test_nobody_elses_record_is_found_or_decrypted(client, factory, session):
    a, b = factory.user("caseworker"), factory.user("caseworker")
    theirs = _record(client, factory.headers(a), handle="@shared_handle", alias="Zelimkhan")
    assert _search(client, factory.headers(b), "@Shared_Handle") == set()
    assert _search(client, factory.headers(b), theirs["code"]) == set()
    assert _search(client, factory.headers(b), "zelim", by="alias") == set()
    lookups = session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.actor == b.username, AuditEntry.target == theirs["code"])
    )
    assert lookups == 0  # not even opened to compare


def test_by_code_and_by_alias_with_every_opened_record_audited(client, factory, session):
    worker = factory.user("caseworker")
    headers = factory.headers(worker)
    zelim = _record(client, headers, alias="Zelimkhan D.")
    _record(client, headers, alias="Madina")
    assert _search(client, headers, zelim["code"].lower()) == {("contact", zelim["code"], "code")}
    before = session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "contact.lookup", AuditEntry.actor == worker.username)
    )
    assert _search(client, headers, "zelim", by="alias") == {("contact", zelim["code"], "alias")}
    after = session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "contact.lookup", AuditEntry.actor == worker.username)
    )
    assert after - before == 2  # both aliases were opened to compare, and both reads are on record


def test_search_is_for_caseworkers(client, factory):
    for role in ("coordinator", "admin", "analyst"):
        assert (
            client.get(f"{API}/search", params={"q": "x"}, headers=factory.headers(factory.user(role))).status_code
            == 403
        )
