"""This organisation's referral keys: the Ed25519 signing key, and the public half partners check with.

Every signature in this domain goes through ``organisation_signing_key``: the organisation's one signing
key from the key provider (``app.crypto.signing``, derived from the provider's integrity root, so
``helpline keys rotate`` leaves it unchanged). It is never written to the database or to disk.
"""

from __future__ import annotations

from app.crypto import signing
from app.crypto.keyring import Keyring


def organisation_signing_key(keyring: Keyring) -> signing.SigningKey:
    """The organisation's Ed25519 signing key (the same one its backups are signed with)."""
    return signing.private_key(keyring)


def verify_key(keyring: Keyring) -> str:
    """The public half, base64 of the 32 raw bytes: what partners check this organisation's packages with."""
    return signing.public_key(keyring)
