"""The field envelope: round trips, binding to its place, tampering, wrong keys."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.crypto import cipher
from app.crypto.errors import DecryptionError

PLACE = {"table": "contact", "column": "notes"}


def _ids() -> tuple[uuid.UUID, uuid.UUID]:
    return uuid.uuid4(), uuid.uuid4()


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=2000))
def test_any_unicode_round_trips(text: str) -> None:
    row, subject = _ids()
    dek = cipher.new_key()
    blob = cipher.seal(text, dek=dek, key_id=7, row_id=row, subject_id=subject, **PLACE)
    if len(text.encode("utf-8")) >= 8:  # shorter strings can occur in random bytes by chance
        assert text.encode("utf-8") not in blob
    assert cipher.open_(blob, dek=dek, row_id=row, subject_id=subject, **PLACE) == text


def test_envelope_layout_is_version_key_id_nonce_body_tag() -> None:
    row, subject = _ids()
    blob = cipher.seal("Ахмед", dek=cipher.new_key(), key_id=0xA1B2C3D4, row_id=row, subject_id=subject, **PLACE)
    assert blob[0] == cipher.VERSION
    assert blob[1:5] == bytes.fromhex("A1B2C3D4")
    assert len(blob) == 1 + 4 + 12 + len("Ахмед".encode()) + 16


def test_same_value_sealed_twice_gives_different_ciphertexts() -> None:
    row, subject = _ids()
    dek = cipher.new_key()
    a = cipher.seal("same", dek=dek, key_id=1, row_id=row, subject_id=subject, **PLACE)
    b = cipher.seal("same", dek=dek, key_id=1, row_id=row, subject_id=subject, **PLACE)
    assert a[5:17] != b[5:17], "nonces must never repeat"
    assert a != b


@pytest.mark.parametrize(
    "moved",
    [
        {"row_id": uuid.uuid4()},
        {"subject_id": uuid.uuid4()},
        {"column": "alias"},
        {"table": "evacuation_case"},
    ],
    ids=["other-row", "other-subject", "other-column", "other-table"],
)
def test_a_ciphertext_moved_elsewhere_fails(moved: dict) -> None:
    row, subject = _ids()
    dek = cipher.new_key()
    blob = cipher.seal("secret", dek=dek, key_id=1, row_id=row, subject_id=subject, **PLACE)
    where = {"row_id": row, "subject_id": subject, **PLACE, **moved}
    with pytest.raises(DecryptionError):
        cipher.open_(blob, dek=dek, **where)


@settings(max_examples=100, deadline=None)
@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_flipped_bit_fails(position: int, bit: int) -> None:
    row, subject = _ids()
    dek = cipher.new_key()
    blob = bytearray(cipher.seal("Магомед, +79123456789", dek=dek, key_id=1, row_id=row, subject_id=subject, **PLACE))
    blob[position % len(blob)] ^= 1 << bit
    with pytest.raises(DecryptionError):
        cipher.open_(bytes(blob), dek=dek, row_id=row, subject_id=subject, **PLACE)


def test_wrong_key_fails_with_a_message_holding_no_secret() -> None:
    row, subject = _ids()
    dek, other = cipher.new_key(), cipher.new_key()
    blob = cipher.seal("канарейка-секрет", dek=dek, key_id=1, row_id=row, subject_id=subject, **PLACE)
    with pytest.raises(DecryptionError) as info:
        cipher.open_(blob, dek=other, row_id=row, subject_id=subject, **PLACE)
    message = str(info.value)
    assert "канарейка" not in message
    assert dek.hex() not in message and other.hex() not in message
    assert "contact.notes" in message


def test_unknown_version_is_rejected_before_any_crypto() -> None:
    row, subject = _ids()
    dek = cipher.new_key()
    blob = bytearray(cipher.seal("x", dek=dek, key_id=1, row_id=row, subject_id=subject, **PLACE))
    blob[0] = 9
    with pytest.raises(DecryptionError, match="unknown ciphertext version 9"):
        cipher.open_(bytes(blob), dek=dek, row_id=row, subject_id=subject, **PLACE)


def test_length_prefixing_is_unambiguous() -> None:
    assert cipher.length_prefixed(b"ab", b"c") != cipher.length_prefixed(b"a", b"bc")


def test_wrapped_dek_is_bound_to_subject_and_kek() -> None:
    kek, dek, subject = cipher.new_key(), cipher.new_key(), uuid.uuid4()
    aad = cipher.dek_aad(subject_id=subject, key_id=1, kek_id=5)
    wrapped = cipher.wrap_key(kek, dek, aad)
    assert cipher.unwrap_key(kek, wrapped, aad) == dek
    with pytest.raises(DecryptionError):
        cipher.unwrap_key(kek, wrapped, cipher.dek_aad(subject_id=uuid.uuid4(), key_id=1, kek_id=5))
    with pytest.raises(DecryptionError):
        cipher.unwrap_key(kek, wrapped, cipher.dek_aad(subject_id=subject, key_id=1, kek_id=6))
