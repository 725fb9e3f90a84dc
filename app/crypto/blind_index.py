"""Blind indexes: truncated HMACs that answer "seen this handle before?" without storing it.

Why truncated: a full HMAC pins a handle to one row for anyone who ever holds the index key. Keeping
only N bits puts every value in a bucket shared with others, so a leaked index value names nobody; a
look-up fetches the bucket, decrypts the few candidates and compares them in constant time.
N follows the CipherSweet rule for R rows: 2 <= R / 2**N <= sqrt(R). With the default N = 12 that
holds for roughly 8,192 to 16,777,216 rows (e.g. 10k-50k contacts give 2.4-12 rows a bucket);
an office with far fewer rows may set HELPLINE_INDEX_BITS lower.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from hashlib import sha256

import phonenumbers
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PHONE_CHARS = re.compile(r"^\+?[\d\s\-().]{7,24}$")
_SPACES = re.compile(r"\s+")


def normalise_handle(value: str, *, default_region: str = "RU") -> str:
    """Phone numbers to E.164; any other handle NFKC-casefolded with '@' and spaces removed."""
    text = unicodedata.normalize("NFKC", value).strip()
    if _PHONE_CHARS.match(text) and sum(ch.isdigit() for ch in text) >= 7:
        try:
            number = phonenumbers.parse(text, default_region)
        except phonenumbers.NumberParseException:
            number = None
        if number is not None and phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return _SPACES.sub("", text.casefold()).replace("@", "")


def derive_index_key(root: bytes, *, column: str, epoch: int) -> bytes:
    """A separate key per indexed column and epoch, so buckets of two columns cannot be joined."""
    info = b"helpline blind index|" + column.encode() + b"|" + str(epoch).encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(root)


def bucket(key: bytes, normalised: str, *, bits: int) -> int:
    """The first ``bits`` bits of HMAC-SHA256(key, value), as a non-negative integer."""
    mac = HMAC(key, hashes.SHA256())
    mac.update(normalised.encode("utf-8"))
    head = int.from_bytes(mac.finalize()[:4], "big")
    return head >> (32 - bits)


def same_value(a: str, b: str) -> bool:
    """Constant-time comparison of two normalised values (after decrypting a bucket's candidates)."""
    return hmac.compare_digest(sha256(a.encode("utf-8")).digest(), sha256(b.encode("utf-8")).digest())
