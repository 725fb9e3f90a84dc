"""Passwords and TOTP at their edges: the argon2 cost, the unknown-name path, the code window and its format.

TOTP codes here come from RFC 6238's own test vector and an independent implementation of the RFC
below, not from pyotp, which the code under test uses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import urllib.parse

import argon2
import pytest

from app.auth import passwords

# The cost itself is under test here: argon2id at Helpline's real parameters, not the suite's cheap ones.
pytestmark = pytest.mark.production_argon2

# RFC 6238, appendix B: the SHA-1 secret "12345678901234567890"; at T = 59 s the 8-digit code is 94287082.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_TIME = 59
RFC_CODE = "287082"  # the same HOTP value truncated to 6 digits
STEP = 30


def _rfc_code(secret_b32: str, step: int) -> str:
    """RFC 4226 HOTP of a time step, 6 digits."""
    mac = hmac.new(base64.b32decode(secret_b32), struct.pack(">Q", step), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    return f"{(int.from_bytes(mac[offset : offset + 4], 'big') & 0x7FFFFFFF) % 1_000_000:06d}"


def test_the_independent_code_matches_the_rfc_vector() -> None:
    assert _rfc_code(RFC_SECRET, RFC_TIME // STEP) == RFC_CODE


def test_a_code_is_accepted_in_its_own_step_and_names_it() -> None:
    assert passwords.match_totp(RFC_SECRET, RFC_CODE, last_step=0, now=RFC_TIME) == 1


@pytest.mark.parametrize(("drift", "accepted"), [(-30, True), (30, True), (-60, False), (60, False), (90, False)])
def test_one_step_of_clock_drift_either_way_and_no_more(drift: int, accepted: bool) -> None:
    """``drift`` is how far the server clock is from the moment the code was made."""
    base = 1_111_111_109  # RFC 6238's second vector time
    code = _rfc_code(RFC_SECRET, base // STEP)
    step = passwords.match_totp(RFC_SECRET, code, last_step=0, now=base + drift)
    assert step == (base // STEP if accepted else None)


def test_a_code_at_or_before_the_last_used_step_is_a_replay() -> None:
    base = 1_111_111_109
    code = _rfc_code(RFC_SECRET, base // STEP)
    assert passwords.match_totp(RFC_SECRET, code, last_step=base // STEP, now=base) is None
    assert passwords.match_totp(RFC_SECRET, code, last_step=base // STEP + 1, now=base) is None
    assert passwords.match_totp(RFC_SECRET, code, last_step=base // STEP - 1, now=base) == base // STEP


@pytest.mark.parametrize("typed", ["287 082", " 287082 ", "287 08 2", "\t287082\n"])
def test_spaces_in_a_typed_code_are_ignored(typed: str) -> None:
    assert passwords.match_totp(RFC_SECRET, typed, last_step=0, now=RFC_TIME) == 1


@pytest.mark.parametrize("typed", ["28708", "2870822", "28708a", "２８７０８２", "٢٨٧٠٨٢", "", "287-082", "-287082"])
def test_malformed_codes_are_refused_without_an_error(typed: str) -> None:
    assert passwords.match_totp(RFC_SECRET, typed, last_step=0, now=RFC_TIME) is None


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The hashes argon2 verifies against, in order. The real verification runs; this only records."""
    hashes: list[bytes] = []
    real = argon2.low_level.verify_secret

    def recording(hash: bytes, secret: bytes, type: argon2.Type) -> bool:
        hashes.append(hash)
        return real(hash, secret, type)

    # PasswordHasher.verify calls the name it imported into its own module.
    monkeypatch.setattr(argon2._password_hasher, "verify_secret", recording)
    return hashes


def test_passwords_use_argon2id_with_the_owasp_parameters() -> None:
    stored = passwords.hash_password("correct horse battery staple")
    params = argon2.extract_parameters(stored)
    assert params.type is argon2.Type.ID
    assert (params.time_cost, params.memory_cost, params.parallelism) == (2, 19 * 1024, 1)
    assert (params.hash_len, params.salt_len) == (32, 16)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_verify_password_accepts_only_the_right_password() -> None:
    stored = passwords.hash_password("correct horse battery staple")
    assert passwords.verify_password(stored, "correct horse battery staple") is True
    assert passwords.verify_password(stored, "correct horse battery stapl") is False
    assert passwords.verify_password("not a hash", "anything") is False


def test_an_unknown_name_costs_a_real_argon2_verification(seen: list[bytes]) -> None:
    """With no stored hash the same argon2 work is done as for a real account, so timing names nobody."""
    assert passwords.verify_password(None, "whatever the attacker typed") is False
    assert passwords.verify_password("", "whatever the attacker typed") is False
    assert len(seen) == 2
    real_params = argon2.extract_parameters(passwords.hash_password("x" * 12))
    for used in seen:
        assert argon2.extract_parameters(used.decode()) == real_params
    # The dummy is a hash of a random secret, so no typed password can open the no-account path.
    assert not passwords.verify_password(None, "")


def test_sign_in_with_an_unknown_name_runs_argon2_like_a_known_one(session, factory, seen: list[bytes]) -> None:
    from app.auth import signin
    from app.errors import HelplineError

    user = factory.user("caseworker")
    counts = []
    for name in ("nobody-by-this-name", user.username):
        before = len(seen)
        with pytest.raises(HelplineError):
            signin.authenticate(session, username=name, password="a wrong password", otp="000000")
        counts.append(len(seen) - before)
    assert counts[0] == counts[1] >= 1
    assert {str(argon2.extract_parameters(h.decode())) for h in seen} == {
        str(argon2.extract_parameters(passwords.hash_password("x" * 12)))
    }


def test_generated_passwords_are_four_groups_of_six_random_bytes() -> None:
    made = {passwords.new_password() for _ in range(20)}
    assert len(made) == 20
    for password in made:
        # token_urlsafe(6) is 8 characters; four of them and three dashes. (A group may hold a '-' itself.)
        assert len(password) == 4 * 8 + 3
        assert password[8] == password[17] == password[26] == "-"


def test_the_otpauth_uri_names_the_account_and_the_issuer() -> None:
    uri = urllib.parse.urlparse(passwords.totp_uri(RFC_SECRET, "amina"))
    query = urllib.parse.parse_qs(uri.query)
    assert (uri.scheme, uri.netloc, urllib.parse.unquote(uri.path)) == ("otpauth", "totp", "/Helpline:amina")
    assert query["secret"] == [RFC_SECRET] and query["issuer"] == ["Helpline"]
    assert query.get("period", ["30"]) == ["30"]
