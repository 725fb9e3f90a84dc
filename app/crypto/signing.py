"""The organisation's Ed25519 signing key, from the key provider (see ``app.crypto.purpose``).

Backups are signed with it; referral packages to partner organisations use the same key, so a partner
checks them against the one public half this installation publishes (``public_key``). Every signature
is over ``"helpline-sig-v1" | len(context) | context | message`` so a signature made for one use (a
backup) can never be replayed as another (a referral).
"""

from __future__ import annotations

import base64
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from app.crypto.keyring import Keyring
from app.crypto.purpose import SIGNING, purpose_key

PREFIX = b"helpline-sig-v1"


def signed_bytes(context: str, message: bytes) -> bytes:
    """What is actually signed: the message bound to the use it was signed for."""
    label = context.encode("ascii")
    return PREFIX + struct.pack(">H", len(label)) + label + message


# Other domains name the key type through this module, so only app/crypto touches the primitives.
SigningKey = Ed25519PrivateKey


def private_key(keyring: Keyring) -> SigningKey:
    _, seed = purpose_key(keyring, SIGNING)
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_of(key: SigningKey) -> str:
    """A signing key's public half, base64 of its 32 raw bytes."""
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def public_key(keyring: Keyring) -> str:
    """The public half, base64 (32 raw bytes): what others check this installation's signatures with."""
    return public_key_of(private_key(keyring))


def is_public_key(value: str) -> bool:
    """True if ``value`` is base64 of an Ed25519 public key."""
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(value, validate=True))
    except ValueError:
        return False
    return True


def sign_with(key: SigningKey, *, context: str, message: bytes) -> bytes:
    """An Ed25519 signature by ``key`` over ``message`` for ``context``."""
    return key.sign(signed_bytes(context, message))


def sign(keyring: Keyring, *, context: str, message: bytes) -> bytes:
    """An Ed25519 signature by this installation over ``message`` for ``context``."""
    return sign_with(private_key(keyring), context=context, message=message)


def verify(public: str, *, context: str, message: bytes, signature: bytes) -> bool:
    """True only if ``signature`` is ``public``'s over ``message`` for ``context``."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public, validate=True))
        key.verify(signature, signed_bytes(context, message))
    except (InvalidSignature, ValueError):
        return False
    return True
