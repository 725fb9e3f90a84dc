"""Per-purpose secrets and the signing key from each provider, and the key file written safely."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import hvac
import pytest

from app.crypto import cipher, purpose, signing
from app.crypto.errors import UnknownKeyError
from app.crypto.keyring import EnvKeyProvider, FileKeyProvider, Keyring
from app.crypto.vault import VaultTransitProvider
from tests.support.vault_transit import VaultTransitStandIn

# Ed25519 (RFC 8032) with seed 00 01 .. 1f over signed_bytes("backup", b"abc"), fixed once.
KAT_PUBLIC = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
KAT_SIGNATURE = bytes.fromhex(
    "e4f4c50383db969aa8ae29e5c1f4dc03dbb15c7012664ad6e0b2e6ff06217fa6"
    "e574f1a3947fdce1aad97e583b50ee47e9b02e1decb866615e3a4a8610ab300c"
)


def test_signature_format_known_answer() -> None:
    assert signing.signed_bytes("backup", b"abc") == b"helpline-sig-v1\x00\x06backupabc"
    assert signing.verify(KAT_PUBLIC, context="backup", message=b"abc", signature=KAT_SIGNATURE)
    # Bound to its use and its bytes: the same signature is worth nothing as a referral or over other data.
    assert not signing.verify(KAT_PUBLIC, context="referral", message=b"abc", signature=KAT_SIGNATURE)
    assert not signing.verify(KAT_PUBLIC, context="backup", message=b"abd", signature=KAT_SIGNATURE)


def test_purposes_get_different_keys_and_a_signature_verifies_only_under_its_own_key(tmp_path: Path) -> None:
    keyring = Keyring(FileKeyProvider.create(tmp_path / "keys.json"))
    keys = {p: purpose.purpose_key(keyring, p)[1] for p in (purpose.AUDIT, purpose.SEAL, purpose.SIGNING)}
    assert len(set(keys.values())) == 3
    signature = signing.sign(keyring, context="backup", message=b"snapshot")
    assert signing.verify(signing.public_key(keyring), context="backup", message=b"snapshot", signature=signature)
    other = Keyring(FileKeyProvider.create(tmp_path / "other.json"))
    assert not signing.verify(signing.public_key(other), context="backup", message=b"snapshot", signature=signature)


def test_file_secrets_survive_kek_rotation_and_a_reload(tmp_path: Path) -> None:
    provider = FileKeyProvider.create(tmp_path / "keys.json")
    before = purpose.purpose_key(Keyring(provider), purpose.AUDIT)
    provider.add_primary_kek()
    old = [k for k in provider.kek_ids() if k != provider.primary_kek_id()][0]
    provider.retire_kek(old)
    assert purpose.purpose_key(Keyring(FileKeyProvider(tmp_path / "keys.json")), purpose.AUDIT) == before


def test_an_old_key_file_gets_one_integrity_root_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    FileKeyProvider.create(path)
    doc = json.loads(path.read_text())
    del doc["integrity"], doc["integrity_primary"]
    path.write_text(json.dumps(doc))
    first, second = FileKeyProvider(path), FileKeyProvider(path)  # two processes that read the old file
    assert first.integrity_root() == second.integrity_root()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_env_secrets_survive_putting_a_new_kek_first(tmp_path: Path) -> None:
    old, new = (base64.b64encode(cipher.new_key()).decode() for _ in range(2))
    before = purpose.purpose_key(Keyring(EnvKeyProvider(old)), purpose.SEAL)
    rotated = EnvKeyProvider(f"{new},{old}")  # the documented rotation: new key first, old kept after it
    assert rotated.primary_kek_id() != EnvKeyProvider(old).primary_kek_id()
    assert purpose.purpose_key(Keyring(rotated), purpose.SEAL) == before
    # The root is derived, not the key itself: nothing of the KEK is handed out as a MAC key.
    assert rotated.integrity_root()[1] != base64.b64decode(old)
    with pytest.raises(UnknownKeyError):
        EnvKeyProvider(new).integrity_root(before[0])


def test_vault_computes_the_root_and_keeps_it_across_kek_rotation(tmp_path: Path) -> None:
    vault = VaultTransitStandIn.start()
    try:
        provider = VaultTransitProvider(hvac.Client(url=vault.addr, token=vault.token), "helpline-test")
        root_id, root = provider.integrity_root()
        provider.add_primary_kek()
        provider.retire_kek(provider.primary_kek_id() - 1)
        assert provider.integrity_root() == (root_id, root)
        assert root not in vault.key_material()  # an HMAC made inside Vault, not a key of Vault's
    finally:
        vault.stop()


# -- the key file, written safely (a planted temp file or symlink must not leak or redirect keys) --


def test_a_leftover_world_readable_temp_does_not_make_the_key_file_readable(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    provider = FileKeyProvider.create(path)
    stale = tmp_path / "keys.json.tmp"
    stale.write_text("left by a crash")
    os.chmod(stale, 0o644)
    provider.add_primary_kek()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not stale.exists()
    FileKeyProvider(path)  # still loads: the mode check would refuse a 0644 key file


def test_a_symlink_at_the_temp_path_is_not_followed(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    provider = FileKeyProvider.create(path)
    elsewhere = tmp_path / "exfiltrated.json"
    elsewhere.write_text("attacker's file")
    (tmp_path / "keys.json.tmp").symlink_to(elsewhere)
    provider.add_primary_kek()
    assert elsewhere.read_text() == "attacker's file"  # no key material written through the link
    assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(json.loads(path.read_text())["keks"]) == 2


def test_a_temp_planted_between_cleanup_and_create_fails_the_write_instead(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "keys.json"
    provider = FileKeyProvider.create(path)
    before = path.read_bytes()
    real_unlink = os.unlink

    def unlink_then_plant(target, *args, **kwargs):  # the race: a symlink appears right after the cleanup
        try:
            real_unlink(target, *args, **kwargs)
        finally:
            if str(target).endswith("keys.json.tmp") and not os.path.lexists(target):
                os.symlink(tmp_path / "elsewhere", target)

    monkeypatch.setattr(os, "unlink", unlink_then_plant)
    with pytest.raises(FileExistsError):
        provider.add_primary_kek()
    assert path.read_bytes() == before
    assert not (tmp_path / "elsewhere").exists()
