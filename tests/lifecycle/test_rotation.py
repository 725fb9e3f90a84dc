"""Key rotation: 10,000 records all readable after, old KEK gone from the key file, field ciphertexts
byte-identical; an interrupted rotation (a real SIGKILL) resumes to the same end; re-encryption changes
every field ciphertext but no plaintext."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.crypto import service as crypto
from app.crypto.models import DataKey, IndexKey
from app.lifecycle import rotation
from app.lifecycle import service as lifecycle
from app.lifecycle.models import KeyRotation
from tests.lifecycle.seed import Install, fresh_keys, read_all, sealed_snapshot, seed

# Long: collected first, so the two test processes finish together (tests/conftest.py).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _key_file(inst: Install) -> dict:
    return json.loads(inst.settings.key_path.read_text())


def _wrappings(inst: Install) -> dict:
    with inst.engine.connect() as conn:
        return {
            (r[0], r[1]): (r[2], bytes(r[3]))
            for r in conn.execute(select(DataKey.subject_id, DataKey.key_id, DataKey.kek_id, DataKey.wrapped))
        }


def test_rotation_round_trip_on_10000_records(install: Install) -> None:
    with install.session() as session:
        seeded = seed(session, contacts=10_000, cases=300)
    old_kek = _key_file(install)["primary"]
    fields_before = sealed_snapshot(install.engine)
    wraps_before = _wrappings(install)
    progress: list[tuple[int, int]] = []

    result = rotation.rotate(
        engine=install.engine, settings=install.settings, batch_size=2000, progress=lambda d, t: progress.append((d, t))
    )

    keys = _key_file(install)
    assert result.new_kek_id == keys["primary"] != old_kek
    assert result.retired == [old_kek] and str(old_kek) not in keys["keks"]
    assert result.rewrapped == len(wraps_before) + 1  # every data key and the index root
    assert progress and progress[-1][0] == progress[-1][1] == result.rewrapped
    wraps_after = _wrappings(install)
    assert wraps_after.keys() == wraps_before.keys()
    assert all(kek == result.new_kek_id for kek, _ in wraps_after.values())
    assert all(wraps_after[k][1] != wraps_before[k][1] for k in wraps_before)
    assert sealed_snapshot(install.engine) == fields_before  # only the wrappings moved
    fresh_keys()
    with install.session() as session:
        contacts, cases, notes = read_all(session, seeded)
        some = next(iter(seeded.handles))
        assert some in crypto.index_candidates(session, column="contact.handle", value=seeded.handles[some])
    assert contacts == seeded.contacts and cases == seeded.cases and notes == seeded.notes
    status = lifecycle.key_status(engine=install.engine, settings=install.settings)
    assert [(k.kek_id, k.primary, k.data_keys, k.index_keys) for k in status.keks] == [
        (result.new_kek_id, True, len(wraps_before), 1)
    ]


_KILLABLE = """
import sys, time
from app.config import Settings
from app.db import make_engine
from app.lifecycle import rotation
settings = Settings(_env_file=None, data_dir=sys.argv[1], key_file=sys.argv[2], database_url=sys.argv[3])
def slow(done, total):
    print(done, flush=True)
    time.sleep(0.05)
rotation.rotate(engine=make_engine(settings), settings=settings, batch_size=100, progress=slow)
"""


def test_rotation_killed_half_way_finishes_when_run_again(install: Install) -> None:
    with install.session() as session:
        seeded = seed(session, contacts=3000, cases=50)
    old_kek = _key_file(install)["primary"]
    fields_before = sealed_snapshot(install.engine)
    total = len(_wrappings(install))
    settings = install.settings
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE, str(settings.data_dir), str(settings.key_path), settings.database_url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    seen = 0
    while seen < 500:  # at least five committed batches, far from the end
        line = proc.stdout.readline()
        assert line, "the rotation ended before it could be interrupted"
        seen = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()

    new_kek = _key_file(install)["primary"]
    assert new_kek != old_kek
    with install.engine.connect() as conn:
        moved = conn.scalar(select(func.count()).select_from(DataKey).where(DataKey.kek_id == new_kek))
        unfinished = conn.scalar(select(func.count()).select_from(KeyRotation).where(KeyRotation.finished_at.is_(None)))
    assert 500 <= moved < total and unfinished == 1  # really half-way

    fresh_keys()  # a new process
    result = rotation.rotate(engine=install.engine, settings=settings, batch_size=700)

    assert result.resumed and result.new_kek_id == new_kek  # no third KEK: the same end
    assert result.retired == [old_kek]
    assert set(_key_file(install)["keks"]) == {str(new_kek)}
    with install.engine.connect() as conn:
        assert set(conn.scalars(select(DataKey.kek_id))) == {new_kek}
        assert set(conn.scalars(select(IndexKey.kek_id))) == {new_kek}
        assert conn.scalar(select(func.count()).select_from(DataKey)) == total
    assert sealed_snapshot(install.engine) == fields_before
    fresh_keys()
    with install.session() as session:
        contacts, cases, notes = read_all(session, seeded)
    assert contacts == seeded.contacts and cases == seeded.cases and notes == seeded.notes


def test_reencryption_interrupted_then_resumed_changes_ciphertexts_not_plaintexts(install: Install) -> None:
    with install.session() as session:
        seeded = seed(session, contacts=150, cases=40)
    fields_before = sealed_snapshot(install.engine)
    keys_before = set(_wrappings(install))

    class Crash(Exception):
        pass

    def crash_after_two(done: int, total: int) -> None:
        if done >= 100:
            raise Crash

    with pytest.raises(Crash):
        rotation.reencrypt(engine=install.engine, settings=install.settings, batch_size=50, progress=crash_after_two)
    fresh_keys()
    result = rotation.reencrypt(engine=install.engine, settings=install.settings, batch_size=50)
    assert result.resumed

    fields_after = sealed_snapshot(install.engine)
    assert fields_after.keys() == fields_before.keys()
    changed = [k for k, v in fields_before.items() if v is not None]
    assert changed and all(fields_after[k] != fields_before[k] for k in changed)
    keys_after = set(_wrappings(install))
    assert {s for s, _ in keys_after} == {s for s, _ in keys_before}  # one key per subject, none lost
    assert len(keys_after) == len(keys_before) and not (keys_after & keys_before)  # all new key ids
    fresh_keys()
    with install.session() as session:
        contacts, cases, notes = read_all(session, seeded)
    assert contacts == seeded.contacts and cases == seeded.cases and notes == seeded.notes


def test_rotate_cli_reports_and_prints_no_key(
    install: Install, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli import main
    from app.config import get_settings

    with install.session() as session:
        seed(session, contacts=20)
    monkeypatch.setenv("HELPLINE_DATA_DIR", str(install.settings.data_dir))
    monkeypatch.setenv("HELPLINE_KEY_FILE", str(install.settings.key_path))
    monkeypatch.setenv("HELPLINE_DATABASE_URL", install.settings.database_url)
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as refused:
            main(["keys", "rotate", "--batch-size", "0"])
        assert refused.value.code == 2
        capsys.readouterr()
        assert main(["keys", "rotate", "--batch-size", "7"]) == 0
        out = capsys.readouterr().out
        assert main(["keys", "status"]) == 0
        status = capsys.readouterr().out
    finally:
        get_settings.cache_clear()
    keys = _key_file(install)
    assert f"new primary key-encryption key {keys['primary']}" in out and "retired" in out
    assert f"kek {keys['primary']} (primary): 21 data keys, 1 index keys" in status
    for material in keys["keks"].values():
        assert material not in out + status


def test_fast_aad_matches_the_envelope_definition() -> None:
    import uuid

    from app.crypto import cipher

    for _ in range(50):
        subject, key_id = uuid.uuid4(), int.from_bytes(os.urandom(4), "big") >> 1
        old, new = rotation.dek_aads(subject.bytes, key_id, 7, 2**32 - 1)
        assert old == cipher.dek_aad(subject_id=subject, key_id=key_id, kek_id=7)
        assert new == cipher.dek_aad(subject_id=subject, key_id=key_id, kek_id=2**32 - 1)


def test_reencryption_keeps_account_seals_and_refuses_a_forged_account(install: Install) -> None:
    from app.audit import seals
    from app.auth.models import User
    from app.crypto.keyring import get_keyring

    with install.session() as session:
        seed(session, contacts=20, cases=5)
    keyring = get_keyring(install.settings)
    with install.engine.connect() as conn:
        secrets_before = dict(conn.execute(select(User.id, User.totp_secret_ct)).all())
    assert secrets_before
    rotation.reencrypt(engine=install.engine, settings=install.settings, batch_size=50)
    with install.engine.connect() as conn:
        secrets_after = dict(conn.execute(select(User.id, User.totp_secret_ct)).all())
        # Every account's sealed secret is under a new data key, and its seal still holds.
        assert all(secrets_after[k] != v for k, v in secrets_before.items())
        assert list(seals.broken_rows(conn, keyring)) == []
    # A role raised by SQL is not laundered into a fresh seal by the next re-encryption.
    victim = next(iter(secrets_before))
    with install.engine.begin() as conn:
        table = User.__table__
        conn.execute(table.update().where(table.c.id == victim).values(role="admin"))  # raw SQL, no hook
    with pytest.raises(seals.SealBroken):
        rotation.reencrypt(engine=install.engine, settings=install.settings, batch_size=50)
    with install.engine.connect() as conn:
        assert any(row.startswith("user ") for row in seals.broken_rows(conn, keyring))
