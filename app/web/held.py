"""Nothing typed is lost to an ended session: a form posted after it ended is held, sealed, for minutes.

When a session has ended (idle limit, or "Lock now") and its form is posted, the fields are sealed under
a data key of their own in ``held_form``, bound to the user whose session it was and to a random token
in an HttpOnly cookie of this browser. After that user signs in again, ``/held`` shows the form once
more for review and saving; then its key is destroyed. Nothing is kept in the browser's storage, and a
held form no one comes back for is shredded once ``held_form_minutes`` have passed.

Only the session's own user can get it back: the binding comes from the ended session on the server,
never from anything the browser sends, so a cross-site post cannot plant a form for someone.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.models import User
from app.crypto import service as crypto
from app.web.models import HeldForm

COOKIE = "helpline_held"
TABLE = "held_form"
_ID = r"[0-9a-fA-F-]{36}"
# The forms worth keeping: what a caseworker types. Sign-in, language and admin forms are not.
KEEPABLE = re.compile(
    rf"^/(contacts/new|contacts/{_ID}/(notes|edit|outcome)|cases|cases/{_ID}/(notes|edit|transitions))$"
)
SKIPPED_FIELDS = ("csrf_token", "keep_action")
# Fields a person typed, shown again as text to check; the rest (choices, dates) travel hidden.
SHOWN = ("alias", "handle", "notes", "text", "note", "full_name", "location", "family_situation")
MAX_FIELDS = 64


def keepable(action: str) -> bool:
    return bool(KEEPABLE.match(action))


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _sweep(session: Session) -> None:
    for row in session.scalars(select(HeldForm).where(HeldForm.expires_at <= _now())):
        crypto.shred_subject(session, subject_id=row.id)
        session.delete(row)


def hold(session: Session, *, user_id: uuid.UUID, action: str, pairs: list[tuple[str, str]]) -> str | None:
    """Seal a posted form for ``user_id``; returns the cookie token, or None if it is not worth keeping."""
    kept = [(k, v) for k, v in pairs if k not in SKIPPED_FIELDS][:MAX_FIELDS]
    user = session.get(User, user_id)
    if user is None or not keepable(action) or not any(v.strip() for _, v in kept):
        return None
    _sweep(session)
    held_id = crypto.new_subject_id()
    key = crypto.create_subject_key(session, subject_id=held_id)
    payload = crypto.seal_field(session, json.dumps(kept), key=key, table=TABLE, column="payload", row_id=held_id)
    assert payload is not None
    token = secrets.token_urlsafe(32)
    minutes = crypto.settings_of(session).held_form_minutes
    session.add(
        HeldForm(
            id=held_id,
            user_id=user.id,
            token_hash=_hash(token),
            action=action,
            payload_ct=payload,
            expires_at=_now() + timedelta(minutes=minutes),
        )
    )
    session.flush()
    audit.record(session, actor=user.username, action="form.held", target=action)
    return token


def waiting(session: Session, *, token: str | None) -> bool:
    """Whether a fresh held form is behind ``token`` (whoever it belongs to)."""
    if not token:
        return False
    row = session.scalar(select(HeldForm.expires_at).where(HeldForm.token_hash == _hash(token)))
    return row is not None and (row if row.tzinfo else row.replace(tzinfo=UTC)) > _now()


def take(session: Session, *, token: str | None, user: User) -> tuple[str, list[tuple[str, str]]] | None:
    """The held form behind ``token`` if it is ``user``'s and still fresh, destroyed as it is handed back."""
    if not token:
        return None
    _sweep(session)
    row = session.scalar(select(HeldForm).where(HeldForm.token_hash == _hash(token)))
    if row is None or row.user_id != user.id:
        return None
    plain = crypto.open_field(session, row.payload_ct, table=TABLE, column="payload", row_id=row.id, subject_id=row.id)
    action = row.action
    crypto.shred_subject(session, subject_id=row.id)
    session.delete(row)
    session.flush()
    audit.record(session, actor=user.username, action="form.returned", target=action)
    return action, [(str(k), str(v)) for k, v in json.loads(plain or "[]")]
