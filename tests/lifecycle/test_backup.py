"""Backups: encrypted to an age recipient, never holding a key or a plaintext; restore into an empty data
directory gives back every record; a wrong identity fails with one clear line."""

from __future__ import annotations

import base64
import io
import json
import shutil
import tarfile
from pathlib import Path

import pyrage
import pytest
from sqlalchemy import func, select

from app.cases.models import Case
from app.config import get_settings
from app.contacts.models import Contact
from app.crypto.keyring import forget_keyrings
from tests.lifecycle.seed import CANARY, Install, new_install, read_all, seed


def _secrets(install: Install) -> list[bytes]:
    keys = json.loads(install.settings.key_path.read_text())["keks"].values()
    return [s.encode() for s in keys] + [base64.b64decode(s) for s in keys]


def _env(monkeypatch: pytest.MonkeyPatch, install_dir: Path, key_file: Path, url: str) -> None:
    monkeypatch.setenv("HELPLINE_DATA_DIR", str(install_dir))
    monkeypatch.setenv("HELPLINE_KEY_FILE", str(key_file))
    monkeypatch.setenv("HELPLINE_DATABASE_URL", url)
    get_settings.cache_clear()


def test_backup_holds_no_canary_no_key_and_restores_every_record(
    install: Install,
    backend: str,
    database_url_factory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.cli import main

    with install.session() as s:
        seeded = seed(s, contacts=200, cases=30, canary_case=True)
    identity = pyrage.x25519.Identity.generate()
    id_file = tmp_path / "backup-identity.txt"
    id_file.write_text(f"# created by the test\n{identity}\n")
    out = tmp_path / "helpline.age"
    _env(monkeypatch, install.settings.data_dir, install.settings.key_path, install.settings.database_url)
    try:
        assert main(["backup", "--out", str(out), "--recipient", str(identity.to_public())]) == 0
        assert main(["backup", "--out", str(out), "--recipient", str(identity.to_public())]) == 1
        assert "refusing to overwrite" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
    assert out.stat().st_mode & 0o077 == 0
    assert not list(install.settings.data_dir.glob(".helpline-backup-*"))  # no plaintext left behind

    sealed = out.read_bytes()
    plain = pyrage.decrypt(sealed, [identity])
    for blob in (sealed, plain):
        for needle in (CANARY.encode("utf-8"), CANARY.encode("utf-16-le"), *_secrets(install)):
            assert needle not in blob
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert sorted(tar.getnames()) == sorted(["manifest.json", "signature.json", manifest["database"]])
    assert manifest["backend"] == backend and manifest["revision"] and manifest["kek_ids"]

    # an empty data directory with only the key file copied in (as from its offline copy)
    target_dir = tmp_path / "new-machine"
    target_dir.mkdir()
    shutil.copy2(install.settings.key_path, target_dir / "keys.json")
    url = f"sqlite:///{target_dir / 'helpline.db'}" if backend == "sqlite" else database_url_factory(backend)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(str(pyrage.x25519.Identity.generate()))
    _env(monkeypatch, target_dir, target_dir / "keys.json", url)
    try:
        assert main(["restore", str(out), "--identity", str(wrong)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not made for this identity" in err and "Traceback" not in err
        assert main(["restore", str(out), "--identity", str(id_file)]) == 0
        capsys.readouterr()
        assert main(["restore", str(out), "--identity", str(id_file)]) == 1
        assert "already holds records" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()

    forget_keyrings()
    restored = new_install(target_dir, url)  # migrate is a no-op at head
    try:
        with restored.session() as s:
            contacts, cases, notes = read_all(s, seeded)
            assert s.scalar(select(func.count()).select_from(Contact)) == len(seeded.contacts)
            assert s.scalar(select(func.count()).select_from(Case)) == len(seeded.cases)
        assert contacts == seeded.contacts and cases == seeded.cases and notes == seeded.notes
        assert any(CANARY in v["full_name"] for v in cases.values())
    finally:
        restored.dispose()
