"""This organisation's referral keys: the Ed25519 signing key, and the public half partners check with.

Every signature in this domain goes through ``organisation_signing_key``; the private key is derived
when needed from the key provider and never written to the database or to disk.

Derivation: ``HKDF-SHA256(root, info="helpline purpose signing-ed25519")`` as a 32-byte Ed25519 seed —
the same label the per-purpose keys of the key provider use. Until the provider offers a dedicated
integrity root, ``root`` is the provider's *primary* key-encryption key, so ``helpline keys rotate``
changes the verify key too: after a rotation, send partners the new line of ``helpline keys public``.
The Vault provider never hands out a key, so referral signing needs the file or env provider for now.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from app.crypto.errors import CryptoError
from app.crypto.keyring import Keyring

SIGNING = "signing-ed25519"


def _derive(material: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(material)


def organisation_signing_key(keyring: Keyring) -> Ed25519PrivateKey:
    """The organisation's Ed25519 signing key, derived from the key provider (see the module docstring)."""
    provider = keyring.provider
    local_kek = getattr(provider, "_kek", None)
    if local_kek is None:
        raise CryptoError(f"referral signing needs the file or env key provider (this is {provider.name})")
    root = local_kek(provider.primary_kek_id())
    seed = _derive(root, b"helpline purpose " + SIGNING.encode("ascii"))
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def verify_key(keyring: Keyring) -> str:
    """The public half, base64 of the 32 raw bytes: what partners check this organisation's packages with."""
    return base64.b64encode(public_bytes(organisation_signing_key(keyring))).decode("ascii")
