"""Keys and records over their life: the functions the command line (and other domains) call.

Shredding and retention run in the caller's unit of work; rotation, re-encryption, backup and restore
manage their own transactions (see ``rotation`` and ``backup``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from app.config import Settings
from app.crypto.keyring import Keyring, get_keyring
from app.lifecycle.models import KeyRotation
from app.lifecycle.retention import PurgePlan, plan_purge, purge
from app.lifecycle.rotation import reencrypt, rotate, uses_by_kek
from app.lifecycle.shred import ShredInfo, scrub_storage, shred_case, shred_contact, shred_info

__all__ = [
    "KekStatus",
    "KeyStatus",
    "PurgePlan",
    "ShredInfo",
    "key_status",
    "plan_purge",
    "purge",
    "reencrypt",
    "rotate",
    "scrub_storage",
    "shred_case",
    "shred_contact",
    "shred_info",
]


@dataclass(frozen=True)
class KekStatus:
    kek_id: int
    primary: bool
    held: bool  # False: the database has keys under it, but the provider no longer holds it
    data_keys: int
    index_keys: int


@dataclass
class KeyStatus:
    provider: str
    keks: list[KekStatus] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)


def key_status(*, engine: Engine, settings: Settings, keyring: Keyring | None = None) -> KeyStatus:
    """KEK ids, which is primary, and how many wrapped keys each holds; never any key material."""
    provider = (keyring or get_keyring(settings)).provider
    with engine.connect() as conn:
        used = uses_by_kek(conn)
        unfinished = sorted(set(conn.scalars(select(KeyRotation.kind).where(KeyRotation.finished_at.is_(None))).all()))
    held = set(provider.kek_ids())
    primary = provider.primary_kek_id()
    status = KeyStatus(provider=provider.name, unfinished=unfinished)
    for kek_id in sorted(held | set(used), key=lambda k: (k != primary, k)):
        keys, roots = used.get(kek_id, (0, 0))
        status.keks.append(KekStatus(kek_id, kek_id == primary, kek_id in held, keys, roots))
    return status
