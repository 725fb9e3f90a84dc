"""Per-purpose secrets from the key provider: one root, one derived key per use, none in the database.

Every secret that proves something was written by this installation — the audit chain's MACs, the
seals over security columns, the organisation's Ed25519 signing key for backups and referrals — is
``HKDF-SHA256(root, info="helpline purpose <name>")`` over the provider's *integrity root*:

- file provider: a random 256-bit root kept in the key file beside (not among) the KEKs;
- env provider: derived with HKDF from the *last* key in ``HELPLINE_MASTER_KEY`` (rotation puts new
  keys first and keeps old ones after them, so the last one outlives KEK rotations);
- Vault: Vault's own HMAC under a transit key of its own, so the root is computed inside Vault.

Rotating the KEK (``keys rotate``) changes none of them. Each root has an id; whatever a derived key
protects records that id, so a later root can take over while older records still verify.
"""

from __future__ import annotations

from app.crypto.keyring import Keyring, derive

AUDIT = "audit-chain"
SEAL = "security-columns"
SIGNING = "signing-ed25519"


def purpose_key(keyring: Keyring, purpose: str, *, root_id: int | None = None) -> tuple[int, bytes]:
    """(root id, 32-byte key) for one purpose; ``root_id=None`` means the current root."""
    cache = keyring.purpose_keys
    if root_id is None:
        current = cache.get(("", purpose))
        if current is not None:
            return current
    else:
        held = cache.get((str(root_id), purpose))
        if held is not None:
            return held
    found_id, root = keyring.provider.integrity_root(root_id)
    value = (found_id, derive(root, b"helpline purpose " + purpose.encode("ascii")))
    cache[(str(found_id), purpose)] = value
    if root_id is None:
        cache[("", purpose)] = value
    return value
