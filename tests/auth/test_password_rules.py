"""Which new passwords are refused and why, and the two verifications of every sign-in.

The refusals are written out here by hand; "iloveyou" and "password" are on the bundled list of
common passwords.
"""

from __future__ import annotations

import pytest

from app.auth import passwords

SHORT = "use at least 12 characters"
LONG = "use at most 1024 characters"
COMMON = "this password is on a list of common or breached passwords; choose another"
REPEATS = "this password repeats too few characters; choose another"
NAME = "the password must not contain the user name"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("abcdefghijk", SHORT),  # 11 characters
        ("abcdefghijkl", None),  # exactly 12
        ("abcd" * 256, None),  # exactly 1024
        ("abcd" * 256 + "e", LONG),
    ],
)
def test_length_limits_are_inclusive(password: str, why: str | None) -> None:
    assert passwords.weakness(password, username="amina", min_length=12) == why


@pytest.mark.parametrize(
    "password",
    [
        "iloveyou",  # as listed
        "ILoveYou",  # in another case
        "i love you",  # with spaces
        "iloveyou!",  # with the usual decorations at the ends
        "iloveyou1",
        " .iloveyou1! ",
        "Pass Word!",
    ],
)
def test_common_passwords_are_refused_however_they_are_dressed(password: str) -> None:
    assert passwords.weakness(password, username="", min_length=8) == COMMON


def test_a_password_merely_containing_a_common_one_is_allowed() -> None:
    assert passwords.weakness("my iloveyou garden", username="", min_length=8) is None


def test_too_few_distinct_characters_are_refused_and_four_are_enough() -> None:
    assert passwords.weakness("abcabcabcabc", username="", min_length=8) == REPEATS
    assert passwords.weakness("ABCABCABCABC", username="", min_length=8) == REPEATS  # case folded first
    assert passwords.weakness("abcdabcdabcd", username="", min_length=8) is None


def test_the_user_name_may_not_appear_in_any_case() -> None:
    assert passwords.weakness("river AMINA stone", username="Amina", min_length=8) == NAME
    assert passwords.weakness("river amina stone", username="amina", min_length=8) == NAME
    assert passwords.weakness("river amira stone", username="amina", min_length=8) is None
    assert passwords.weakness("river amina stone", username="", min_length=8) is None


def test_verify_pair_tells_the_password_from_the_duress_password() -> None:
    real, duress = passwords.hash_password("real password here"), passwords.hash_password("duress password here")
    assert passwords.verify_pair(real, duress, "real password here") == (True, False)
    assert passwords.verify_pair(real, duress, "duress password here") == (False, True)
    assert passwords.verify_pair(real, duress, "neither of them") == (False, False)
    assert passwords.verify_pair(real, None, "real password here") == (True, False)
    assert passwords.verify_pair(None, None, "real password here") == (False, False)
