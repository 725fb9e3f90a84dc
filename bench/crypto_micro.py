"""Crypto micro-benchmarks: each Helpline operation beside the raw ``AESGCM``/HMAC call it is built on.

Timed with ``timeit`` (best of several repeats, per operation, in microseconds): the floor is the bare
primitive with a prepared key object; the overhead is what Helpline adds (associated data, envelope,
key-object set-up, normalisation).
"""

from __future__ import annotations

import os
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC
from sqlalchemy.orm import Session

from bench.report import Outcome

SIZES = {"32B": 32, "256B": 256, "4KB": 4096}


def requires() -> str | None:
    return None


def _per_op_us(fn: Callable[[], Any], *, quick: bool, smoke: bool = False) -> float:
    timer = timeit.Timer(fn)
    if smoke:  # the harness only: a figure, not a measurement
        return timer.timeit(number=20) / 20 * 1e6
    number, _ = timer.autorange()  # enough calls for about 0.2 s
    repeats = 3 if quick else 7
    best = min(timer.repeat(repeat=repeats, number=number))
    return best / number * 1e6


def run(ctx: Any, outcome: Outcome) -> None:
    from app.config import Settings
    from app.crypto import blind_index, cipher
    from app.crypto import service as crypto
    from app.crypto.keyring import FileKeyProvider, Keyring

    work: Path = ctx.scratch("crypto")
    key_file = work / "keys.json"
    FileKeyProvider.create(key_file)
    settings = Settings(_env_file=None, data_dir=work, key_file=key_file, database_url=f"sqlite:///{work / 'x.db'}")  # type: ignore[call-arg]
    keyring = Keyring(FileKeyProvider(key_file))
    session = crypto.bind(Session(), settings=settings, keyring=keyring)
    subject, row = uuid.uuid4(), uuid.uuid4()
    dek = cipher.new_key()
    key = crypto.SubjectKey(subject, 7, dek)
    raw = AESGCM(dek)
    nonce = os.urandom(12)
    quick, smoke = ctx.quick, ctx.smoke

    def measure(name: str, fn: Callable[[], Any], floor: float | None = None, note: str | None = None) -> float:
        value = _per_op_us(fn, quick=quick, smoke=smoke)
        outcome.add(name, value, "us/op", floor=floor, note=note)
        return value

    for label, size in SIZES.items():
        plaintext = "x" * size
        data = plaintext.encode()
        floor_enc = measure(f"aesgcm.encrypt[{label}] (floor)", lambda d=data: raw.encrypt(nonce, d, None))
        measure(
            f"aesgcm.encrypt+new key object[{label}]",
            lambda d=data: AESGCM(dek).encrypt(nonce, d, None),
            floor=floor_enc,
        )
        measure(
            f"seal_field[{label}]",
            lambda p=plaintext: crypto.seal_field(session, p, key=key, table="contact", column="notes", row_id=row),
            floor=floor_enc,
        )
        blob = crypto.seal_field(session, plaintext, key=key, table="contact", column="notes", row_id=row)
        assert blob is not None
        ct = raw.encrypt(nonce, data, None)
        floor_dec = measure(f"aesgcm.decrypt[{label}] (floor)", lambda c=ct: raw.decrypt(nonce, c, None))
        measure(
            f"open[{label}]",
            lambda b=blob: cipher.open_(b, dek=dek, table="contact", column="notes", row_id=row, subject_id=subject),
            floor=floor_dec,
            note="cipher.open_ with the data key in hand (open_field adds a cached key look-up)",
        )

    kek_id, wrapped = keyring.wrap_dek(dek, subject_id=subject, key_id=7)
    aad = cipher.dek_aad(subject_id=subject, key_id=7, kek_id=kek_id)
    floor_wrap = measure("aesgcm.encrypt[32B key] (floor)", lambda: raw.encrypt(nonce, dek, aad))
    measure("dek wrap", lambda: keyring.wrap_dek(dek, subject_id=subject, key_id=7), floor=floor_wrap)
    measure("dek unwrap (provider, uncached)", lambda: keyring.provider.unwrap(kek_id, wrapped, aad), floor=floor_wrap)
    measure(
        "dek unwrap (keyring, cached)",
        lambda: keyring.unwrap_dek(wrapped, subject_id=subject, key_id=7, kek_id=kek_id),
        floor=floor_wrap,
    )
    index_key = blind_index.derive_index_key(dek, column="contact.handle", epoch=1)

    def raw_hmac(value: bytes = b"@caller_0001234") -> bytes:
        mac = HMAC(index_key, hashes.SHA256())
        mac.update(value)
        return mac.finalize()

    floor_mac = measure("hmac-sha256 (floor)", raw_hmac)
    measure(
        "blind index[@handle]",
        lambda: blind_index.bucket(index_key, blind_index.normalise_handle("@Caller_0001234"), bits=12),
        floor=floor_mac,
    )
    measure(
        "blind index[phone]",
        lambda: blind_index.bucket(index_key, blind_index.normalise_handle("+7 912 345-67-89"), bits=12),
        floor=floor_mac,
        note="phone numbers are parsed to E.164 with phonenumbers first",
    )
    measure("index key derivation (HKDF)", lambda: blind_index.derive_index_key(dek, column="contact.handle", epoch=1))
