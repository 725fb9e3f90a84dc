"""Key providers: the key file's mode, refusing to overwrite, env keys, wrap/unwrap."""

from __future__ import annotations

import base64
import json
import os
import uuid

import pytest

from app.config import load_settings
from app.crypto import cipher
from app.crypto.errors import DecryptionError, KeyFileError, UnknownKeyError
from app.crypto.keyring import EnvKeyProvider, FileKeyProvider, Keyring


def test_new_key_file_is_private_and_holds_one_primary_key(tmp_path) -> None:
    path = tmp_path / "keys.json"
    provider = FileKeyProvider.create(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    doc = json.loads(path.read_text())
    assert list(doc["keks"]) == [str(doc["primary"])]
    assert len(base64.b64decode(doc["keks"][str(doc["primary"])])) == 32
    assert provider.primary_kek_id() == doc["primary"]


def test_creating_over_an_existing_key_file_is_refused_and_leaves_it_untouched(tmp_path) -> None:
    path = tmp_path / "keys.json"
    FileKeyProvider.create(path)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        FileKeyProvider.create(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_group_or_world_readable_key_file_is_refused(tmp_path, mode) -> None:
    path = tmp_path / "keys.json"
    FileKeyProvider.create(path)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        FileKeyProvider(path)


def test_the_app_refuses_to_start_with_a_readable_key_file(tmp_path) -> None:
    from app.crypto.keyring import forget_keyrings
    from app.main import create_app

    path = tmp_path / "keys.json"
    FileKeyProvider.create(path)
    os.chmod(path, 0o644)
    forget_keyrings()
    settings = load_settings(data_dir=tmp_path, key_file=path)
    with pytest.raises(KeyFileError):
        create_app(settings)


def test_missing_and_malformed_key_files_give_clear_errors(tmp_path) -> None:
    with pytest.raises(KeyFileError, match="not found"):
        FileKeyProvider(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    os.chmod(bad, 0o600)
    with pytest.raises(KeyFileError, match="malformed"):
        FileKeyProvider(bad)


def test_keyring_wraps_and_unwraps_and_a_wrong_kek_fails(tmp_path) -> None:
    keyring = Keyring(FileKeyProvider.create(tmp_path / "a.json"))
    other = Keyring(FileKeyProvider.create(tmp_path / "b.json"))
    subject, dek = uuid.uuid4(), cipher.new_key()
    kek_id, wrapped = keyring.wrap_dek(dek, subject_id=subject, key_id=1)
    assert dek not in wrapped
    assert keyring.unwrap_dek(wrapped, subject_id=subject, key_id=1, kek_id=kek_id) == dek
    with pytest.raises(UnknownKeyError):
        other.unwrap_dek(wrapped, subject_id=subject, key_id=1, kek_id=kek_id)


def test_rotation_adds_a_primary_and_retiring_removes_the_old_key(tmp_path) -> None:
    path = tmp_path / "keys.json"
    provider = FileKeyProvider.create(path)
    old = provider.primary_kek_id()
    new = provider.add_primary_kek()
    assert new != old and FileKeyProvider(path).primary_kek_id() == new
    provider.retire_kek(old)
    assert FileKeyProvider(path).kek_ids() == [new]
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_env_provider_reads_base64_keys_and_refuses_bad_ones() -> None:
    key = base64.b64encode(b"\x01" * 32).decode()
    provider = EnvKeyProvider(key)
    subject, dek = uuid.uuid4(), cipher.new_key()
    aad = cipher.dek_aad(subject_id=subject, key_id=1, kek_id=provider.primary_kek_id())
    assert provider.unwrap(provider.primary_kek_id(), provider.wrap(provider.primary_kek_id(), dek, aad), aad) == dek
    with pytest.raises(KeyFileError):
        EnvKeyProvider(base64.b64encode(b"short").decode())
    wrapped = provider.wrap(provider.primary_kek_id(), dek, aad)
    other = EnvKeyProvider(base64.b64encode(b"\x02" * 32).decode())
    with pytest.raises(UnknownKeyError):
        other.unwrap(provider.primary_kek_id(), wrapped, aad)
    # Same id, different key material (a substituted key) fails authentication instead.
    other._keks[provider.primary_kek_id()] = b"\x02" * 32
    with pytest.raises(DecryptionError):
        other.unwrap(provider.primary_kek_id(), wrapped, aad)


def test_keyring_repr_shows_no_key_material(tmp_path) -> None:
    path = tmp_path / "keys.json"
    keyring = Keyring(FileKeyProvider.create(path))
    doc = json.loads(path.read_text())
    text = repr(keyring) + repr(keyring.provider)
    for value in doc["keks"].values():
        assert value not in text
