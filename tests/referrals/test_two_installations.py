"""A referral between two installations, end to end: consent, package, import, answer, shred."""

from __future__ import annotations

import base64
import json
from datetime import date
from pathlib import Path

import pyrage
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from app.audit import service as audit
from app.audit.models import AuditEntry
from app.cases.models import Case
from app.referrals import package
from app.referrals.models import Consent, Referral
from tests.referrals.conftest import Org, befriend

# Long: collected first, so the two test processes finish together (tests/conftest.py).
pytestmark = pytest.mark.slow

CONTACT = {"alias": "CANARY-ALIAS-7Q", "handle": "@canary_handle_k2", "notes": "CANARY-CONTACT-NOTE-ZZ"}
CASE = {
    "full_name": "CANARY-NAME Ruslan",
    "handle": "@canary_case_handle",
    "location": "CANARY-LOCATION Grozny flat 9",
    "family_situation": "CANARY-FAMILY brother is police",
    "notes": "CANARY-CASE-NOTE internal",
}
SHARED = ["full_name", "location", "contact_handle"]


def _refer(a: Org, fields: list[str] = SHARED, consent_fields: list[str] | None = None) -> dict:
    made = a.new_case(contact=CONTACT, case=CASE)
    case_id = made["case"]["id"]
    consent = a.client.post(
        f"/api/v1/cases/{case_id}/consents",
        json={
            "partner": "Beta",
            "given_on": date.today().isoformat(),
            "how": "spoken",
            "fields": consent_fields or fields,
        },
        headers=a.caseworker,
    )
    assert consent.status_code == 201, consent.text
    referral = a.client.post(
        f"/api/v1/cases/{case_id}/referrals",
        json={"partner": "Beta", "fields": fields, "consent_id": consent.json()["id"]},
        headers=a.caseworker,
    )
    assert referral.status_code == 201, referral.text
    return {**made, "consent": consent.json(), "referral": referral.json()}


def _download(a: Org, referral_id: str, path: Path) -> bytes:
    response = a.client.get(f"/api/v1/referrals/{referral_id}/package", headers=a.caseworker)
    assert response.status_code == 200, response.text
    path.write_bytes(response.content)
    return response.content


def _one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def _cases(org: Org) -> int:
    with org.session() as db:
        return db.scalar(select(func.count()).select_from(Case)) or 0


def _actions(org: Org) -> list[str]:
    with org.session() as db:
        return list(db.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


def test_three_fields_cross_and_nothing_else(orgs, tmp_path) -> None:
    a, b = orgs
    befriend(a, b)
    made = _refer(a)
    referral = made["referral"]
    assert referral["status"] == "sent" and referral["code"].startswith("R-")
    codes = {made["case"]["code"], made["contact"]["code"]}
    assert referral["code"] not in codes

    data = _download(a, referral["id"], tmp_path / "package.age")
    canaries = [*CONTACT.values(), *CASE.values()]
    for secret in [*canaries, *codes]:
        assert secret.encode() not in data
    # Decrypted with the partner's identity: exactly the three fields, no other canary, no record code.
    plain = bytes(pyrage.decrypt(data, [b.identity])).decode()
    doc = json.loads(plain)
    assert doc["fields"] == {
        "full_name": CASE["full_name"],
        "location": CASE["location"],
        "contact_handle": CONTACT["handle"],
    }
    for secret in [CONTACT["alias"], CONTACT["notes"], CASE["handle"], CASE["family_situation"], CASE["notes"], *codes]:
        assert secret not in plain
    assert doc["code"] == referral["code"] and doc["to"] == b.recipient

    result = b.cli("referral", "import", tmp_path / "package.age", "--identity", b.identity_file)
    assert result.returncode == 0, result.stderr
    case_code = result.stdout.split(" as case ")[1].split()[0]
    for secret in canaries:
        assert secret not in result.stdout + result.stderr

    # The receiver's caseworker sees exactly the three fields, under the receiver's own codes.
    cases = b.client.get("/api/v1/cases", headers=b.caseworker).json()["items"]
    (imported,) = [c for c in cases if c["code"] == case_code]
    assert case_code not in codes
    seen = b.client.get(f"/api/v1/cases/{imported['id']}", headers=b.caseworker).json()
    assert (seen["full_name"], seen["location"]) == (CASE["full_name"], CASE["location"])
    assert seen["handle"] is None and seen["family_situation"] is None and seen["notes"] is None
    contact = b.client.get(f"/api/v1/contacts/{imported['contact_id']}", headers=b.caseworker).json()
    assert contact["handle"] == CONTACT["handle"]
    assert contact["alias"] is None and contact["notes"] is None
    assert contact["channel"] == "referral" and contact["risk"] == "high" and contact["region"] == "unknown"

    # The receiver answers; the sender imports the answer and the referral moves to accepted.
    answer = tmp_path / "answer.age"
    result = b.cli("referral", "answer", referral["code"], "--status", "accepted", "--out", answer)
    assert result.returncode == 0, result.stderr
    result = a.cli("referral", "import-answer", answer, "--identity", a.identity_file)
    assert result.returncode == 0, result.stderr
    moved = a.client.get(f"/api/v1/referrals/{referral['id']}", headers=a.caseworker).json()
    assert moved["status"] == "accepted"
    assert [(s["status"], s["source"]) for s in moved["steps"]] == [("sent", "created"), ("accepted", "answer")]
    # The same answer again is refused: the referral has moved past it.
    assert "cannot move from accepted to accepted" in _one_line_error(
        a.cli("referral", "import-answer", answer, "--identity", a.identity_file)
    )

    # Every step is in both audit chains, and both chains verify.
    sender, receiver = _actions(a), _actions(b)
    for action in ("partner.add", "referral.consent", "referral.create", "referral.package", "referral.status"):
        assert action in sender
    for action in ("partner.add", "referral.import", "referral.answer"):
        assert action in receiver
    for org in (a, b):
        with org.session() as db:
            assert audit.verify(db)[1] is None
        assert org.cli("audit", "verify").returncode == 0


def test_tampered_forged_misaddressed_and_repeated_packages_are_refused(orgs, tmp_path) -> None:
    a, b = orgs
    befriend(a, b)
    referral = _refer(a)["referral"]
    good = _download(a, referral["id"], tmp_path / "good.age")
    before = _cases(b)

    # One byte altered anywhere in the file.
    for offset in (len(good) // 2, len(good) - 5):
        altered = bytearray(good)
        altered[offset] ^= 0x01
        (tmp_path / "altered.age").write_bytes(bytes(altered))
        line = _one_line_error(b.cli("referral", "import", tmp_path / "altered.age", "--identity", b.identity_file))
        assert "refused" in line

    # Signed by a key that is not a partner's; and claiming Alpha's key while signed by another.
    stranger = Ed25519PrivateKey.generate()
    stranger_key = base64.b64encode(stranger.public_key().public_bytes_raw()).decode()
    body = {
        "format": package.PACKAGE,
        "version": 1,
        "code": "R-FAKE-01",
        "from": stranger_key,
        "to": b.recipient,
        "sent_on": date.today().isoformat(),
        "fields": {"full_name": "planted"},
    }
    (tmp_path / "stranger.age").write_bytes(package.encrypt(package.sign(body, key=stranger), recipient=b.recipient))
    line = _one_line_error(b.cli("referral", "import", tmp_path / "stranger.age", "--identity", b.identity_file))
    assert "not a partner here" in line
    forged = {**body, "from": a.verify_key()}
    (tmp_path / "forged.age").write_bytes(package.encrypt(package.sign(forged, key=stranger), recipient=b.recipient))
    line = _one_line_error(b.cli("referral", "import", tmp_path / "forged.age", "--identity", b.identity_file))
    assert "signature does not match Alpha" in line

    # Encrypted to another organisation's key: unreadable here; and re-encrypted to us by that organisation.
    other = pyrage.x25519.Identity.generate()
    assert (
        a.cli(
            "partner", "add", "Gamma", "--age-recipient", str(other.to_public()), "--verify-key", stranger_key
        ).returncode
        == 0
    )
    made = a.new_case(contact=CONTACT, case=CASE)
    consent = a.client.post(
        f"/api/v1/cases/{made['case']['id']}/consents",
        json={"partner": "Gamma", "given_on": date.today().isoformat(), "how": "written", "fields": ["full_name"]},
        headers=a.caseworker,
    ).json()
    to_gamma = a.client.post(
        f"/api/v1/cases/{made['case']['id']}/referrals",
        json={"partner": "Gamma", "fields": ["full_name"], "consent_id": consent["id"]},
        headers=a.caseworker,
    ).json()
    for_gamma = _download(a, to_gamma["id"], tmp_path / "gamma.age")
    line = _one_line_error(b.cli("referral", "import", tmp_path / "gamma.age", "--identity", b.identity_file))
    assert "not encrypted to this organisation's identity" in line
    forwarded = pyrage.encrypt(pyrage.decrypt(for_gamma, [other]), [pyrage.x25519.Recipient.from_str(b.recipient)])
    (tmp_path / "forwarded.age").write_bytes(bytes(forwarded))
    line = _one_line_error(b.cli("referral", "import", tmp_path / "forwarded.age", "--identity", b.identity_file))
    assert "signed for another organisation" in line
    assert _cases(b) == before

    # The genuine package once; the same file again, and a fresh download of it, are refused.
    assert b.cli("referral", "import", tmp_path / "good.age", "--identity", b.identity_file).returncode == 0
    assert _cases(b) == before + 1
    line = _one_line_error(b.cli("referral", "import", tmp_path / "good.age", "--identity", b.identity_file))
    assert "already imported" in line
    _download(a, referral["id"], tmp_path / "again.age")
    line = _one_line_error(b.cli("referral", "import", tmp_path / "again.age", "--identity", b.identity_file))
    assert "already imported" in line
    assert _cases(b) == before + 1


def test_withdrawing_consent_ends_the_referral(orgs, tmp_path) -> None:
    a, b = orgs
    befriend(a, b)
    made = _refer(a)
    case_id, consent_id, referral = made["case"]["id"], made["consent"]["id"], made["referral"]
    _download(a, referral["id"], tmp_path / "package.age")
    withdrawn = a.client.post(f"/api/v1/cases/{case_id}/consents/{consent_id}/withdraw", headers=a.caseworker)
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json() == {"ended": [referral["code"]]}
    view = a.client.get(f"/api/v1/referrals/{referral['id']}", headers=a.caseworker).json()
    assert view["status"] == "withdrawn" and view["steps"][-1]["source"] == "consent"
    assert a.client.get(f"/api/v1/referrals/{referral['id']}/package", headers=a.caseworker).status_code == 409
    again = a.client.post(
        f"/api/v1/cases/{case_id}/referrals",
        json={"partner": "Beta", "fields": SHARED, "consent_id": consent_id},
        headers=a.caseworker,
    )
    assert again.status_code == 409
    # A late answer from the partner cannot bring the withdrawn referral back.
    assert b.cli("referral", "import", tmp_path / "package.age", "--identity", b.identity_file).returncode == 0
    assert (
        b.cli("referral", "answer", referral["code"], "--status", "accepted", "--out", tmp_path / "a.age").returncode
        == 0
    )
    line = _one_line_error(a.cli("referral", "import-answer", tmp_path / "a.age", "--identity", a.identity_file))
    assert "cannot move from withdrawn to accepted" in line
    assert a.client.get(f"/api/v1/referrals/{referral['id']}", headers=a.caseworker).json()["status"] == "withdrawn"


def test_a_shred_on_the_sender_leaves_the_receivers_copy(orgs, tmp_path) -> None:
    a, b = orgs
    befriend(a, b)
    made = _refer(a)
    referral = made["referral"]
    _download(a, referral["id"], tmp_path / "package.age")
    result = b.cli("referral", "import", tmp_path / "package.age", "--identity", b.identity_file)
    assert result.returncode == 0, result.stderr
    case_code = result.stdout.split(" as case ")[1].split()[0]

    assert a.cli("case", "shred", made["case"]["code"], "--yes").returncode == 0
    # The sender keeps only the fact: partner, code, field names, dates; nothing left to send.
    view = a.client.get(f"/api/v1/referrals/{referral['id']}", headers=a.caseworker).json()
    assert view["code"] == referral["code"] and view["fields"] == sorted(SHARED) and view["partner"] == "Beta"
    assert a.client.get(f"/api/v1/referrals/{referral['id']}/package", headers=a.caseworker).status_code == 409
    with a.session() as db:
        row = db.scalar(select(Referral).where(Referral.code == referral["code"]))
        assert row is not None and row.fields == ",".join(sorted(SHARED))
        consent = db.get(Consent, row.consent_id)
        assert consent is not None and consent.terms_ct is None
    # The receiver's copy is its own, under its own keys.
    (imported,) = [
        c for c in b.client.get("/api/v1/cases", headers=b.caseworker).json()["items"] if c["code"] == case_code
    ]
    seen = b.client.get(f"/api/v1/cases/{imported['id']}", headers=b.caseworker).json()
    assert seen["full_name"] == CASE["full_name"]
