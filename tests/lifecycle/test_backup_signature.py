"""Signed backups: a backup this installation did not sign, or whose snapshot was swapped, is refused."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path

import pyrage
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select

from app.auth.models import User
from app.config import get_settings
from app.crypto import signing
from tests.lifecycle.seed import Install, seed


def _env(monkeypatch: pytest.MonkeyPatch, install: Install) -> None:
    monkeypatch.setenv("HELPLINE_DATA_DIR", str(install.settings.data_dir))
    monkeypatch.setenv("HELPLINE_KEY_FILE", str(install.settings.key_path))
    monkeypatch.setenv("HELPLINE_DATABASE_URL", install.settings.database_url)
    get_settings.cache_clear()


def _members(plain: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        return {name: tar.extractfile(name).read() for name in tar.getnames()}  # type: ignore[union-attr]


def _repack(members: dict[str, bytes], recipient: pyrage.x25519.Recipient, out: Path) -> Path:
    """What anyone holding only the age recipient can make: any tar, encrypted to it."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out.write_bytes(pyrage.encrypt(raw.getvalue(), [recipient]))
    return out


@pytest.fixture
def signed(install: Install, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):  # type: ignore[no-untyped-def]
    from app.cli import main

    with install.session() as s:
        seed(s, contacts=5, cases=1)
    identity = pyrage.x25519.Identity.generate()
    id_file = tmp_path / "identity.txt"
    id_file.write_text(f"{identity}\n")
    out = tmp_path / "good.age"
    _env(monkeypatch, install)
    try:
        assert main(["backup", "--out", str(out), "--recipient", str(identity.to_public())]) == 0
        assert "signed by this installation's key" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()
    return identity, id_file, out


def _restore(install: Install, monkeypatch, capsys, *args: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    from app.cli import main

    _env(monkeypatch, install)
    try:
        code = main(["restore", *args, "--yes"])
    finally:
        get_settings.cache_clear()
    return code, capsys.readouterr().err


def test_forged_backups_are_refused_in_one_line(install, signed, tmp_path, monkeypatch, capsys) -> None:
    identity, id_file, good = signed
    members = _members(pyrage.decrypt(good.read_bytes(), [identity]))
    manifest = json.loads(members["manifest.json"])
    stranger = Ed25519PrivateKey.generate()
    forged_signature = json.dumps(
        {
            "algorithm": "ed25519",
            "public_key": manifest["signed_by"],  # claims to be ours, signed by someone else
            "signature": base64.b64encode(
                stranger.sign(signing.signed_bytes("backup", members["manifest.json"]))
            ).decode(),
        }
    ).encode()
    other_db = dict(members)
    other_db[manifest["database"]] = members[manifest["database"]][:-1] + b"\x01"  # a different snapshot
    cases = {
        "it is unsigned": {k: v for k, v in members.items() if k != "signature.json"},
        "its signature does not match its contents": {**members, "signature.json": forged_signature},
        "its database snapshot is not the one that was signed": other_db,
    }
    for why, forged_members in cases.items():
        forged = _repack(forged_members, identity.to_public(), tmp_path / f"{len(why)}.age")
        code, err = _restore(install, monkeypatch, capsys, str(forged), "--identity", str(id_file))
        assert code == 1
        assert err == f"helpline: refusing {forged}: {why} (pass --trust-unsigned to restore it anyway)\n"
    # Re-signed by another installation's key, public half and all.
    other = Ed25519PrivateKey.generate()
    other_public = base64.b64encode(other.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    resigned = {
        **members,
        "signature.json": json.dumps(
            {
                "algorithm": "ed25519",
                "public_key": other_public.decode(),
                "signature": base64.b64encode(
                    other.sign(signing.signed_bytes("backup", members["manifest.json"]))
                ).decode(),
            }
        ).encode(),
    }
    forged = _repack(resigned, identity.to_public(), tmp_path / "resigned.age")
    code, err = _restore(install, monkeypatch, capsys, str(forged), "--identity", str(id_file))
    assert code == 1 and "signed by another key than this installation's" in err


def test_trust_unsigned_restores_and_says_so(install, signed, tmp_path, monkeypatch, capsys) -> None:
    identity, id_file, good = signed
    members = _members(pyrage.decrypt(good.read_bytes(), [identity]))
    del members["signature.json"]
    unsigned = _repack(members, identity.to_public(), tmp_path / "unsigned.age")
    code, err = _restore(install, monkeypatch, capsys, str(unsigned), "--identity", str(id_file), "--trust-unsigned")
    assert code == 0
    assert "restored although it is unsigned" in err
    code, err = _restore(install, monkeypatch, capsys, str(good), "--identity", str(id_file))
    assert code == 0 and err == ""
    with install.session() as s:
        assert s.scalar(select(func.count()).select_from(User)) >= 1


def test_a_missing_backup_is_reported_before_a_missing_identity(install, tmp_path, monkeypatch, capsys) -> None:
    code, err = _restore(install, monkeypatch, capsys, str(tmp_path / "nope.age"), "--identity", str(tmp_path / "x"))
    assert code == 1 and err == f"helpline: backup {tmp_path / 'nope.age'} not found\n"
