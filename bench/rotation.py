"""Key rotation: a new primary KEK and every data key of the data set re-wrapped under it.

Runs ``app.lifecycle.rotation.rotate`` (what ``helpline keys rotate`` calls) on a private copy of the
data set and its key file; the floor is the bare AES-GCM unwrap + wrap of the same number of keys.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from bench.report import Outcome

TARGET_SECONDS_PER_MILLION = 60


def requires() -> str | None:
    try:
        from app.lifecycle import rotation
    except ImportError:
        return "app/lifecycle/rotation.py is not there yet"
    return None if hasattr(rotation, "rotate") else "app.lifecycle.rotation.rotate is not there yet"


def _floor_seconds(n: int) -> float:
    from app.crypto import cipher

    old, new = cipher.new_key(), cipher.new_key()
    subject = uuid.uuid4()
    aad = cipher.dek_aad(subject_id=subject, key_id=1, kek_id=1)
    wrapped = cipher.wrap_key(old, os.urandom(32), aad)
    sample = min(n, 100_000)
    started = time.perf_counter()
    for _ in range(sample):
        cipher.wrap_key(new, cipher.unwrap_key(old, wrapped, aad), aad)
    return (time.perf_counter() - started) * n / sample


def run(ctx: Any, outcome: Outcome) -> None:
    from sqlalchemy import func, select

    from app.crypto.keyring import forget_keyrings, get_keyring
    from app.crypto.models import DataKey
    from app.db import make_engine
    from app.lifecycle import rotation

    copy = ctx.sqlite_copy("rotation")
    settings = copy.settings()
    engine = make_engine(settings)
    forget_keyrings()
    try:
        with engine.connect() as conn:
            keys = int(conn.execute(select(func.count()).select_from(DataKey)).scalar_one())
        started = time.perf_counter()
        result = rotation.rotate(engine=engine, settings=settings, keyring=get_keyring(settings))
        seconds = time.perf_counter() - started
        with engine.connect() as conn:
            left = int(conn.execute(select(func.count()).where(DataKey.kek_id != result.new_kek_id)).scalar_one())
    finally:
        engine.dispose()
        forget_keyrings()
    per_million = seconds / keys * 1_000_000 if keys else float("nan")
    outcome.add("sqlite.data keys re-wrapped", keys, "keys")
    outcome.add("sqlite.rotation wall time", seconds, "s", floor=_floor_seconds(keys))
    outcome.add(
        "sqlite.rotation per 1,000,000 keys",
        per_million,
        "s",
        target=f"< {TARGET_SECONDS_PER_MILLION}",
        note="scaled linearly from the data set's key count when it is not a million",
    )
    outcome.add("sqlite.rotation keys/s", keys / seconds if seconds else 0.0, "keys/s")
    outcome.add("sqlite.keys left under the old KEK", left, "keys", target="<= 0")
    outcome.details.update({"rewrapped": result.rewrapped, "retired": len(result.retired)})
