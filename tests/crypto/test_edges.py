"""Edges of the envelope and of handle normalisation that round trips never reach."""

from __future__ import annotations

import uuid

import pytest

from app.crypto import blind_index, cipher
from app.crypto.errors import DecryptionError

PLACE = {"table": "contact", "column": "notes", "row_id": uuid.UUID(int=1), "subject_id": uuid.UUID(int=2)}


@pytest.mark.parametrize("length", [0, 1, 4, 5, 16, cipher.MIN_LENGTH - 1])
def test_a_blob_shorter_than_the_envelope_is_a_decryption_error(length: int) -> None:
    """Not struct.error or IndexError: callers catch DecryptionError to report a damaged value."""
    blob = bytes([cipher.VERSION]) * length
    with pytest.raises(DecryptionError, match="^ciphertext too short$"):
        cipher.open_(blob, dek=cipher.new_key(), **PLACE)
    with pytest.raises(DecryptionError, match="^ciphertext too short$"):
        cipher.envelope_key_id(blob)


def test_an_envelope_of_exactly_the_minimum_length_is_parsed() -> None:
    """Header, nonce and tag with an empty body: a well-formed envelope of the empty string."""
    dek = cipher.new_key()
    blob = cipher.seal("", dek=dek, key_id=3, **PLACE)
    assert len(blob) == cipher.MIN_LENGTH == 1 + 4 + 12 + 16
    assert cipher.envelope_key_id(blob) == 3
    assert cipher.open_(blob, dek=dek, **PLACE) == ""


def test_a_wrong_kek_message_names_the_failure_and_nothing_secret() -> None:
    kek, dek = cipher.new_key(), cipher.new_key()
    aad = cipher.dek_aad(subject_id=uuid.UUID(int=5), key_id=1, kek_id=2)
    wrapped = cipher.wrap_key(kek, dek, aad)
    with pytest.raises(DecryptionError) as info:
        cipher.unwrap_key(cipher.new_key(), wrapped, aad)
    assert str(info.value) == "cannot unwrap data key: wrong key-encryption key or altered"
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_the_dek_aad_binds_the_data_key_id() -> None:
    kek, dek, subject = cipher.new_key(), cipher.new_key(), uuid.UUID(int=9)
    wrapped = cipher.wrap_key(kek, dek, cipher.dek_aad(subject_id=subject, key_id=1, kek_id=2))
    with pytest.raises(DecryptionError):
        cipher.unwrap_key(kek, wrapped, cipher.dek_aad(subject_id=subject, key_id=2, kek_id=2))


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        # Seven digits is the shortest text tried as a phone number; six stays text, punctuation and all.
        ("1234567", "+71234567"),
        ("123-4567", "+71234567"),
        ("123-456", "123-456"),
        ("123456", "123456"),
        # Letters around digits: a handle, never a phone number (and never loses its digits).
        ("ivan89123456789", "ivan89123456789"),
        ("Ivan 8912 345 67 89", "ivan89123456789"),
        # A number no numbering plan knows is kept as typed, spaces dropped, instead of failing intake.
        ("+999 123 4567", "+9991234567"),
        ("+999 (12) 345-67-89", "+999(12)345-67-89"),
        # Phone numbers from other countries keep their own code; the default region only fills a gap.
        ("+49 30 1234567", "+49301234567"),
        ("8 (912) 345-67-89", "+79123456789"),
        ("\u00a0+7\u00a0912\u00a0345\u00a067\u00a089\u00a0", "+79123456789"),
        ("@Ivan Petrov", "ivanpetrov"),
        ("iván@", "iván"),
    ],
)
def test_normalise_handle_edges(raw: str, normalised: str) -> None:
    assert blind_index.normalise_handle(raw) == normalised


def test_the_default_region_is_used_for_national_numbers() -> None:
    assert blind_index.normalise_handle("030 1234567", default_region="DE") == "+49301234567"
    assert blind_index.normalise_handle("8 912 345 67 89") == "+79123456789"


def test_same_value_compares_whole_values() -> None:
    assert blind_index.same_value("+79123456789", "+79123456789")
    assert not blind_index.same_value("+79123456789", "+79123456788")
    assert not blind_index.same_value("ivan", "ivan ")
    assert not blind_index.same_value("", "x")
