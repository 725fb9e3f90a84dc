"""The Vault transit key provider, against a local transit stand-in (tests/support/vault_transit.py).

No Vault server is packaged for Debian or PyPI, so these tests run against a faithful stand-in speaking
Vault's HTTP API through hvac: they show that data keys are wrapped and unwrapped in 'Vault', that no KEK
exists on the helpline side, and that rotation moves every key to a new version and trims the old one.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.crypto import cipher
from app.crypto.errors import CryptoError, DecryptionError
from app.crypto.keyring import forget_keyrings, get_keyring
from app.crypto.models import DataKey, IndexKey
from app.crypto.vault import VaultTransitProvider
from app.lifecycle import rotation
from tests.lifecycle.seed import new_install, read_all, sealed_snapshot, seed
from tests.support.vault_transit import VaultTransitStandIn


@pytest.fixture
def vault() -> Iterator[VaultTransitStandIn]:
    stand_in = VaultTransitStandIn.start()
    yield stand_in
    stand_in.stop()


def _install(tmp_path: Path, vault: VaultTransitStandIn):  # type: ignore[no-untyped-def]
    return new_install(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'data' / 'helpline.db'}",
        key_provider="vault",
        vault_addr=vault.addr,
        vault_token=vault.token,
        vault_key_name="helpline-test",
    )


def test_data_keys_are_wrapped_and_unwrapped_by_vault(tmp_path: Path, vault: VaultTransitStandIn) -> None:
    inst = _install(tmp_path, vault)
    assert isinstance(get_keyring(inst.settings).provider, VaultTransitProvider)
    with inst.session() as session:
        seeded = seed(session, contacts=40, cases=10)
    with inst.engine.connect() as conn:
        wrapped = [bytes(w) for w in conn.scalars(select(DataKey.wrapped))]
        roots = [bytes(w) for w in conn.scalars(select(IndexKey.wrapped))]
    assert wrapped and all(w.startswith(b"vault:v1:") for w in [*wrapped, *roots])
    before = vault.requests
    forget_keyrings()  # a new process: nothing cached, every data key must come back from Vault
    with inst.session() as session:
        contacts, cases, _ = read_all(session, seeded)
    assert contacts == seeded.contacts and cases == seeded.cases
    assert vault.requests - before >= len(seeded.contacts) + len(seeded.cases)
    # No KEK exists on the helpline side: not in the database file, not in any file of the data directory.
    material = vault.key_material()
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file() and path.name != "keys.json":
            data = path.read_bytes()
            for key in material:
                assert key not in data and base64.b64encode(key) not in data
    inst.dispose()


def test_rotation_through_vault_moves_every_key_and_trims_the_old_version(
    tmp_path: Path, vault: VaultTransitStandIn
) -> None:
    inst = _install(tmp_path, vault)
    with inst.session() as session:
        seeded = seed(session, contacts=120, cases=20)
    fields_before = sealed_snapshot(inst.engine)
    result = rotation.rotate(engine=inst.engine, settings=inst.settings, batch_size=50)
    assert result.new_kek_id == 2 and result.retired == [1]
    assert sorted(vault.keys["helpline-test"].versions) == [2]
    with inst.engine.connect() as conn:
        assert set(conn.scalars(select(DataKey.kek_id))) == {2}
        assert all(bytes(w).startswith(b"vault:v2:") for w in conn.scalars(select(DataKey.wrapped)))
    assert sealed_snapshot(inst.engine) == fields_before
    forget_keyrings()
    with inst.session() as session:
        contacts, cases, notes = read_all(session, seeded)
    assert contacts == seeded.contacts and cases == seeded.cases and notes == seeded.notes
    inst.dispose()


def test_wrong_associated_data_and_wrong_token_fail_cleanly(tmp_path: Path, vault: VaultTransitStandIn) -> None:
    inst = _install(tmp_path, vault)
    provider = get_keyring(inst.settings).provider
    dek = cipher.new_key()
    subject = uuid.uuid4()
    aad = cipher.dek_aad(subject_id=subject, key_id=7, kek_id=1)
    wrapped = provider.wrap(1, dek, aad)
    assert provider.unwrap(1, wrapped, aad) == dek
    moved = cipher.dek_aad(subject_id=uuid.uuid4(), key_id=7, kek_id=1)
    with pytest.raises(DecryptionError):
        provider.unwrap(1, wrapped, moved)
    with pytest.raises(DecryptionError):
        provider.unwrap(2, wrapped, aad)  # the KEK id must match the ciphertext's version
    bad = VaultTransitProvider.__new__(VaultTransitProvider)
    import hvac

    bad._client, bad._key, bad._mount = hvac.Client(url=vault.addr, token="wrong"), "helpline-test", "transit"
    with pytest.raises(CryptoError, match="refused") as info:
        bad.unwrap(1, wrapped, aad)
    assert dek.hex() not in str(info.value) and "\n" not in str(info.value)
    inst.dispose()
