"""The field envelope: AES-256-GCM, bound by associated data to where the value belongs.

Layout: ``version (1) | key id (4, big-endian) | nonce (12) | ciphertext | tag (16)``.
Associated data: length-prefixed ``helpline | version | table | column | row id | subject id | key id``,
so a ciphertext copied to another row, column, table or subject fails authentication.
"""

from __future__ import annotations

import os
import struct
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.crypto.errors import DecryptionError

VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER = struct.Struct(">BI")  # version, key id
MIN_LENGTH = HEADER.size + NONCE_BYTES + TAG_BYTES


def length_prefixed(*parts: bytes) -> bytes:
    """Unambiguous concatenation: no two different part lists give the same bytes."""
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def field_aad(*, version: int, table: str, column: str, row_id: uuid.UUID, subject_id: uuid.UUID, key_id: int) -> bytes:
    return length_prefixed(
        b"helpline",
        bytes([version]),
        table.encode(),
        column.encode(),
        row_id.bytes,
        subject_id.bytes,
        struct.pack(">I", key_id),
    )


def seal(
    plaintext: str,
    *,
    dek: bytes,
    key_id: int,
    table: str,
    column: str,
    row_id: uuid.UUID,
    subject_id: uuid.UUID,
) -> bytes:
    """Encrypt one field value under the subject's data key with a fresh random nonce."""
    nonce = os.urandom(NONCE_BYTES)
    aad = field_aad(version=VERSION, table=table, column=column, row_id=row_id, subject_id=subject_id, key_id=key_id)
    body = AESGCM(dek).encrypt(nonce, plaintext.encode("utf-8"), aad)
    return HEADER.pack(VERSION, key_id) + nonce + body


def envelope_key_id(blob: bytes) -> int:
    """The data-key id a ciphertext was sealed under, after checking the version."""
    if len(blob) < MIN_LENGTH:
        raise DecryptionError("ciphertext too short")
    version, key_id = HEADER.unpack_from(blob)
    if version != VERSION:
        raise DecryptionError(f"unknown ciphertext version {version}")
    return int(key_id)


def open_(
    blob: bytes,
    *,
    dek: bytes,
    table: str,
    column: str,
    row_id: uuid.UUID,
    subject_id: uuid.UUID,
) -> str:
    """Decrypt one field value, or raise DecryptionError if it was moved, altered or the key is wrong."""
    key_id = envelope_key_id(blob)  # rejects an unknown version before any crypto
    nonce = blob[HEADER.size : HEADER.size + NONCE_BYTES]
    body = blob[HEADER.size + NONCE_BYTES :]
    aad = field_aad(version=VERSION, table=table, column=column, row_id=row_id, subject_id=subject_id, key_id=key_id)
    try:
        plaintext = AESGCM(dek).decrypt(nonce, body, aad)
    except InvalidTag:
        raise DecryptionError(f"cannot decrypt {table}.{column}: wrong key, wrong place or altered") from None
    return plaintext.decode("utf-8")


def wrap_key(kek: bytes, dek: bytes, aad: bytes) -> bytes:
    """Wrap a data key under a key-encryption key: nonce | ciphertext | tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, dek, aad)


def unwrap_key(kek: bytes, wrapped: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(kek).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)
    except InvalidTag:
        raise DecryptionError("cannot unwrap data key: wrong key-encryption key or altered") from None


def dek_aad(*, subject_id: uuid.UUID, key_id: int, kek_id: int) -> bytes:
    return length_prefixed(b"dek", subject_id.bytes, struct.pack(">I", key_id), struct.pack(">I", kek_id))


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)
