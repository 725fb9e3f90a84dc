"""Known-answer vectors for every byte format Helpline writes that must still open years later.

Field envelopes, their associated data, wrapped data keys, blind-index keys and buckets, and the ids
derived from keys are stored in the database and in backups. A change to any of them leaves every value
already written unreadable or unfindable, while round-trip tests keep passing. So the expected bytes are
written out here, from fixed keys, ids and nonces, and each is also rebuilt in the test from the layout
documented in docs/SECURITY.md with the primitives called directly (AESGCM, stdlib HMAC/HKDF), so a
vector cannot silently be the code's own output. A failing vector means a format changed: that needs a
new version number and a migration, never an edit of the vector.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import uuid

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.crypto import blind_index, cipher, keyring
from app.crypto import service as crypto

DEK = bytes(range(32))
KEK = bytes(range(0x40, 0x60))
INDEX_ROOT = bytes(range(0x80, 0xA0))
NONCE = bytes.fromhex("000102030405060708090a0b")
ROW = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")
SUBJECT = uuid.UUID("f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f")
# Above 2**31, so a signed packing of the key id would fail or differ.
KEY_ID = 0xA1B2C3D4
KEK_ID = 0xF00DFACE
PLAINTEXT = "Ахмед, +79123456789"

FIELD_AAD = bytes.fromhex(
    "0000000868656c706c696e65"  # len 8, "helpline"
    "0000000101"  # len 1, version 1
    "00000007636f6e74616374"  # len 7, "contact"
    "000000056e6f746573"  # len 5, "notes"
    "0000001000112233445566778899aabbccddeeff"  # len 16, row id
    "00000010f0e1d2c3b4a5968778695a4b3c2d1e0f"  # len 16, subject id
    "00000004a1b2c3d4"  # len 4, key id
)
FIELD_ENVELOPE = bytes.fromhex(
    "01"  # version
    "a1b2c3d4"  # key id
    "000102030405060708090a0b"  # nonce
    "9792079e155912ae5df5bbab9ade415cb1e5b301c64c67451f540727653442393ec1f2061439dd19"  # ciphertext | tag
)
DEK_AAD = bytes.fromhex(
    "0000000364656b"  # len 3, "dek"
    "00000010f0e1d2c3b4a5968778695a4b3c2d1e0f"  # len 16, subject id
    "00000004a1b2c3d4"  # len 4, data-key id
    "00000004f00dface"  # len 4, KEK id
)
WRAPPED_DEK = bytes.fromhex(
    "000102030405060708090a0b"  # nonce
    "3a046e7b738942a7ca1b8ac9b4e0c2b493d53f1a7859bb44f639f28d5dac774124c6a2a9db8b2ba72035d92d61366e01"
)
INDEX_KEYS = {
    ("contact.handle", 1): "3c144fa87d7df028cfb313899a4429558e61969f3b9b85c01c97dd0fbf341365",
    ("flagged_handle.handle", 1): "c6052b3bcf60d862455d103c3aa06dc38532b2f6a41fbb356d640e1e92b7143f",
    ("contact.handle", 2): "c5953ae15fb5535093a530609f7a4cf14cca38368d235b748a8cd6fb775bf879",
}
# Buckets under the ("contact.handle", 1) key, at the default width and two others.
BUCKETS = {
    ("+79123456789", 12): 3397,
    ("+79123456789", 16): 54358,
    ("+79123456789", 32): 3562429395,
    ("ivan_petrov", 12): 1720,
    ("ivan_petrov", 16): 27529,
    ("ivan_petrov", 32): 1804179592,
}


def _by_hand_length_prefixed(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


@pytest.fixture
def fixed_nonce(monkeypatch: pytest.MonkeyPatch) -> None:
    """seal/wrap_key draw their nonce from os.urandom; pin it so the output is a known answer."""

    def urandom(n: int) -> bytes:
        assert n == len(NONCE)
        return NONCE

    monkeypatch.setattr(cipher.os, "urandom", urandom)


def test_field_aad_is_the_documented_layout() -> None:
    by_hand = _by_hand_length_prefixed(
        b"helpline", b"\x01", b"contact", b"notes", ROW.bytes, SUBJECT.bytes, KEY_ID.to_bytes(4, "big")
    )
    assert by_hand == FIELD_AAD
    aad = cipher.field_aad(version=1, table="contact", column="notes", row_id=ROW, subject_id=SUBJECT, key_id=KEY_ID)
    assert aad == FIELD_AAD


def test_field_envelope_known_answer(fixed_nonce: None) -> None:
    by_hand = b"\x01" + KEY_ID.to_bytes(4, "big") + NONCE + AESGCM(DEK).encrypt(NONCE, PLAINTEXT.encode(), FIELD_AAD)
    assert by_hand == FIELD_ENVELOPE
    sealed = cipher.seal(
        PLAINTEXT, dek=DEK, key_id=KEY_ID, table="contact", column="notes", row_id=ROW, subject_id=SUBJECT
    )
    assert sealed == FIELD_ENVELOPE
    assert cipher.VERSION == 1


def test_a_stored_envelope_still_opens() -> None:
    opened = cipher.open_(FIELD_ENVELOPE, dek=DEK, table="contact", column="notes", row_id=ROW, subject_id=SUBJECT)
    assert opened == PLAINTEXT
    assert cipher.envelope_key_id(FIELD_ENVELOPE) == KEY_ID


def test_dek_aad_is_the_documented_layout() -> None:
    by_hand = _by_hand_length_prefixed(b"dek", SUBJECT.bytes, struct.pack(">I", KEY_ID), struct.pack(">I", KEK_ID))
    assert by_hand == DEK_AAD
    assert cipher.dek_aad(subject_id=SUBJECT, key_id=KEY_ID, kek_id=KEK_ID) == DEK_AAD


def test_wrapped_data_key_known_answer(fixed_nonce: None) -> None:
    assert NONCE + AESGCM(KEK).encrypt(NONCE, DEK, DEK_AAD) == WRAPPED_DEK
    assert cipher.wrap_key(KEK, DEK, DEK_AAD) == WRAPPED_DEK
    assert cipher.unwrap_key(KEK, WRAPPED_DEK, DEK_AAD) == DEK


def test_key_rotation_rewraps_into_the_same_format(fixed_nonce: None) -> None:
    """rewrap_local has its own AESGCM loop; its output must be the format unwrap_key reads."""
    old_aad = cipher.dek_aad(subject_id=SUBJECT, key_id=KEY_ID, kek_id=7)
    old = NONCE + AESGCM(bytes(32)).encrypt(NONCE, DEK, old_aad)
    keks = {7: bytes(32), KEK_ID: KEK}
    [rewrapped] = keyring.rewrap_local(keks.__getitem__, [(7, old, old_aad, DEK_AAD)], KEK_ID)
    assert rewrapped == WRAPPED_DEK


def _hkdf_sha256(root: bytes, info: bytes) -> bytes:
    """RFC 5869 with no salt (a zero-filled salt of hash length) and one output block."""
    prk = hmac.new(bytes(32), root, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


@pytest.mark.parametrize(("column", "epoch"), list(INDEX_KEYS))
def test_blind_index_keys_known_answer(column: str, epoch: int) -> None:
    expected = bytes.fromhex(INDEX_KEYS[(column, epoch)])
    assert _hkdf_sha256(INDEX_ROOT, f"helpline blind index|{column}|{epoch}".encode()) == expected
    assert blind_index.derive_index_key(INDEX_ROOT, column=column, epoch=epoch) == expected


@pytest.mark.parametrize(("value", "bits"), list(BUCKETS))
def test_blind_index_buckets_known_answer(value: str, bits: int) -> None:
    key = bytes.fromhex(INDEX_KEYS[("contact.handle", 1)])
    mac = hmac.new(key, value.encode(), hashlib.sha256).digest()
    assert int.from_bytes(mac, "big") >> (256 - bits) == BUCKETS[(value, bits)]
    assert blind_index.bucket(key, value, bits=bits) == BUCKETS[(value, bits)]


def test_index_root_subject_ids_are_fixed() -> None:
    """The index root key is wrapped to this id; a different id would leave every epoch's root unopenable."""
    assert crypto.index_subject(1) == uuid.UUID("f6e60c18-2ef6-5321-b116-6958b1717556")
    assert crypto.index_subject(2) == uuid.UUID("fcf80d45-7616-530e-985e-ef67f658c6cd")
    assert crypto.index_subject(1) == uuid.uuid5(uuid.NAMESPACE_OID, "helpline-index-root-1")


def test_env_provider_kek_ids_are_fixed() -> None:
    """HELPLINE_MASTER_KEY ids are derived, not stored; a change would orphan every wrapped data key."""
    assert keyring.EnvKeyProvider.kek_id_for(KEK) == 226337573
    assert int.from_bytes(hashlib.sha256(b"helpline kek id" + KEK).digest()[:4], "big") == 226337573
