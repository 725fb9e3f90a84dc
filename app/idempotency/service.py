"""A write sent twice acts once: the API's Idempotency-Key and the web forms' one-time tokens.

Idempotency-Key: the same key from the same user within 24 h gets the first answer, not a second write.

The key is claimed by inserting its row in the request's own unit of work, before the route does its
work, and the answer (status, id, record code) is written to that row before the same commit: the
write and the memory of it exist together or not at all. A second request with the same key while the
first is still running waits on the row's primary key; when the first commits, the second's insert
fails, the request is replayed (``app/web/flow.py``) and finds the answer. A failed request (4xx, 5xx)
rolls its claim back, so retrying it runs it again.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.errors import Conflict, Invalid
from app.idempotency.models import FormToken, IdempotencyKey

HEADER = "Idempotency-Key"
WINDOW = timedelta(hours=24)
MAX_KEY = 255
_CLAIM = "idempotency_claim"


class Replayed(Exception):
    """The first answer to this key, to be sent again instead of acting twice."""

    def __init__(self, status: int, answer_id: str | None, answer_code: str | None) -> None:
        super().__init__("replayed")
        self.status, self.answer_id, self.answer_code = status, answer_id, answer_code

    def body(self) -> dict[str, object]:
        return {"id": self.answer_id, "code": self.answer_code, "replayed": True}


def _hash(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def request_hash(method: str, path: str, body: bytes) -> str:
    return _hash(method.encode(), path.encode(), body)


def claim(session: Session, *, user_id: uuid.UUID, key: str, fingerprint: str) -> None:
    """Claim ``key`` for this request, or raise ``Replayed`` with the first answer to it."""
    if not 1 <= len(key) <= MAX_KEY or not key.isascii() or not key.isprintable():
        raise Invalid(
            [{"loc": ["header", HEADER], "msg": "use 1-255 printable ASCII characters", "type": "value_error"}]
        )
    key_hash = _hash(user_id.bytes, key.encode())
    now = datetime.now(UTC)
    row = session.get(IdempotencyKey, (user_id, key_hash))
    if row is not None:
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
        if created >= now - WINDOW:
            if row.request_hash != fingerprint:
                raise Invalid(
                    [{"loc": ["header", HEADER], "msg": "already used for a different request", "type": "value_error"}]
                )
            raise Replayed(row.status or 200, row.answer_id, row.answer_code)
        session.delete(row)  # older than the window: the key is free again
        session.flush()
    row = IdempotencyKey(user_id=user_id, key_hash=key_hash, request_hash=fingerprint, created_at=now)
    session.add(row)
    session.flush()  # a rival holding the same key waits here until it commits, then this fails and replays
    session.info[_CLAIM] = row


def remember(session: Session, *, status: int, body: bytes) -> None:
    """Write the answer to the request's claimed key, if it claimed one (before the commit)."""
    row = session.info.pop(_CLAIM, None)
    if row is None:
        return
    answer: object = None
    try:
        answer = json.loads(body) if body else None
    except ValueError:
        answer = None
    row.status = status
    if isinstance(answer, dict):
        row.answer_id = str(answer["id"])[:64] if answer.get("id") is not None else None
        row.answer_code = str(answer["code"])[:32] if answer.get("code") is not None else None
    session.flush()


def release(session: Session) -> None:
    """Give back the key this request claimed, so the same request may be sent again under it.

    For a request that committed part of its work before it failed (a delivery commits its package before
    it posts it): its claim is committed too, without an answer, and would otherwise replay as a success.
    """
    row = session.info.pop(_CLAIM, None)
    if row is not None:
        session.delete(row)
        session.flush()


# --- web forms -------------------------------------------------------------------------------------

FORM_FIELD = "form_once"
FORM_TOKEN_DAYS = 2  # spent tokens are forgotten after this; a page kept open longer may be sent again


class AlreadySubmitted(Conflict):
    """The form was sent before (a double click, a reload of a POST): its first submission stands."""

    @classmethod
    def default_detail(cls) -> str:
        return "this form was already sent"


def new_form_token() -> str:
    """A token for one rendering of a form (random; nothing is written until it is spent)."""
    return secrets.token_urlsafe(18)


def spend_form_token(session: Session, token: str | None) -> None:
    """Spend a form's one-time token in the request's unit of work; 409 if it was spent before.

    Two submissions at once both insert the same key: the second waits for the first to commit, fails,
    is replayed (``app/web/flow.py``) and finds the token spent. A form without the field (a page from
    before this guard) is let through.
    """
    if not token:
        return
    if len(token) > 64:
        raise Invalid.field(FORM_FIELD, "invalid form token")
    token_hash = _hash(b"form", token.encode())
    if session.get(FormToken, token_hash) is not None:
        raise AlreadySubmitted()
    now = datetime.now(UTC)
    session.execute(delete(FormToken).where(FormToken.spent_at < now - timedelta(days=FORM_TOKEN_DAYS)))
    session.add(FormToken(token_hash=token_hash, spent_at=now))
    session.flush()


def forget_expired(session: Session, *, now: datetime | None = None) -> int:
    """Delete the Idempotency-Key answers past their 24 h and the form tokens past their days; how many.

    A key past its window is already free to be used again (``claim`` replaces it), so this only keeps
    the tables from growing with every write ever made. ``helpline purge`` runs it.
    """
    now = now or datetime.now(UTC)
    keys = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - WINDOW))
    tokens = session.execute(delete(FormToken).where(FormToken.spent_at < now - timedelta(days=FORM_TOKEN_DAYS)))
    return int(getattr(keys, "rowcount", 0) or 0) + int(getattr(tokens, "rowcount", 0) or 0)
