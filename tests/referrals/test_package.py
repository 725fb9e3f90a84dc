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
PUBLIC_B64 = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
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


# A fixed age identity and a package encrypted to it once: decrypting it must give exactly this document.
AGE_IDENTITY = "AGE-SECRET-KEY-1CNZUPYD2JNWLNDNP3YF883K845W4ZMWZ89KV35DFQ8F0SCA826XS0ZCU64"
AGE_RECIPIENT = "age1uenaffa597q8q3jf5mz7vt9s6ddnqllus7cdxq9q8nqsazgucezsd7sc27"
SEALED_DOC = {
    "format": "helpline-referral",
    "version": 1,
    "code": "R-7K3Q-9M",
    "from": "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",
    "to": AGE_RECIPIENT,
    "sent_on": "2026-12-01",
    "fields": {"full_name": "Имя Фамилия"},
    "signature": "RqnYQ8BujaS7mPz7TSNr3cYKvVVzxn3St9/GTE+UfgtCCWrKFoZGUVqFbujGjnnGpz4fl3itqMhEkPxHA79GDQ==",
}
SEALED = base64.b64decode(
    "YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBWSkxRaUZ1UGhWcVhzL280NXVFVFdvOGRyWnFhalpZOXJHbUg0SkR2Q0JrClJY"
    "V2JHc1o0cUNmMFY3d2sxSkpaQkNianlkSlVDZTVWNkJWMDd3U0p6cGMKLT4gby1ncmVhc2UKcEVzZFQ4R0dYa1N2Z3JVR1lrcVN0QnZw"
    "dktXZXllTjlSaU1tZkpJcWpabE92R0w4aWwvMzRxbm43Qy84VEQzVApJSm5WT0pwWHNhWnhuWTdLYzhsdXF3Ci0tLSBZWEgyRDZXMmlL"
    "NEVHblpCSjRZM2RGRWhCck00Y3pJclU4VElxQVdqc3VzCrAvtKfoLIhPJUgTJDHmdV4jFRYUU/SEUCs/8C3CYdQIwj631CIKX36171cX"
    "3kn/XSJ76mTXqVF+F9aVblFUscrD5CWjfZRbZrdJKH8Iu+MLK6jeHcvPlN24v87vxQAoVpRM4CBwZCCo0jcDdZdUukoipwcbT+vhWqKO"
    "QnRciEM6baQk8iPW5GxxFBEB7Dp/7F+jw9dG4cwpV6aoL08AU1K4hxHJaGOTNFHCmu61n/ieXnCDS2fMqkfIubmDupGq/5qj4BNJj2Jq"
    "qybrg8hF9K8XaPGiv0DS+L392G7vobEk5VTRx3KNhWFvX2VckOUVD75dx7/e55iknl9PYYjIWjQEURWLKFu11k1hwT0EwN7jgSjgdnV6"
    "cVVnuNwl4HaLcOPzVaupeyhnSlXseh0jTrA73UzBT1NtxebksBDgmfzGIYbvDbrGG6juYt4LqucyJwf7YCa0jxtlV5IjNtFZf2wmhgL6"
    "2Qu8qi89nEiyyIZZyGrslXTSbUUtQRdVOfQV7fTP5ULeIg=="
)
# What that package holds once decrypted: the signed document as tight, sorted, unescaped UTF-8 JSON.
SEALED_PLAIN = (
    '{"code":"R-7K3Q-9M","fields":{"full_name":"Имя Фамилия"},"format":"helpline-referral",'
    '"from":"A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=","sent_on":"2026-12-01",'
    '"signature":"RqnYQ8BujaS7mPz7TSNr3cYKvVVzxn3St9/GTE+UfgtCCWrKFoZGUVqFbujGjnnGpz4fl3itqMhEkPxHA79GDQ==",'
    '"to":"age1uenaffa597q8q3jf5mz7vt9s6ddnqllus7cdxq9q8nqsazgucezsd7sc27","version":1}'
).encode()


def _identity() -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.from_str(AGE_IDENTITY)


def _sealed(doc: object) -> bytes:
    """``doc`` as JSON (any shape), age-encrypted to the fixed identity without going through ``sign``."""
    import json

    return bytes(pyrage.encrypt(json.dumps(doc).encode(), [pyrage.x25519.Recipient.from_str(AGE_RECIPIENT)]))


def test_known_sealed_package_decrypts_to_its_document() -> None:
    assert bytes(pyrage.decrypt(SEALED, [_identity()])) == SEALED_PLAIN
    assert package.decrypt(SEALED, identity=_identity(), expect=package.PACKAGE) == SEALED_DOC
    assert package.signature_valid(SEALED_DOC, verify_key=SEALED_DOC["from"])  # type: ignore[arg-type]


def test_encrypt_seals_the_canonical_bytes_to_the_recipient_only() -> None:
    data = package.encrypt(SEALED_DOC, recipient=AGE_RECIPIENT)
    assert data.startswith(b"age-encryption.org/v1\n-> X25519 ")
    assert bytes(pyrage.decrypt(data, [_identity()])) == SEALED_PLAIN
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(data, [pyrage.x25519.Identity.generate()])


def test_canonical_is_sorted_tight_unescaped_utf8() -> None:
    assert package.canonical({"b": "é", "a": [1, 2]}) == '{"a":[1,2],"b":"é"}'.encode()


def test_signing_twice_is_refused_and_the_signature_is_ascii_base64() -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    doc = package.sign(BODY, key=key)
    assert doc == {**BODY, "signature": base64.b64encode(bytes.fromhex(SIGNATURE_HEX)).decode()}
    assert "signature" not in BODY
    with pytest.raises(ValueError, match=r"^the body is already signed$"):
        package.sign(doc, key=key)


@pytest.mark.parametrize(
    "signature",
    [
        None,  # no signature at all
        "",
        "not base64!",
        # the genuine signature with a character base64 decoders skip unless told to validate
        base64.b64encode(bytes.fromhex(SIGNATURE_HEX)).decode()[:20]
        + "!"
        + base64.b64encode(bytes.fromhex(SIGNATURE_HEX)).decode()[20:],
        base64.b64encode(bytes.fromhex(SIGNATURE_HEX)).decode() + "\n",
    ],
)
def test_a_missing_or_malformed_signature_is_not_valid(signature: str | None) -> None:
    doc = {**BODY} if signature is None else {**BODY, "signature": signature}
    assert not package.signature_valid(doc, verify_key=BODY["from"])  # type: ignore[arg-type]


def test_keys_are_checked_and_trimmed() -> None:
    assert package.valid_verify_key("  " + PUBLIC_B64 + "\n") == PUBLIC_B64
    # The whole line `helpline keys public` (and the partner page) prints, label and all, as it is pasted.
    assert package.valid_verify_key(f"verify-key {PUBLIC_B64}\n") == PUBLIC_B64
    assert package.valid_verify_key(f" Verify-Key\t{PUBLIC_B64}") == PUBLIC_B64
    with pytest.raises(package.PackageError):
        package.valid_verify_key("verify-key")
    with pytest.raises(package.PackageError):
        package.valid_verify_key(f"verify {PUBLIC_B64}")
    assert package.valid_recipient(" " + AGE_RECIPIENT + "\n") == AGE_RECIPIENT
    with pytest.raises(
        package.PackageError, match=r"^the verify key is not an Ed25519 public key \(base64 of 32 bytes\)$"
    ):
        package.valid_verify_key(AGE_RECIPIENT)
    with pytest.raises(package.PackageError, match=r"^the age recipient is not an age public key \(age1\.\.\.\)$"):
        package.valid_recipient(PUBLIC_B64)
    assert package.PackageError("x").status_code == 422


def test_the_identity_is_the_first_age_secret_key_line() -> None:
    text = f"# created: 2026-12-01\n# public key: {AGE_RECIPIENT}\n  {AGE_IDENTITY}  \n"
    assert str(package.identity_from_file(text).to_public()) == AGE_RECIPIENT
    none = r"^the identity file holds no age identity \(a line starting AGE-SECRET-KEY-1\)$"
    with pytest.raises(package.PackageError, match=none):
        package.identity_from_file(f"# {AGE_IDENTITY}\n")
    # A damaged first key is not silently passed over for a later one.
    with pytest.raises(package.PackageError, match=none):
        package.identity_from_file(f"AGE-SECRET-KEY-1BROKEN\n{AGE_IDENTITY}\n")


def test_size_limit_is_one_megabyte() -> None:
    assert package.MAX_BYTES == 1_000_000
    with pytest.raises(package.PackageError, match=r"^refused: far too large to be a referral package$"):
        package.decrypt(b"x" * 1_000_001, identity=_identity(), expect=package.PACKAGE)
    with pytest.raises(
        package.PackageError, match=r"^refused: not encrypted to this organisation's identity, or damaged$"
    ):
        package.decrypt(b"x" * 1_000_000, identity=_identity(), expect=package.PACKAGE)


def test_content_that_is_not_a_document_is_refused() -> None:
    not_doc = r"^refused: the content is not a referral document$"
    for plain in (b"\xff\xfe", b"{not json"):
        data = bytes(pyrage.encrypt(plain, [pyrage.x25519.Recipient.from_str(AGE_RECIPIENT)]))
        with pytest.raises(package.PackageError, match=not_doc):
            package.decrypt(data, identity=_identity(), expect=package.PACKAGE)


@pytest.mark.parametrize(
    "doc",
    [
        [SEALED_DOC],
        {**SEALED_DOC, "format": package.STATUS},
        {**SEALED_DOC, "version": 2},
        {k: v for k, v in SEALED_DOC.items() if k != "version"},
    ],
)
def test_another_format_or_version_is_refused(doc: object) -> None:
    with pytest.raises(package.PackageError, match=r"^refused: not a helpline-referral document of version 1$"):
        package.decrypt(_sealed(doc), identity=_identity(), expect=package.PACKAGE)


@pytest.mark.parametrize("name", ["code", "from", "to", "signature"])
def test_each_required_string_must_be_there(name: str) -> None:
    for doc in ({k: v for k, v in SEALED_DOC.items() if k != name}, {**SEALED_DOC, name: 7}):
        with pytest.raises(package.PackageError, match=rf"^refused: the document has no {name}$"):
            package.decrypt(_sealed(doc), identity=_identity(), expect=package.PACKAGE)


def test_a_document_signed_for_another_recipient_is_refused() -> None:
    doc = {**SEALED_DOC, "to": "age1" + "q" * 58}
    with pytest.raises(
        package.PackageError, match=r"^refused: the document was signed for another organisation and re-encrypted$"
    ):
        package.decrypt(_sealed(doc), identity=_identity(), expect=package.PACKAGE)
