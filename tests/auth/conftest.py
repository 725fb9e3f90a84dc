"""Helpers for the sign-in tests: small settings, a wrong code, one attempt that returns its outcome."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.auth import signin
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring


@pytest.fixture
def quick(session, settings):
    """Small delays, so the growth can be seen without waiting for it."""
    fast = settings.model_copy(update={"sign_in_delay_ms": 10, "sign_in_delay_cap_ms": 80})
    crypto.bind(session, settings=fast, keyring=get_keyring(settings))
    return fast


def wrong_code(account) -> str:
    now = account.totp().now()
    return "000000" if now != "000000" else "111111"


def attempt(session, name, password, otp):
    """Admitted, or the Refused raised (with its delay)."""
    try:
        return signin.authenticate(session, username=name, password=password, otp=otp)
    except signin.Refused as exc:
        return exc


def audit_of(session, target: str) -> list[tuple[str, str, dict]]:
    """(actor, action, detail) of the entries about ``target``, oldest first (the transaction committed first)."""
    session.commit()
    rows = session.execute(
        select(AuditEntry.actor, AuditEntry.action, AuditEntry.detail)
        .where(AuditEntry.target == target)
        .order_by(AuditEntry.seq)
    )
    return [(actor, action, json.loads(detail)) for actor, action, detail in rows]
