"""The "needs attention" queue and intake that tells no caseworker about records they may not read.

The attacks: caseworker B records a contact with a handle A recorded (written another way) and must get
the answer a never-seen handle gets; B records contacts in a burst to probe a list of handles and is
stopped at the hourly limit with an alarm; every candidate the check decrypts is on B's audit trail.
"""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.crypto import service as crypto

API = "/api/v1"
BASE = {
    "received_on": date.today().isoformat(),
    "channel": "phone",
    "region": "dagestan",
    "language": "ru",
    "risk": "high",
}
# Fields of the answer that depend on the handle's history; the rest (id, code) is new every time.
ANSWER = ("possible_duplicate", "flagged_handle", "duplicate_of", "outcome", "risk", "needs", "shredded", "case_id")


def _record(client, headers, **extra):
    response = client.post(f"{API}/contacts", json={**BASE, **extra}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _audit(session, action, actor=None):
    stmt = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor == actor)
    return session.scalar(stmt)


def _queue(client, factory, coordinator):
    response = client.get(f"{API}/attention", headers=factory.headers(coordinator))
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_a_probe_of_another_caseworkers_handle_answers_like_a_never_seen_one(client, factory, session):
    a, b, coordinator = factory.user("caseworker"), factory.user("caseworker"), factory.user("coordinator")
    first = _record(client, factory.headers(a), handle="+7 928 555-01-47")
    probe = _record(client, factory.headers(b), handle="89285550147")
    control = _record(client, factory.headers(b), handle="89285550999")
    assert {k: probe[k] for k in ANSWER} == {k: control[k] for k in ANSWER}
    assert probe["possible_duplicate"] is False and first["code"] not in str(probe)
    # B's own contact page says nothing either.
    page = client.get(f"{API}/contacts/{probe['id']}", headers=factory.headers(b)).json()
    assert page["possible_duplicate"] is False
    # The coordinators learn it, with both codes; the candidate B's check decrypted is on B's trail.
    duplicates = [i for i in _queue(client, factory, coordinator) if i["kind"] == "duplicate"]
    assert [(i["record_code"], i["other_code"]) for i in duplicates] == [(probe["code"], first["code"])]
    assert (
        session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(
                AuditEntry.action == "contact.lookup",
                AuditEntry.actor == b.username,
                AuditEntry.target == first["code"],
            )
        )
        == 1
    )


def test_a_duplicate_of_ones_own_record_links_to_it(client, factory):
    a = factory.user("caseworker")
    first = _record(client, factory.headers(a), handle="@Amina_K")
    again = _record(client, factory.headers(a), handle="@amina_k")
    assert again["possible_duplicate"] is True
    assert again["duplicate_of"] == [{"id": first["id"], "code": first["code"]}]


def test_lookups_count_towards_the_bulk_read_alarm(client, factory, session):
    settings = crypto.settings_of(session).model_copy(update={"decrypt_alarm_per_hour": 3})
    crypto.bind(session, settings=settings, keyring=crypto.keyring_of(session))
    a, b = factory.user("caseworker"), factory.user("caseworker")
    _record(client, factory.headers(a), handle="@target_one")
    _record(client, factory.headers(b), handle="@target_one")
    _record(client, factory.headers(b), handle="@target_one")
    # B's checks decrypted 1 and then 2 candidates (A's, then A's and B's own): 3 reads, the limit.
    assert _audit(session, "contact.lookup", b.username) == 3
    refused = client.post(f"{API}/contacts", json={**BASE, "handle": "@target_one"}, headers=factory.headers(b))
    assert refused.status_code == 429
    assert _audit(session, "alarm.bulk_read", b.username) == 1


def test_intake_past_the_hourly_limit_answers_429_and_raises_the_alarm(client, factory, session):
    settings = crypto.settings_of(session).model_copy(update={"intake_per_hour": 3})
    crypto.bind(session, settings=settings, keyring=crypto.keyring_of(session))
    prober, colleague = factory.user("caseworker"), factory.user("caseworker")
    for i in range(3):
        _record(client, factory.headers(prober), handle=f"+7928555000{i}")
    refused = client.post(f"{API}/contacts", json={**BASE, "handle": "+79285550009"}, headers=factory.headers(prober))
    assert refused.status_code == 429 and "+7928" not in refused.text
    assert _audit(session, "alarm.intake_rate", prober.username) == 1
    assert _audit(session, "contact.record", prober.username) == 3
    # Someone else's intake goes on.
    _record(client, factory.headers(colleague))


def test_a_known_bad_hit_is_shown_and_always_alerts_the_coordinators(client, factory):
    worker, coordinator = factory.user("caseworker"), factory.user("coordinator")
    listed = client.post(
        f"{API}/flagged-handles",
        json={"handle": "@trap_account", "reason": "entrapment"},
        headers=factory.headers(coordinator),
    )
    assert listed.status_code == 201
    hit = _record(client, factory.headers(worker), handle="@Trap_Account")
    assert hit["flagged_handle"] is True
    kinds = {(i["kind"], i["record_code"]) for i in _queue(client, factory, coordinator)}
    assert ("known_bad", hit["code"]) in kinds


def test_immediate_danger_alerts_the_coordinators_and_the_queue_is_theirs_alone(client, factory):
    worker, coordinator = factory.user("caseworker"), factory.user("coordinator")
    danger = _record(client, factory.headers(worker), risk="immediate")
    calm = _record(client, factory.headers(worker), risk="low")
    codes = {i["record_code"] for i in _queue(client, factory, coordinator) if i["kind"] == "immediate_danger"}
    assert danger["code"] in codes and calm["code"] not in codes
    assert client.get(f"{API}/attention", headers=factory.headers(worker)).status_code == 403
    item = next(i for i in _queue(client, factory, coordinator) if i["record_code"] == danger["code"])
    assert client.post(f"{API}/attention/{item['id']}/resolve", headers=factory.headers(coordinator)).status_code == 204
    assert danger["code"] not in {i["record_code"] for i in _queue(client, factory, coordinator)}


def test_asking_for_verification_reaches_the_queue_and_verification_unlocks_planning(client, factory):
    worker, coordinator = factory.user("caseworker"), factory.user("coordinator")
    cw, co = factory.headers(worker), factory.headers(coordinator)
    contact = _record(client, cw)
    case = client.post(f"{API}/cases", json={"contact_id": contact["id"]}, headers=cw).json()
    today = date.today().isoformat()
    assert (
        client.post(
            f"{API}/cases/{case['id']}/transitions", json={"to": "verifying", "on": today}, headers=cw
        ).status_code
        == 200
    )
    blocked = client.post(f"{API}/cases/{case['id']}/transitions", json={"to": "planning", "on": today}, headers=cw)
    assert blocked.status_code == 409
    asked = client.post(f"{API}/cases/{case['id']}/verification-request", headers=cw)
    assert asked.status_code == 201
    assert client.get(f"{API}/cases/{case['id']}", headers=cw).json()["verification_requested"] is True
    waiting = [i for i in _queue(client, factory, coordinator) if i["kind"] == "verification_request"]
    assert [(i["record_code"], i["case_id"]) for i in waiting] == [(case["code"], case["id"])]
    # The coordinator cannot ask (nor can another caseworker, who gets 404); verifying empties the entry.
    assert client.post(f"{API}/cases/{case['id']}/verification-request", headers=co).status_code == 403
    assert client.post(f"{API}/cases/{case['id']}/verify", headers=co).status_code == 200
    assert not [i for i in _queue(client, factory, coordinator) if i["kind"] == "verification_request"]
    moved = client.post(f"{API}/cases/{case['id']}/transitions", json={"to": "planning", "on": today}, headers=cw)
    assert moved.status_code == 200
    assert client.post(f"{API}/cases/{case['id']}/verification-request", headers=cw).status_code == 409


def test_the_calls_language_comes_from_the_configured_list(client, factory):
    headers = factory.headers(factory.user("caseworker"))
    assert client.post(f"{API}/contacts", json={**BASE, "language": "ce"}, headers=headers).status_code == 201
    refused = client.post(f"{API}/contacts", json={**BASE, "language": "russian"}, headers=headers)
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][-1] == "language"


def test_the_queue_comes_in_pages_with_the_total_and_one_order(client, factory, session):
    from app.attention import service as attention
    from tests.web.conftest import Pages

    for n in range(60):
        attention.raise_item(session, kind="immediate_danger", raised_by="night-shift", record_code=f"H-PAGE-{n:02d}")
    coordinator = factory.account("coordinator")
    web = Pages(client, session)
    web.signed_in(coordinator)
    # The page: 25 a page, oldest first, a pager, and a page past the end that says so.
    page_one = client.get("/attention").text
    assert page_one.count("/resolve") == 25 and "Page 1 of 3" in page_one and "60 entries" in page_one
    last = client.get("/attention", params={"page": 3}).text
    assert last.count("/resolve") == 10 and 'rel="prev"' in last and 'rel="next"' not in last
    shown: set[str] = set()
    for page in (1, 2, 3):
        shown |= set(re.findall(r"H-PAGE-\d\d", client.get("/attention", params={"page": page}).text))
    assert len(shown) == 60
    assert "There is no page 9: the last is page 3." in client.get("/attention", params={"page": 9}).text
    # The API: pages of at most 200 with the total beside them, every entry once.
    headers = factory.headers(coordinator.user)
    first = client.get("/api/v1/attention", headers=headers).json()
    assert (len(first["items"]), first["total"], first["limit"], first["offset"]) == (50, 60, 50, 0)
    rest = client.get("/api/v1/attention", params={"offset": 50}, headers=headers).json()
    assert (len(rest["items"]), rest["total"]) == (10, 60)
    codes = [i["record_code"] for i in first["items"] + rest["items"]]
    assert sorted(codes) == [f"H-PAGE-{n:02d}" for n in range(60)] and len(set(codes)) == 60
    assert client.get("/api/v1/attention", params={"limit": 201}, headers=headers).status_code == 422
