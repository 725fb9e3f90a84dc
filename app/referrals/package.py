"""The two documents that cross between organisations: a referral package and a status answer.

Both are one JSON object, signed, then age-encrypted (``pyrage``, X25519) to the receiving organisation:

    {"format": "helpline-referral" | "helpline-referral-status", "version": 1,
     "code": referral code, "from": sender's verify key, "to": receiver's age recipient,
     ...document fields..., "signature": base64(Ed25519 signature)}

The signature covers ``"helpline-sig-v1" | len(context) (2 bytes, big-endian) | context | canonical body``,
where the body is the object without ``signature`` as sorted-key, separator-tight UTF-8 JSON and the
context is the format name — so a status answer can never be passed off as a package, nor either as a
signature made for another use (a backup). ``to`` is inside what is signed: a partner who decrypts a
package cannot re-encrypt it to a third organisation without the mismatch being seen on import.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import pyrage

from app.crypto import signing
from app.errors import HelplineError

PACKAGE = "helpline-referral"
STATUS = "helpline-referral-status"
VERSION = 1
# A package holds a handful of short fields; anything far bigger is not one of ours.
MAX_BYTES = 1_000_000


class PackageError(HelplineError):
    """A package or answer that cannot be accepted; the message says why in one line.

    The reason is a fixed text, a partner's name, a code or a date given as values (``HelplineError``), so the
    upload page shows it in the visitor's language. Every reason is in the catalog (``SERVICE_MESSAGES`` in
    ``app/referrals/pages.py``; ``tests/referrals/test_refusal_reasons.py`` holds the two together).
    """

    status_code = 422


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# What is actually signed: the message bound to the use it was signed for (the organisation's one format).
signed_bytes = signing.signed_bytes


def sign(body: dict[str, Any], *, key: signing.SigningKey) -> dict[str, Any]:
    """The body with its ``signature`` added (Ed25519 is deterministic: same key and body, same bytes)."""
    if "signature" in body:
        raise ValueError("the body is already signed")
    signature = signing.sign_with(key, context=str(body["format"]), message=canonical(body))
    return {**body, "signature": base64.b64encode(signature).decode("ascii")}


def signature_valid(doc: dict[str, Any], *, verify_key: str) -> bool:
    """True only if ``doc`` carries ``verify_key``'s signature over everything else in it."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    try:
        signature = base64.b64decode(str(doc.get("signature", "")), validate=True)
    except (ValueError, binascii.Error):
        return False
    return signing.verify(verify_key, context=str(body.get("format")), message=canonical(body), signature=signature)


VERIFY_KEY_LABEL = "verify-key"


def valid_verify_key(value: str) -> str:
    """A verify key (base64 of 32 bytes), or PackageError; the ``verify-key`` label that ``helpline keys public``
    and the partner page print before it may come with it, as a whole line copied is pasted."""
    value = value.strip()
    if value.lower().startswith(VERIFY_KEY_LABEL):
        value = value[len(VERIFY_KEY_LABEL) :].strip()
    if not signing.is_public_key(value):
        raise PackageError("the verify key is not an Ed25519 public key (base64 of 32 bytes)") from None
    return value


def valid_recipient(value: str) -> str:
    """An age public key (``age1…``), or PackageError."""
    value = value.strip()
    try:
        pyrage.x25519.Recipient.from_str(value)
    except Exception:
        raise PackageError("the age recipient is not an age public key (age1...)") from None
    return value


def encrypt(doc: dict[str, Any], *, recipient: str) -> bytes:
    """The signed document, age-encrypted to one recipient."""
    return bytes(pyrage.encrypt(canonical(doc), [pyrage.x25519.Recipient.from_str(recipient)]))


def identity_from_file(text: str) -> Any:
    """The first age identity (``AGE-SECRET-KEY-1…``) in an identity file's text, or PackageError."""
    for line in text.splitlines():
        if line.strip().startswith("AGE-SECRET-KEY-1"):
            try:
                return pyrage.x25519.Identity.from_str(line.strip())
            except Exception:
                break
    raise PackageError("the identity file holds no age identity (a line starting AGE-SECRET-KEY-1)")


def decrypt(data: bytes, *, identity: Any, expect: str) -> dict[str, Any]:
    """Decrypt with this organisation's identity and parse; the signature is still unchecked."""
    if len(data) > MAX_BYTES:
        raise PackageError("refused: far too large to be a referral package")
    try:
        plain = pyrage.decrypt(data, [identity])
    except Exception:
        raise PackageError("refused: not encrypted to this organisation's identity, or damaged") from None
    try:
        doc = json.loads(bytes(plain).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise PackageError("refused: the content is not a referral document") from None
    if not isinstance(doc, dict) or doc.get("format") != expect or doc.get("version") != VERSION:
        raise PackageError("refused: not a {format} document of version {version}", format=expect, version=VERSION)
    for name in ("code", "from", "to", "signature"):
        if not isinstance(doc.get(name), str):
            raise PackageError("refused: the document has no {name}", name=name)
    recipient = str(identity.to_public())
    if doc["to"] != recipient:
        raise PackageError("refused: the document was signed for another organisation and re-encrypted")
    return doc
