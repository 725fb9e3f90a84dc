"""The signed document format, pinned by a known-answer vector: a fixed key and body give fixed bytes."""

from __future__ import annotations

import base64

import pyrage
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.referrals import package

SEED = bytes(range(32))
# The public key of that seed, as published with the Ed25519 reference vectors.
PUBLIC_HEX = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
BODY = {
    "format": "helpline-referral",
    "version": 1,
    "code": "R-7K3Q-9M",
    "from": "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",
    "to": "age1qqqq",
    "sent_on": "2026-12-01",
    "fields": {"full_name": "Имя Фамилия", "needs": ["evacuation", "shelter"]},
}
# What is signed, written out by hand: prefix, 2-byte context length, context, sorted tight UTF-8 JSON.
SIGNED = (
    b"helpline-sig-v1\x00\x11helpline-referral"
    + '{"code":"R-7K3Q-9M","fields":{"full_name":"Имя Фамилия","needs":["evacuation","shelter"]},'
    '"format":"helpline-referral","from":"A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",'
    '"sent_on":"2026-12-01","to":"age1qqqq","version":1}'.encode()
)
SIGNATURE_HEX = (
    "cb7957efbcefe2f16789e9ac3235227b08fad47e37c277037f9c1e8462ca3275"
    "45a0b9ab0a2e4feb72ea82f56aea97dff9696cd6240909488fd724c8ef57b70e"
)


def test_known_answer_vector() -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    assert key.public_key().public_bytes_raw().hex() == PUBLIC_HEX
    assert base64.b64decode(BODY["from"]).hex() == PUBLIC_HEX  # type: ignore[arg-type]
    assert package.signed_bytes("helpline-referral", package.canonical(BODY)) == SIGNED
    doc = package.sign(BODY, key=key)
    assert base64.b64decode(doc["signature"]).hex() == SIGNATURE_HEX
    key.public_key().verify(bytes.fromhex(SIGNATURE_HEX), SIGNED)  # the vector holds on its own
    assert package.signature_valid(doc, verify_key=BODY["from"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"fields": {"full_name": "Имя Фамилиь", "needs": ["evacuation", "shelter"]}},
        {"to": "age1other"},
        {"code": "R-7K3Q-9N"},
        {"format": package.STATUS},  # a package is not an answer: the context is part of what is signed
        {"extra": "added"},
    ],
)
def test_any_change_breaks_the_signature(change: dict) -> None:
    doc = package.sign(BODY, key=Ed25519PrivateKey.from_private_bytes(SEED))
    assert not package.signature_valid({**doc, **change}, verify_key=BODY["from"])  # type: ignore[arg-type]


def test_another_key_does_not_verify() -> None:
    doc = package.sign(BODY, key=Ed25519PrivateKey.generate())
    assert not package.signature_valid(doc, verify_key=BODY["from"])  # type: ignore[arg-type]


def test_decrypt_checks_the_signed_recipient() -> None:
    ours, theirs = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    meant_for_them = package.sign({**BODY, "to": str(theirs.to_public())}, key=key)
    with pytest.raises(package.PackageError, match="not encrypted to this organisation"):
        package.decrypt(
            package.encrypt(meant_for_them, recipient=str(theirs.to_public())), identity=ours, expect=package.PACKAGE
        )
    with pytest.raises(package.PackageError, match="signed for another organisation"):
        package.decrypt(
            package.encrypt(meant_for_them, recipient=str(ours.to_public())), identity=ours, expect=package.PACKAGE
        )
    ok = package.sign({**BODY, "to": str(ours.to_public())}, key=key)
    opened = package.decrypt(
        package.encrypt(ok, recipient=str(ours.to_public())), identity=ours, expect=package.PACKAGE
    )
    assert opened == ok
    with pytest.raises(package.PackageError, match="not a helpline-referral-status"):
        package.decrypt(package.encrypt(ok, recipient=str(ours.to_public())), identity=ours, expect=package.STATUS)
