"""Direct delivery to a real Helpline server's inbox: a partner's signature is the only way in."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.referrals import delivery
from app.referrals.models import InboxPackage
from tests.referrals.conftest import Org, befriend
from tests.referrals.test_two_installations import CASE, CONTACT, _refer

# Long: collected first, so the two test processes finish together (tests/conftest.py).
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(orgs) -> Iterator[tuple[Org, Org, str]]:  # type: ignore[no-untyped-def]
    """Alpha in-process; Beta as a real server with its inbox on (two deliveries a day per partner)."""
    a, b = orgs
    port = _free_port()
    env = b.env(HELPLINE_REFERRAL_INBOX="true", HELPLINE_REFERRAL_INBOX_PER_DAY="2")
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        env=env,
        cwd=b.base,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/v1/referrals/inbox"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield a, b, url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_package_is_delivered_kept_encrypted_and_imported_once(served, tmp_path) -> None:
    a, b, url = served
    befriend(a, b)
    assert (
        a.cli(
            "partner",
            "add",
            "Beta",
            "--replace",
            "--age-recipient",
            b.recipient,
            "--verify-key",
            b.verify_key(),
            "--inbox-url",
            url,
        ).returncode
        == 0
    )
    referral = _refer(a)["referral"]
    sent = a.client.post(f"/api/v1/referrals/{referral['id']}/deliver", headers=a.caseworker)
    assert sent.status_code == 200, sent.text
    with b.session() as db:
        (row,) = db.scalars(select(InboxPackage)).all()
        assert row.data is not None and row.imported_on is None
        for secret in [*CONTACT.values(), *CASE.values()]:
            assert secret.encode() not in row.data
        assert db.scalar(select(AuditEntry.actor).where(AuditEntry.action == "referral.inbox")) == "partner:Alpha"
        inbox_id = row.id
    with a.session() as db:
        assert db.scalar(select(AuditEntry.seq).where(AuditEntry.action == "referral.deliver")) is not None

    with b.session() as db:
        done = delivery.import_delivered(
            session=db, actor="coordinator", inbox_id=inbox_id, identity=b.identity, assign=b.caseworker_name
        )
    assert done.code == referral["code"] and done.fields == sorted(["full_name", "location", "contact_handle"])
    with b.session() as db:
        row = db.get(InboxPackage, inbox_id)
        assert row is not None and row.data is None and row.imported_on is not None
    # Delivering again: a fresh package under the same code is taken in, but its import is refused.
    assert a.client.post(f"/api/v1/referrals/{referral['id']}/deliver", headers=a.caseworker).status_code == 200
    with b.session() as db:
        again = db.scalar(select(InboxPackage.id).where(InboxPackage.data.is_not(None)))
        with pytest.raises(Exception, match="already imported"):
            delivery.import_delivered(session=db, actor="c", inbox_id=again, identity=b.identity, assign=None)


def test_the_inbox_takes_nothing_without_a_partners_signature(served) -> None:
    a, b, url = served
    befriend(a, b)
    referral = _refer(a)["referral"]
    data = a.client.get(f"/api/v1/referrals/{referral['id']}/package", headers=a.caseworker).content
    with a.session() as db:
        genuine = delivery.envelope(data, session=db)
    stranger = Ed25519PrivateKey.generate()
    forged = {
        "package": genuine["package"],
        "from": base64.b64encode(stranger.public_key().public_bytes_raw()).decode(),
        "signature": base64.b64encode(stranger.sign(b"anything")).decode(),
    }
    assert httpx.post(url, json=forged).status_code == 403
    # Alpha's key claimed, the package swapped after signing.
    swapped = {**genuine, "package": base64.b64encode(data[:-1] + bytes([data[-1] ^ 1])).decode()}
    refused = httpx.post(url, json=swapped)
    assert refused.status_code == 403 and refused.json() == httpx.post(url, json=forged).json()
    assert httpx.post(url, json=genuine).status_code == 201
    assert httpx.post(url, json=genuine).status_code == 409  # the same bytes twice
    other = a.client.get(f"/api/v1/referrals/{referral['id']}/package", headers=a.caseworker).content
    with a.session() as db:
        third = delivery.envelope(other, session=db)
    assert httpx.post(url, json=third).status_code == 201  # the second of two a day
    fourth = a.client.get(f"/api/v1/referrals/{referral['id']}/package", headers=a.caseworker).content
    with a.session() as db:
        over = delivery.envelope(fourth, session=db)
    assert httpx.post(url, json=over).status_code == 429
    with b.session() as db:
        assert len(db.scalars(select(InboxPackage)).all()) == 2
    # Alpha's own inbox is off (the default): it is not there at all.
    assert a.client.post("/api/v1/referrals/inbox", json=genuine).status_code == 404
