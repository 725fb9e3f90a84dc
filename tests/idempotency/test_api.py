"""Idempotency-Key on API POSTs: a retried write gets the first answer and makes no second record."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select, update

from app.contacts.models import Contact
from app.idempotency.models import IdempotencyKey

BODY = {
    "received_on": date.today().isoformat(),
    "channel": "telegram",
    "region": "chechnya",
    "language": "ru",
    "risk": "high",
    "needs": ["evacuation"],
    "alias": "Idempotency test",
}


def _contacts(session) -> int:
    return session.scalar(select(func.count()).select_from(Contact))


def test_a_retry_with_the_same_key_gets_the_first_answer_and_no_second_contact(client, factory, session) -> None:
    headers = {**factory.headers(factory.user("caseworker")), "Idempotency-Key": "retry-1"}
    before = _contacts(session)
    first = client.post("/api/v1/contacts", json=BODY, headers=headers)
    again = client.post("/api/v1/contacts", json=BODY, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.json()["code"] == first.json()["code"]
    assert again.headers["idempotent-replayed"] == "true"
    assert _contacts(session) == before + 1


def test_the_key_is_stored_hashed_with_only_status_id_and_code(client, factory, session) -> None:
    headers = {**factory.headers(factory.user("caseworker")), "Idempotency-Key": "secret-looking-key"}
    answer = client.post("/api/v1/contacts", json=BODY, headers=headers).json()
    row = session.scalars(select(IdempotencyKey)).one()
    assert "secret-looking-key" not in (row.key_hash, row.request_hash)
    assert (row.status, row.answer_id, row.answer_code) == (201, answer["id"], answer["code"])


def test_without_a_key_or_with_another_key_each_post_acts(client, factory, session) -> None:
    base = factory.headers(factory.user("caseworker"))
    before = _contacts(session)
    client.post("/api/v1/contacts", json=BODY, headers=base)
    client.post("/api/v1/contacts", json=BODY, headers=base)
    client.post("/api/v1/contacts", json=BODY, headers={**base, "Idempotency-Key": "a"})
    client.post("/api/v1/contacts", json=BODY, headers={**base, "Idempotency-Key": "b"})
    assert _contacts(session) == before + 4


def test_keys_belong_to_their_user(client, factory, session) -> None:
    one = {**factory.headers(factory.user("caseworker")), "Idempotency-Key": "shared"}
    two = {**factory.headers(factory.user("caseworker")), "Idempotency-Key": "shared"}
    first = client.post("/api/v1/contacts", json=BODY, headers=one).json()
    second = client.post("/api/v1/contacts", json=BODY, headers=two)
    assert second.status_code == 201 and second.json()["id"] != first["id"]
    assert "idempotent-replayed" not in second.headers


def test_a_key_reused_for_another_request_is_refused(client, factory, session) -> None:
    headers = {**factory.headers(factory.user("caseworker")), "Idempotency-Key": "k"}
    client.post("/api/v1/contacts", json=BODY, headers=headers)
    before = _contacts(session)
    other = client.post("/api/v1/contacts", json={**BODY, "alias": "someone else"}, headers=headers)
    assert other.status_code == 422 and other.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert _contacts(session) == before


def test_a_failed_request_is_not_remembered(client, factory, session) -> None:
    headers = {**factory.headers(factory.user("caseworker")), "Idempotency-Key": "fails"}
    future = (date.today() + timedelta(days=3)).isoformat()
    assert client.post("/api/v1/contacts", json={**BODY, "received_on": future}, headers=headers).status_code == 422
    assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


def test_after_24_hours_the_key_acts_again(client, factory, session) -> None:
    headers = {**factory.headers(factory.user("caseworker")), "Idempotency-Key": "old"}
    first = client.post("/api/v1/contacts", json=BODY, headers=headers).json()
    session.execute(update(IdempotencyKey).values(created_at=datetime.now(UTC) - timedelta(hours=25)))
    later = client.post("/api/v1/contacts", json=BODY, headers=headers)
    assert later.status_code == 201 and later.json()["id"] != first["id"]
