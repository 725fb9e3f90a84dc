"""Direct delivery between two Helpline servers: off unless ``HELPLINE_REFERRAL_INBOX`` is on.

The sender POSTs ``{"package", "from", "signature"}`` to the partner's inbox: the age-encrypted package as
it would be downloaded, the sender's verify key, and an Ed25519 signature over the package's SHA-256
(context ``helpline-referral-delivery``). The inbox has no accounts: it takes a package only when that
signature is a registered partner's, at most ``HELPLINE_REFERRAL_INBOX_PER_DAY`` per partner a day, and
never the same bytes twice. It cannot read what it keeps — only the organisation's age identity can —
so the package waits, encrypted, until a coordinator imports it with that identity; the import runs
every check of a file import again (inner signature, recipient, already imported).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.models import User
from app.crypto import service as crypto
from app.crypto import signing as crypto_signing
from app.db import commit_before_waiting
from app.errors import Conflict, Forbidden, HelplineError, Invalid, NotFound, TooManyRequests
from app.idempotency import service as idempotency
from app.referrals import keys, package, receiving
from app.referrals import service as referral_service
from app.referrals.models import InboxPackage, Partner

DELIVERY = "helpline-referral-delivery"
TIMEOUT_SECONDS = 15


class DeliveryIn(BaseModel):
    package: str = Field(max_length=2 * package.MAX_BYTES, description="the age-encrypted package, base64")
    from_: str = Field(alias="from", max_length=64, description="the sender's verify key")
    signature: str = Field(max_length=128, description="Ed25519 over the package's SHA-256, base64")


class DeliveryOut(BaseModel):
    id: uuid.UUID
    received_on: str


class DeliveryFailed(HelplineError):
    status_code = 502
    # The package was built and its download committed before the post; what the failure records (the
    # attempt, the request's key given back) is kept too.
    keep_changes = True


def valid_inbox_url(url: str) -> str:
    """An https URL, or http to this machine only (two installations side by side)."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    loopback = host == "localhost" or (host.replace(".", "").isdigit() and ipaddress.ip_address(host).is_loopback)
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise Invalid.field("inbox_url", "must be an https:// address")
    return url.strip()


def envelope(data: bytes, *, session: Session) -> dict[str, str]:
    """The delivery body for a package: the package, this organisation's verify key, the signature."""
    signing = keys.organisation_signing_key(crypto.keyring_of(session))
    signature = crypto_signing.sign_with(signing, context=DELIVERY, message=hashlib.sha256(data).digest())
    return {
        "package": base64.b64encode(data).decode("ascii"),
        "from": keys.verify_key(crypto.keyring_of(session)),
        "signature": base64.b64encode(signature).decode("ascii"),
    }


def deliver(*, session: Session, actor: User, referral_id: uuid.UUID) -> str:
    """Send an open referral's package to its partner's inbox; audited. Returns the referral code."""
    referral, case = referral_service.get_referral_for(session=session, actor=actor, referral_id=referral_id)
    partner = session.get(Partner, referral.partner_id)
    if partner is None or not partner.inbox_url:
        raise Conflict("this partner takes no direct delivery; download the package instead")
    url = valid_inbox_url(partner.inbox_url)
    code, data = referral_service.build_package(session=session, actor=actor, referral_id=referral_id)
    request = urllib.request.Request(  # noqa: S310 (https, or http to this machine: checked above)
        url,
        data=json.dumps(envelope(data, session=session)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    # The package is built and its download recorded (committed) before it goes out, and nothing is held
    # while the partner's server answers: a slow or stalled inbox (up to TIMEOUT_SECONDS) must not stop a
    # shred, a withdrawal, or on SQLite every other writer. What happens meanwhile is recorded in its order.
    case_code = case.code
    commit_before_waiting(session)
    failed = None
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310 (scheme checked)
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        status = None
        failed = DeliveryFailed(f"the partner's inbox could not be reached: {getattr(exc, 'reason', exc)}")
    if failed is None and status != 201:
        failed = DeliveryFailed(f"the partner's inbox refused the package (HTTP {status})")
    if failed is not None:
        # Recorded, and the request's Idempotency-Key given back: sent again, it tries again.
        idempotency.release(session)
        audit.record(
            session,
            actor=actor.username,
            action="referral.deliver_failed",
            target=case_code,
            detail={"referral": code, "status": status},
        )
        raise failed
    audit.record(session, actor=actor.username, action="referral.deliver", target=case_code, detail={"referral": code})
    return code


def accept(*, session: Session, body: DeliveryIn) -> DeliveryOut:
    """Keep a partner's delivered package, encrypted as it came, for a coordinator to import."""
    settings = crypto.settings_of(session)
    if not settings.referral_inbox:
        raise NotFound()
    try:
        data = base64.b64decode(body.package, validate=True)
        signature = base64.b64decode(body.signature, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid.field("package", "must be base64") from None
    if len(data) > package.MAX_BYTES:
        raise Invalid.field("package", "is far too large to be a referral package")
    partner = session.scalar(select(Partner).where(Partner.verify_key == body.from_, Partner.removed_on.is_(None)))
    digest = hashlib.sha256(data).digest()
    # One answer for "unknown sender" and "bad signature": the inbox does not tell who its partners are.
    if partner is None or not _signature_ok(partner.verify_key, signature, digest):
        raise Forbidden("not signed by a partner of this organisation")
    today = settings.today()
    taken = session.scalar(
        select(func.count())
        .select_from(InboxPackage)
        .where(InboxPackage.partner_id == partner.id, InboxPackage.received_on == today)
    )
    if (taken or 0) >= settings.referral_inbox_per_day:
        audit.record(session, actor=f"partner:{partner.name}", action="referral.inbox_refused", detail={"limit": True})
        raise TooManyRequests("too many deliveries from this partner today; this has been recorded")
    if session.scalar(select(InboxPackage.id).where(InboxPackage.digest == digest.hex())) is not None:
        raise Conflict("this package was already delivered")
    row = InboxPackage(partner_id=partner.id, data=data, digest=digest.hex(), received_on=today)
    session.add(row)
    session.flush()
    audit.record(session, actor=f"partner:{partner.name}", action="referral.inbox", detail={"id": str(row.id)})
    return DeliveryOut(id=row.id, received_on=today.isoformat())


def _signature_ok(verify_key: str, signature: bytes, digest: bytes) -> bool:
    return crypto_signing.verify(verify_key, context=DELIVERY, message=digest, signature=signature)


def waiting(*, session: Session) -> list[dict[str, Any]]:
    """Delivered packages not yet imported: id, partner, day received (nothing of their content)."""
    rows = session.execute(
        select(InboxPackage.id, Partner.name, InboxPackage.received_on)
        .join(Partner, Partner.id == InboxPackage.partner_id)
        .where(InboxPackage.imported_on.is_(None))
        .order_by(InboxPackage.received_on, InboxPackage.id)
    )
    return [{"id": i, "partner": name, "received_on": on} for i, name, on in rows]


def import_delivered(
    *, session: Session, actor: str, inbox_id: uuid.UUID, identity: Any, assign: str | None
) -> receiving.Imported:
    """Import a delivered package with every check of a file import; its stored bytes are then dropped."""
    row = session.get(InboxPackage, inbox_id)
    if row is None or row.data is None:
        raise NotFound()
    done = receiving.import_referral(session=session, actor=actor, data=row.data, identity=identity, assign=assign)
    row.data = None
    row.imported_on = crypto.settings_of(session).today()
    session.flush()
    return done
