"""How one audit entry links to the one before: the format that ``audit verify`` and checkpoints rely on.

    link = HMAC-SHA256(audit key, "helpline-audit-v2\\n" || canonical JSON of the entry)

The canonical JSON has sorted keys, no spaces, ASCII only, and these members: ``seq``, ``at`` (UTC,
to the second, ``YYYY-MM-DDTHH:MM:SS``), ``actor``, ``action``, ``target`` (string or null), ``detail``
(the stored JSON text), ``prev`` (the previous entry's link, 64 zeros for the first) and ``kid`` (the
id of the integrity root the audit key derives from, see ``app.crypto.purpose``). The link is stored
as lowercase hex. The audit key never reaches the database, so someone who can write to it can delete
entries but cannot recompute a chain that verifies; a checkpoint kept outside (``helpline audit head``)
also catches a deleted tail.

Chains written before the key existed used plain SHA-256 over the same JSON without ``kid``
(``legacy_hash``); ``helpline migrate`` re-links them once and records that in the chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

GENESIS = "0" * 64
PREFIX = b"helpline-audit-v2\n"


def _utc(at: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were written as UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def canonical(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str | None,
    detail: str,
    prev: str,
    kid: int | None = None,
) -> bytes:
    doc: dict[str, object] = {
        "seq": seq,
        "at": _utc(at).strftime("%Y-%m-%dT%H:%M:%S"),
        "actor": actor,
        "action": action,
        "target": target,
        "detail": detail,
        "prev": prev,
    }
    if kid is not None:
        doc["kid"] = kid
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def keyed_link(
    key: bytes, *, kid: int, seq: int, at: datetime, actor: str, action: str, target: str | None, detail: str, prev: str
) -> str:
    """The HMAC link of an entry under the audit key of root ``kid``."""
    body = canonical(seq=seq, at=at, actor=actor, action=action, target=target, detail=detail, prev=prev, kid=kid)
    return hmac.new(key, PREFIX + body, hashlib.sha256).hexdigest()


def legacy_hash(*, seq: int, at: datetime, actor: str, action: str, target: str | None, detail: str, prev: str) -> str:
    """The unkeyed SHA-256 link of chains written before the audit key (read only, to re-link them)."""
    body = canonical(seq=seq, at=at, actor=actor, action=action, target=target, detail=detail, prev=prev)
    return hashlib.sha256(body).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("ascii", "replace"), b.encode("ascii", "replace"))
