"""The signing key and the per-purpose keys at their edges: what counts as a public key, which signatures
verify, and that each purpose key is HKDF of the provider's root under its documented label.

Expected keys are derived here with cryptography's HKDF and Ed25519 directly, not through app.crypto.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from app.crypto import purpose, signing
from app.crypto.errors import UnknownKeyError
from app.crypto.keyring import EnvKeyProvider, FileKeyProvider, Keyring

SEED = bytes(range(32))
RAW_PUBLIC = Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
PUBLIC = base64.b64encode(RAW_PUBLIC).decode("ascii")


def _hkdf(root: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(root)


def test_a_public_key_is_base64_of_exactly_32_raw_bytes() -> None:
    assert signing.is_public_key(PUBLIC) is True
    assert signing.is_public_key(base64.b64encode(RAW_PUBLIC[:31]).decode()) is False
    assert signing.is_public_key(base64.b64encode(RAW_PUBLIC + b"\0").decode()) is False
    assert signing.is_public_key(PUBLIC[:-1] + "!") is False  # not base64
    assert signing.is_public_key(PUBLIC[:20] + "\n" + PUBLIC[20:]) is False  # no stray characters
    assert signing.is_public_key("") is False


def test_the_public_half_is_base64_of_the_raw_ed25519_key() -> None:
    assert signing.public_key_of(Ed25519PrivateKey.from_private_bytes(SEED)) == PUBLIC


def test_a_signature_verifies_only_for_its_key_context_and_message() -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    signature = signing.sign_with(key, context="referral", message=b"package")
    # What was signed is the documented layout, checked with the primitive itself.
    key.public_key().verify(signature, b"helpline-sig-v1\x00\x08referralpackage")
    assert signing.verify(PUBLIC, context="referral", message=b"package", signature=signature) is True
    assert signing.verify(PUBLIC, context="backup", message=b"package", signature=signature) is False
    assert signing.verify(PUBLIC, context="referral", message=b"packagE", signature=signature) is False
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert signing.verify(PUBLIC, context="referral", message=b"package", signature=flipped) is False
    assert signing.verify(PUBLIC[:-1] + "!", context="referral", message=b"package", signature=signature) is False
    short = base64.b64encode(RAW_PUBLIC[:31]).decode()
    assert signing.verify(short, context="referral", message=b"package", signature=signature) is False
    # A key with stray characters is refused, as is_public_key refuses it, not read around them.
    padded = PUBLIC[:20] + "*" + PUBLIC[20:]
    assert signing.verify(padded, context="referral", message=b"package", signature=signature) is False


def test_the_context_length_is_part_of_what_is_signed() -> None:
    # Without the length, ("ab", b"c...") and ("abc", b"...") would sign the same bytes.
    assert signing.signed_bytes("ab", b"cd") != signing.signed_bytes("abc", b"d")
    assert signing.signed_bytes("", b"x") == b"helpline-sig-v1\x00\x00x"
    assert signing.signed_bytes("r" * 300, b"") == b"helpline-sig-v1\x01\x2c" + b"r" * 300
    # The length is an unsigned 16-bit count: contexts up to 65535 bytes.
    assert signing.signed_bytes("r" * 40_000, b"") == b"helpline-sig-v1\x9c\x40" + b"r" * 40_000


def test_each_purpose_key_is_hkdf_of_the_root_under_its_label(tmp_path: Path) -> None:
    provider = FileKeyProvider.create(tmp_path / "keys.json")
    kid, root = provider.integrity_root()
    keyring = Keyring(provider)
    for name, label in (
        (purpose.AUDIT, b"helpline purpose audit-chain"),
        (purpose.SEAL, b"helpline purpose security-columns"),
        (purpose.SIGNING, b"helpline purpose signing-ed25519"),
    ):
        assert purpose.purpose_key(keyring, name) == (kid, _hkdf(root, label))
        assert purpose.purpose_key(keyring, name, root_id=kid) == (kid, _hkdf(root, label))
    seed = _hkdf(root, b"helpline purpose signing-ed25519")
    expected = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert signing.public_key(keyring) == base64.b64encode(expected).decode("ascii")


def test_a_root_named_by_id_answers_apart_from_the_current_one() -> None:
    old, new = bytes([7]) * 32, bytes([9]) * 32
    env = ",".join(base64.b64encode(k).decode() for k in (new, old))  # rotation puts the new key first
    old_kid, new_kid = EnvKeyProvider.kek_id_for(old), EnvKeyProvider.kek_id_for(new)
    label = b"helpline purpose audit-chain"
    current = (old_kid, _hkdf(_hkdf(old, b"helpline integrity root"), label))
    named = (new_kid, _hkdf(_hkdf(new, b"helpline integrity root"), label))
    # Asked for by id first, then as the current one: each question keeps its own answer.
    keyring = Keyring(EnvKeyProvider(env))
    assert purpose.purpose_key(keyring, purpose.AUDIT, root_id=new_kid) == named
    assert purpose.purpose_key(keyring, purpose.AUDIT) == current
    assert purpose.purpose_key(keyring, purpose.AUDIT, root_id=new_kid) == named
    assert purpose.purpose_key(keyring, purpose.AUDIT, root_id=old_kid) == current
    # And the other way round.
    keyring = Keyring(EnvKeyProvider(env))
    assert purpose.purpose_key(keyring, purpose.AUDIT) == current
    assert purpose.purpose_key(keyring, purpose.AUDIT, root_id=new_kid) == named
    assert purpose.purpose_key(keyring, purpose.AUDIT) == current
    with pytest.raises(UnknownKeyError):
        purpose.purpose_key(keyring, purpose.AUDIT, root_id=99)


class CountingProvider(EnvKeyProvider):
    """The real environment provider, counting how often the integrity root is asked for."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.asked: list[int | None] = []

    def integrity_root(self, root_id: int | None = None) -> tuple[int, bytes]:
        self.asked.append(root_id)
        return super().integrity_root(root_id)


def test_the_root_is_asked_for_once_per_root_and_purpose() -> None:
    """With Vault every question is a round trip, and the audit chain asks at every append."""
    env = base64.b64encode(bytes([5]) * 32).decode()
    provider = CountingProvider(env)
    keyring = Keyring(provider)
    kid, key = purpose.purpose_key(keyring, purpose.AUDIT)
    for _ in range(3):
        assert purpose.purpose_key(keyring, purpose.AUDIT) == (kid, key)
        assert purpose.purpose_key(keyring, purpose.AUDIT, root_id=kid) == (kid, key)
    assert provider.asked == [None]
    purpose.purpose_key(keyring, purpose.SEAL)  # another purpose is another key
    assert provider.asked == [None, None]
    # Asked for by id first, the answer also serves that id later, but not "the current root".
    provider = CountingProvider(env)
    keyring = Keyring(provider)
    for _ in range(2):
        assert purpose.purpose_key(keyring, purpose.AUDIT, root_id=kid) == (kid, key)
    assert provider.asked == [kid]
    for _ in range(2):
        assert purpose.purpose_key(keyring, purpose.AUDIT) == (kid, key)
    assert provider.asked == [kid, None]
