"""Argon2id password hashing with OWASP's recommended parameters, and TOTP with replay refusal."""

from __future__ import annotations

import functools
import hmac
import secrets
import time
from importlib import resources

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP Password Storage Cheat Sheet: Argon2id, m=19 MiB, t=2, p=1.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16)
# Verified against when the username is unknown, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))

TOTP_ISSUER = "Helpline"
TOTP_STEP = 30


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True if the password matches; with no stored hash, spends the same time and says False."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def verify_pair(stored: str | None, duress: str | None, password: str) -> tuple[bool, bool]:
    """(matches the password, matches the duress password): always two verifications, whatever is stored.

    Every sign-in spends the same time whether the name exists, has a duress password or not.
    """
    return verify_password(stored, password), verify_password(duress, password)


@functools.cache
def _common() -> frozenset[str]:
    text = resources.files("app.auth").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def weakness(password: str, *, username: str, min_length: int) -> str | None:
    """Why a new password is refused (too short, too long, common or breached, the name), or None."""
    if len(password) < min_length:
        return f"use at least {min_length} characters"
    if len(password) > 1024:
        return "use at most 1024 characters"
    folded = password.casefold()
    squeezed = "".join(folded.split())
    if folded in _common() or squeezed in _common() or folded.strip(" !.1") in _common():
        return "this password is on a list of common or breached passwords; choose another"
    if len(set(folded)) < 4:
        return "this password repeats too few characters; choose another"
    if username and username.casefold() in folded:
        return "the password must not contain the user name"
    return None


def new_password() -> str:
    """A random password of about 120 bits, typeable by a person."""
    return "-".join(secrets.token_urlsafe(6) for _ in range(4))


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret, interval=TOTP_STEP).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def match_totp(secret: str, code: str, *, last_step: int, now: float | None = None) -> int | None:
    """The time step a code belongs to (one step of clock drift allowed), or None.

    A step at or before ``last_step`` is refused, so a code seen once cannot be replayed.
    """
    code = code.strip().replace(" ", "")
    # isascii: str.isdigit() admits other scripts' digits, which compare_digest refuses with a TypeError.
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret, interval=TOTP_STEP)
    current = int((now if now is not None else time.time()) // TOTP_STEP)
    found = None
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.at(step * TOTP_STEP), code) and step > last_step:
            found = step
    return found
