"""Consents and referrals through the API on one installation: who may, and what a referral needs."""

from __future__ import annotations

import base64
import uuid
from datetime import date, timedelta

import pyrage
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.referrals import service as referral_service
from app.referrals.models import Consent, Referral

TODAY = date.today().isoformat()


def _partner(session, name: str = "Shelter") -> pyrage.x25519.Identity:  # type: ignore[no-untyped-def]
    identity = pyrage.x25519.Identity.generate()
    verify = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    referral_service.add_partner(
        session=session, actor="test", name=name, age_recipient=str(identity.to_public()), verify_key=verify
    )
    return identity


@pytest.fixture
def setup(session, factory):  # type: ignore[no-untyped-def]
    _partner(session)
    _partner(session, "Embassy")
    worker = factory.user("caseworker")
    case = factory.case(worker, full_name="CANARY-FULL-NAME", location="CANARY-LOCATION")
    return worker, case


def _consent(client, headers, case_id, *, partner="Shelter", fields=("full_name", "location")):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/cases/{case_id}/consents",
        json={"partner": partner, "given_on": TODAY, "how": "intermediary", "fields": list(fields)},
        headers=headers,
    )


def test_no_covering_consent_is_a_409(client, factory, session, setup) -> None:
    worker, case = setup
    headers = factory.headers(worker)
    other = factory.case(worker)
    session.commit()
    consent = _consent(client, headers, case.id).json()

    def refer(partner: str, fields: list[str], consent_id: str) -> int:
        body = {"partner": partner, "fields": fields, "consent_id": consent_id}
        return client.post(f"/api/v1/cases/{case.id}/referrals", json=body, headers=headers).status_code

    assert refer("Shelter", ["full_name"], str(uuid.uuid4())) == 409  # no such consent
    assert refer("Embassy", ["full_name"], consent["id"]) == 409  # consent was for another partner
    response = client.post(
        f"/api/v1/cases/{case.id}/referrals",
        json={"partner": "Shelter", "fields": ["full_name", "case_notes"], "consent_id": consent["id"]},
        headers=headers,
    )
    assert response.status_code == 409 and response.json()["detail"]["not_covered"] == ["case_notes"]
    assert refer("Shelter", ["full_name"], consent["id"]) == 201
    # The same consent on another case of the same caseworker does not count.
    body = {"partner": "Shelter", "fields": ["full_name"], "consent_id": consent["id"]}
    assert client.post(f"/api/v1/cases/{other.id}/referrals", json=body, headers=headers).status_code == 409
    assert session.scalar(select(Referral.case_id).where(Referral.case_id == other.id)) is None


def test_consent_terms_are_sealed_with_the_case(client, factory, session, setup) -> None:
    worker, case = setup
    consent = _consent(client, factory.headers(worker), case.id)
    assert consent.status_code == 201, consent.text
    row = session.get(Consent, uuid.UUID(consent.json()["id"]))
    assert row is not None and row.terms_ct is not None
    assert b"full_name" not in row.terms_ct and b"intermediary" not in row.terms_ct
    listed = client.get(f"/api/v1/cases/{case.id}/consents", headers=factory.headers(worker)).json()
    assert listed[0]["fields"] == ["full_name", "location"] and listed[0]["how"] == "intermediary"
    # A coordinator sees that a consent exists, never its terms.
    coordinator = factory.user("coordinator")
    seen = client.get(f"/api/v1/cases/{case.id}/consents", headers=factory.headers(coordinator)).json()
    assert seen[0]["fields"] == [] and seen[0]["how"] is None


def test_who_may_record_refer_and_download(client, factory, session, setup) -> None:
    worker, case = setup
    coordinator = factory.user("coordinator")
    # Headers first: a refused request rolls back the test's transaction to its last commit.
    mine, stranger, coord, analyst = (
        factory.headers(u) for u in (worker, factory.user("caseworker"), coordinator, factory.user("analyst"))
    )
    session.commit()
    assert _consent(client, stranger, case.id).status_code == 404
    assert _consent(client, coord, case.id).status_code == 403
    assert _consent(client, analyst, case.id).status_code == 403
    consent = _consent(client, mine, case.id).json()
    body = {"partner": "Shelter", "fields": ["full_name"], "consent_id": consent["id"]}
    assert client.post(f"/api/v1/cases/{case.id}/referrals", json=body, headers=coord).status_code == 403
    made = client.post(f"/api/v1/cases/{case.id}/referrals", json=body, headers=mine).json()
    package = f"/api/v1/referrals/{made['id']}/package"
    assert client.get(package, headers=stranger).status_code == 404
    assert client.get(package, headers=analyst).status_code == 403
    download = client.get(package, headers=coord)
    assert download.status_code == 200 and b"CANARY" not in download.content
    audited = session.scalars(select(AuditEntry.actor).where(AuditEntry.action == "referral.package")).all()
    assert audited == [coordinator.username]
    assert client.get("/api/v1/partners", headers=analyst).status_code == 403
    names = [p["name"] for p in client.get("/api/v1/partners", headers=mine).json()]
    assert names == ["Embassy", "Shelter"]


def test_status_moves_follow_the_table(client, factory, session, setup) -> None:
    worker, case = setup
    headers = factory.headers(worker)
    session.commit()
    consent = _consent(client, headers, case.id).json()
    body = {"partner": "Shelter", "fields": ["location"], "consent_id": consent["id"]}
    made = client.post(f"/api/v1/cases/{case.id}/referrals", json=body, headers=headers).json()
    url = f"/api/v1/referrals/{made['id']}/status"
    bad = client.post(url, json={"to": "completed"}, headers=headers)
    assert bad.status_code == 409 and bad.json()["detail"]["allowed"] == ["accepted", "declined", "withdrawn"]
    future = (date.today() + timedelta(days=2)).isoformat()
    assert client.post(url, json={"to": "accepted", "on": future}, headers=headers).status_code == 422
    assert client.post(url, json={"to": "accepted"}, headers=headers).json()["status"] == "accepted"
    assert client.post(url, json={"to": "completed"}, headers=headers).json()["status"] == "completed"
    assert client.post(url, json={"to": "withdrawn"}, headers=headers).status_code == 409
    assert client.get(f"/api/v1/referrals/{made['id']}/package", headers=headers).status_code == 409


def test_monthly_counts_exact_for_coordinators_protected_for_analysts(client, factory, session) -> None:
    from sqlalchemy import update

    from app.referrals.models import ReferralStep
    from app.stats import ledger

    _partner(session)
    _partner(session, "Embassy")
    worker = factory.user("caseworker")
    coordinator, analyst = factory.headers(factory.user("coordinator")), factory.headers(factory.user("analyst"))
    headers = factory.headers(worker)
    cases = [factory.case(worker) for _ in range(7)]
    session.commit()
    made = []
    for i, case in enumerate(cases):
        partner = "Embassy" if i == 0 else "Shelter"
        consent = _consent(client, headers, case.id, partner=partner, fields=("region",)).json()
        body = {"partner": partner, "fields": ["region"], "consent_id": consent["id"]}
        made.append(client.post(f"/api/v1/cases/{case.id}/referrals", json=body, headers=headers).json())
    accept = {"to": "accepted"}
    assert client.post(f"/api/v1/referrals/{made[1]['id']}/status", json=accept, headers=headers).status_code == 200
    month = date.today().strftime("%Y-%m")

    exact = client.get("/api/v1/stats/referrals", headers=coordinator).json()
    assert exact["exact"] and exact["months"] == [month] and exact["partners"] == ["Embassy", "Shelter"]
    assert exact["made"]["cells"] == [[1, 6]] and exact["accepted"]["cells"] == [[0, 1]]
    # The month is still open: an analyst sees nothing of it yet (asking releases last month, empty).
    last_month = date.today().replace(day=1) - timedelta(days=1)
    assert client.get("/api/v1/stats/referrals", headers=analyst).json()["months"] == [last_month.strftime("%Y-%m")]

    earlier = last_month.replace(day=1) - timedelta(days=1)
    session.execute(update(Referral).values(sent_on=earlier, status_on=earlier))
    session.execute(update(ReferralStep).values(on=earlier))
    ledger.release_month(session, month=earlier, actor="test")
    session.commit()
    released = client.get("/api/v1/stats/referrals", headers=analyst).json()
    assert released["months"] == [earlier.strftime("%Y-%m"), last_month.strftime("%Y-%m")] and not released["exact"]
    assert released["made"]["cells"][0][0] is None and released["accepted"]["cells"][0][1] is None
    shown = [
        v
        for table in (released["made"], released["accepted"])
        for v in [*sum(table["cells"], []), *table["month_totals"], *table["partner_totals"], table["total"]]
    ]
    assert not [v for v in shown if v is not None and 0 < v < 5]
    assert client.get("/api/v1/stats/referrals", headers=headers).status_code == 403


@pytest.fixture
def approval(settings, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(settings, "referral_approval", True)
    return settings


def test_with_approval_on_a_coordinator_releases_the_package(client, factory, session, setup, approval) -> None:
    worker, case = setup
    headers, coordinator = factory.headers(worker), factory.headers(factory.user("coordinator"))
    session.commit()
    consent = _consent(client, headers, case.id).json()
    body = {"partner": "Shelter", "fields": ["location"], "consent_id": consent["id"]}
    made = client.post(f"/api/v1/cases/{case.id}/referrals", json=body, headers=headers).json()
    assert made["status"] == "pending"
    package, status = f"/api/v1/referrals/{made['id']}/package", f"/api/v1/referrals/{made['id']}/status"
    assert client.get(package, headers=headers).status_code == 409
    assert client.post(status, json={"to": "sent"}, headers=headers).status_code == 403  # not their own approval
    assert client.post(status, json={"to": "sent"}, headers=coordinator).json()["status"] == "sent"
    assert client.get(package, headers=headers).status_code == 200


def test_the_signing_key_is_never_written_to_the_database(client, factory, session, setup) -> None:
    from app.crypto import service as crypto
    from app.db import Base
    from app.referrals import keys

    worker, case = setup
    headers = factory.headers(worker)
    session.commit()
    consent = _consent(client, headers, case.id).json()
    body = {"partner": "Shelter", "fields": ["full_name"], "consent_id": consent["id"]}
    made = client.post(f"/api/v1/cases/{case.id}/referrals", json=body, headers=headers).json()
    assert client.get(f"/api/v1/referrals/{made['id']}/package", headers=headers).status_code == 200
    seed = keys.organisation_signing_key(crypto.keyring_of(session)).private_bytes_raw()
    needles = [seed, seed.hex().encode(), base64.b64encode(seed)]
    stored = b""
    for table in Base.metadata.sorted_tables:
        for row in session.execute(table.select()):
            stored += b"|".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
    assert keys.verify_key(crypto.keyring_of(session)).encode() not in stored  # not even the public half
    assert not [n for n in needles if n in stored]
