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

import hvac
import pytest
from sqlalchemy import select

from app.crypto import cipher
from app.crypto.errors import CryptoError, DecryptionError, UnknownKeyError
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
    bad._client, bad._key, bad._mount = hvac.Client(url=vault.addr, token="wrong"), "helpline-test", "transit"
    with pytest.raises(CryptoError, match="refused") as info:
        bad.unwrap(1, wrapped, aad)
    assert dek.hex() not in str(info.value) and "\n" not in str(info.value)
    inst.dispose()


# -- The provider on its own, against the stand-in: key rotation, retirement, the integrity root and how
# every failure Vault can answer reaches the operator. No database: each test talks to 'Vault' directly.

KEY = "helpline-test"
KEYS = f"/v1/transit/keys/{KEY}"


def _provider(vault: VaultTransitStandIn, key: str = KEY, *, mount: str = "transit") -> VaultTransitProvider:
    return VaultTransitProvider(hvac.Client(url=vault.addr, token=vault.token), key, mount_point=mount)


def _rotate(vault: VaultTransitStandIn, times: int = 1) -> None:
    client = hvac.Client(url=vault.addr, token=vault.token)
    for _ in range(times):
        client.secrets.transit.rotate_key(name=KEY)


def _aad(subject: uuid.UUID, kek_id: int) -> bytes:
    return cipher.dek_aad(subject_id=subject, key_id=1, kek_id=kek_id)


def test_a_missing_transit_key_is_created_and_an_existing_one_left_alone(vault: VaultTransitStandIn) -> None:
    provider = _provider(vault, "helpline-new")
    assert sorted(vault.keys) == ["helpline-new"] and provider.kek_ids() == [1]
    # A token whose policy allows using the key but not creating one works once the key exists.
    vault.refuse("POST", "/v1/transit/keys/helpline-new")
    again = _provider(vault, "helpline-new")
    assert again.primary_kek_id() == 1 and sorted(vault.keys) == ["helpline-new"]
    # Where the key is missing and the token may not create it, the operator is told what was refused.
    vault.refuse("POST", "/v1/transit/keys/helpline-other")
    with pytest.raises(CryptoError) as info:
        _provider(vault, "helpline-other")
    assert str(info.value) == "Vault refused creating the key: the token lacks permission or has expired"


def test_a_transit_engine_mounted_elsewhere_is_used_where_it_is_mounted() -> None:
    stand_in = VaultTransitStandIn.start(mount="helpline-transit")
    try:
        provider = _provider(stand_in, mount="helpline-transit")
        dek, aad = cipher.new_key(), _aad(uuid.uuid4(), 1)
        assert provider.unwrap(1, provider.wrap(1, dek, aad), aad) == dek
        assert sorted(stand_in.keys) == [KEY]
    finally:
        stand_in.stop()


def test_from_settings_needs_both_the_address_and_the_token(vault: VaultTransitStandIn, tmp_path: Path) -> None:
    from app.config import Settings

    message = "the vault key provider needs HELPLINE_VAULT_ADDR and HELPLINE_VAULT_TOKEN"
    for addr, token in ((vault.addr, None), (None, vault.token), (vault.addr, ""), ("", vault.token)):
        with pytest.raises(CryptoError) as info:
            VaultTransitProvider.from_settings(Settings(data_dir=tmp_path, vault_addr=addr, vault_token=token))
        assert str(info.value) == message
    settings = Settings(data_dir=tmp_path, vault_addr=vault.addr, vault_token=vault.token, vault_key_name="hl-kek")
    provider = VaultTransitProvider.from_settings(settings)
    assert provider.primary_kek_id() == 1 and sorted(vault.keys) == ["hl-kek"]
    # A Vault that stops answering holds a request for 10 s at most, not hvac's default of 30 s.
    assert provider._client.adapter._kwargs["timeout"] == 10


def test_key_versions_are_those_vault_still_decrypts_with(vault: VaultTransitStandIn) -> None:
    provider = _provider(vault)
    _rotate(vault, 2)
    assert provider.primary_kek_id() == 3 and provider.kek_ids() == [1, 2, 3]
    # An operator raised the minimum decryption version in Vault without trimming: version 1 is gone for us.
    vault.keys[KEY].min_decryption_version = 2
    assert provider.kek_ids() == [2, 3]
    # A key whose information carries no minimum (0) still has every version it holds.
    vault.keys[KEY].min_decryption_version = 0
    assert provider.kek_ids() == [1, 2, 3]


def test_the_version_is_read_from_the_vault_prefix_only() -> None:
    from app.crypto.vault import _version_of

    assert _version_of(b"vault:v1:AAAA") == 1
    assert _version_of(b"vault:v12:AAAA") == 12
    for bad in (b"vault", b"vault:v1", b"nope:v1:AAAA", b"vault:x1:AAAA", b"vault:vx:AAAA", b"vault:v:AAAA", b""):
        with pytest.raises(DecryptionError) as info:
            _version_of(bad)
        assert str(info.value) == "wrapped data key is not a Vault transit ciphertext"


def test_wrap_and_unwrap_use_the_version_asked_for(vault: VaultTransitStandIn) -> None:
    provider = _provider(vault)
    _rotate(vault)
    dek, subject = cipher.new_key(), uuid.uuid4()
    old = provider.wrap(1, dek, _aad(subject, 1))
    new = provider.wrap(2, dek, _aad(subject, 2))
    assert old.startswith(b"vault:v1:") and new.startswith(b"vault:v2:")
    assert provider.unwrap(1, old, _aad(subject, 1)) == dek and provider.unwrap(2, new, _aad(subject, 2)) == dek
    # Each wrapping is bound to its associated data: the same key under another subject does not open.
    with pytest.raises(DecryptionError) as info:
        provider.unwrap(1, old, _aad(uuid.uuid4(), 1))
    assert str(info.value) == "Vault unwrapping a data key failed: cipher: message authentication failed"
    with pytest.raises(DecryptionError) as info:
        provider.unwrap(2, old, _aad(subject, 1))
    assert str(info.value) == "cannot unwrap data key: its KEK id does not match the Vault ciphertext"
    # The body after the version goes to Vault whole, colons and all, and Vault refuses it.
    with pytest.raises(DecryptionError) as info:
        provider.unwrap(1, b"vault:v1:AAAA:AAAA", _aad(subject, 1))
    assert str(info.value) == "Vault unwrapping a data key failed: failed to base64-decode"
    # A wrapping Vault refuses is an operator's problem, never reported as data that failed to open.
    with pytest.raises(CryptoError) as info:
        provider.wrap(3, dek, _aad(subject, 3))
    assert type(info.value) is CryptoError
    assert str(info.value) == "Vault wrapping a data key failed: requested version for encryption is not valid"


def test_a_wrapping_under_another_version_than_asked_is_refused(vault: VaultTransitStandIn) -> None:
    provider = _provider(vault)
    vault.interpose("POST", f"/v1/transit/encrypt/{KEY}", (200, {"data": {"ciphertext": "vault:v2:AAAA"}}))
    with pytest.raises(CryptoError) as info:
        provider.wrap(1, cipher.new_key(), _aad(uuid.uuid4(), 1))
    assert str(info.value) == "Vault wrapped under version 2, not 1"


def test_each_kind_of_vault_failure_becomes_one_clear_line(vault: VaultTransitStandIn) -> None:
    provider = _provider(vault)
    dek, aad = cipher.new_key(), _aad(uuid.uuid4(), 1)
    wrapped = provider.wrap(1, dek, aad)
    decrypt = f"/v1/transit/decrypt/{KEY}"
    cases = [
        ((400, {"errors": ["first reason", "second reason"]}), DecryptionError, "first reason; second reason"),
        ((400, {"errors": []}), DecryptionError, "invalid request"),
        ((500, {"errors": ["internal error"]}), CryptoError, "InternalServerError"),
        ((503, {"errors": ["Vault is sealed"]}), CryptoError, "VaultDown"),
    ]
    for answer, kind, reason in cases:
        vault.interpose("POST", decrypt, answer)
        with pytest.raises(kind) as info:
            provider.unwrap(1, wrapped, aad)
        assert str(info.value) == f"Vault unwrapping a data key failed: {reason}"
    vault.refuse("POST", decrypt)
    with pytest.raises(CryptoError) as info:
        provider.unwrap(1, wrapped, aad)
    assert str(info.value) == "Vault refused unwrapping a data key: the token lacks permission or has expired"
    # The key deleted in Vault behind the helpline's back.
    del vault.keys[KEY]
    with pytest.raises(UnknownKeyError) as info:
        provider.primary_kek_id()
    assert str(info.value) == "Vault transit key 'helpline-test' not found (reading the key)"
    vault.stop()
    with pytest.raises(CryptoError) as info:
        provider.kek_ids()
    assert str(info.value) == "cannot reach Vault for reading the key: ConnectionError"


def test_rewrap_batch_moves_each_key_to_the_target_version_in_order(vault: VaultTransitStandIn) -> None:
    provider = _provider(vault)
    subjects = [uuid.uuid4() for _ in range(3)]
    deks = [cipher.new_key() for _ in subjects]
    old = [provider.wrap(1, d, _aad(s, 1)) for d, s in zip(deks, subjects, strict=True)]
    _rotate(vault, 2)
    items = [(1, w, _aad(s, 1), _aad(s, 2)) for w, s in zip(old, subjects, strict=True)]
    before = vault.requests
    moved = provider.rewrap_batch(items, 2)
    assert vault.requests - before == 2  # one batched decrypt, one batched encrypt
    assert len(moved) == 3 and all(w.startswith(b"vault:v2:") for w in moved)
    for dek, subject, wrapped in zip(deks, subjects, moved, strict=True):
        assert provider.unwrap(2, wrapped, _aad(subject, 2)) == dek
        with pytest.raises(DecryptionError):
            provider.unwrap(2, wrapped, _aad(subject, 1))  # bound to the new associated data, not the old


def test_rewrap_batch_refuses_a_mismatched_or_unopenable_key_before_wrapping_anything(
    vault: VaultTransitStandIn,
) -> None:
    provider = _provider(vault)
    _rotate(vault)
    subject = uuid.uuid4()
    good = (1, provider.wrap(1, cipher.new_key(), _aad(subject, 1)), _aad(subject, 1), _aad(subject, 2))
    before = vault.requests
    with pytest.raises(DecryptionError) as info:
        provider.rewrap_batch([good, (2, good[1], good[2], good[3])], 2)
    assert str(info.value) == "cannot unwrap data key: its KEK id does not match the Vault ciphertext"
    assert vault.requests == before  # refused before asking Vault
    altered = (1, good[1], _aad(uuid.uuid4(), 1), good[3])
    with pytest.raises(DecryptionError) as info:
        provider.rewrap_batch([good, altered], 2)
    assert str(info.value) == "Vault could not unwrap a data key of the batch: wrong key or altered"
    assert vault.requests == before + 1  # nothing was sent to be wrapped


def test_rewrap_batch_reports_which_half_vault_failed(vault: VaultTransitStandIn) -> None:
    provider = _provider(vault)
    subject = uuid.uuid4()
    item = (1, provider.wrap(1, cipher.new_key(), _aad(subject, 1)), _aad(subject, 1), _aad(subject, 5))
    with pytest.raises(CryptoError) as info:
        provider.rewrap_batch([item], 5)  # no version 5: Vault fails each item of the batch
    assert str(info.value) == "Vault could not wrap a data key of the batch"
    vault.refuse("POST", f"/v1/transit/decrypt/{KEY}")
    with pytest.raises(CryptoError) as info:
        provider.rewrap_batch([item], 1)
    assert str(info.value) == "Vault refused unwrapping data keys: the token lacks permission or has expired"
    vault.refuse("POST", f"/v1/transit/encrypt/{KEY}")
    with pytest.raises(CryptoError) as info:
        provider.rewrap_batch([item], 1)
    assert str(info.value) == "Vault refused wrapping data keys: the token lacks permission or has expired"
    vault.interpose("POST", f"/v1/transit/encrypt/{KEY}", (400, {"errors": ["invalid key version"]}))
    with pytest.raises(CryptoError) as info:
        provider.rewrap_batch([item], 1)
    assert type(info.value) is CryptoError
    assert str(info.value) == "Vault wrapping data keys failed: invalid key version"
    # Vault refusing the unwrap as invalid means a wrong, moved or altered key: a DecryptionError, as for one key.
    vault.interpose("POST", f"/v1/transit/decrypt/{KEY}", (400, {"errors": ["cipher: message authentication failed"]}))
    with pytest.raises(CryptoError) as info:
        provider.rewrap_batch([item], 1)
    assert type(info.value) is DecryptionError
    assert str(info.value) == "Vault unwrapping data keys failed: cipher: message authentication failed"


def test_rewrap_batch_refuses_an_answer_with_another_count_than_the_keys_sent(vault: VaultTransitStandIn) -> None:
    provider = _provider(vault)
    subject = uuid.uuid4()
    item = (1, provider.wrap(1, cipher.new_key(), _aad(subject, 1)), _aad(subject, 1), _aad(subject, 1))
    # Fewer results than keys must never become a shorter list of new wrappings, nor more a longer one.
    short, long = {"data": {"batch_results": []}}, {"data": {"batch_results": [{"ciphertext": "vault:v1:AAAA"}] * 3}}
    for path, answer, message in (
        ("decrypt", short, "Vault unwrapping data keys failed: 0 results for 2 data keys"),
        ("encrypt", short, "Vault wrapping data keys failed: 0 results for 2 data keys"),
        ("encrypt", long, "Vault wrapping data keys failed: 3 results for 2 data keys"),
    ):
        vault.interpose("POST", f"/v1/transit/{path}/{KEY}", (200, answer))
        with pytest.raises(CryptoError) as info:
            provider.rewrap_batch([item, item], 1)
        assert type(info.value) is CryptoError
        assert str(info.value) == message
    assert len(provider.rewrap_batch([item, item], 1)) == 2  # the stand-in answering again: one for each


def test_add_primary_kek_rotates_in_vault(vault: VaultTransitStandIn) -> None:
    provider = _provider(vault)
    assert provider.add_primary_kek() == 2 and sorted(vault.keys[KEY].versions) == [1, 2]
    vault.refuse("POST", f"{KEYS}/rotate")
    with pytest.raises(CryptoError) as info:
        provider.add_primary_kek()
    assert str(info.value) == "Vault refused rotating the key: the token lacks permission or has expired"
    assert sorted(vault.keys[KEY].versions) == [1, 2]


def test_retiring_a_version_refuses_it_and_every_older_one_and_trims_them(vault: VaultTransitStandIn) -> None:
    provider = _provider(vault)
    _rotate(vault, 2)
    subject = uuid.uuid4()
    dek = cipher.new_key()
    first, second = provider.wrap(1, dek, _aad(subject, 1)), provider.wrap(2, dek, _aad(subject, 2))
    provider.retire_kek(1)
    assert sorted(vault.keys[KEY].versions) == [2, 3] and provider.kek_ids() == [2, 3]
    with pytest.raises(DecryptionError) as info:
        provider.unwrap(1, first, _aad(subject, 1))
    assert str(info.value) == (
        "Vault unwrapping a data key failed: ciphertext or signature version is disallowed by policy (too old)"
    )
    assert provider.unwrap(2, second, _aad(subject, 2)) == dek
    # Retiring a version already retired changes nothing in Vault: the floor is not lowered again.
    provider.retire_kek(2)
    before = vault.requests
    provider.retire_kek(1)
    assert vault.requests - before == 1  # the key read only
    assert vault.keys[KEY].min_decryption_version == 3 and sorted(vault.keys[KEY].versions) == [3]


def test_the_primary_version_is_never_retired(vault: VaultTransitStandIn) -> None:
    provider = _provider(vault)
    _rotate(vault)
    for kek_id in (2, 3):
        with pytest.raises(CryptoError) as info:
            provider.retire_kek(kek_id)
        assert str(info.value) == "refusing to retire the primary key-encryption key"
    assert sorted(vault.keys[KEY].versions) == [1, 2] and vault.keys[KEY].min_decryption_version == 1


def test_retiring_resets_a_pinned_encryption_version_so_the_trim_goes_through(vault: VaultTransitStandIn) -> None:
    provider = _provider(vault)
    _rotate(vault, 2)
    vault.keys[KEY].min_encryption_version = 2  # an operator pinned encryption to version 2 in Vault
    provider.retire_kek(2)
    assert sorted(vault.keys[KEY].versions) == [3] and vault.keys[KEY].min_encryption_version == 0
    # Key information without a minimum decryption version: version 1 is still there to retire.
    other = _provider(vault, "helpline-other")
    vault.keys["helpline-other"].min_decryption_version = 0
    assert other.add_primary_kek() == 2
    other.retire_kek(1)
    assert sorted(vault.keys["helpline-other"].versions) == [2]


def test_a_refused_retirement_names_the_step_vault_refused(vault: VaultTransitStandIn) -> None:
    provider = _provider(vault)
    _rotate(vault)
    vault.refuse("POST", f"{KEYS}/config")
    with pytest.raises(CryptoError) as info:
        provider.retire_kek(1)
    assert str(info.value) == "Vault refused retiring old key versions: the token lacks permission or has expired"
    vault.refuse("POST", f"{KEYS}/trim")
    with pytest.raises(CryptoError) as info:
        provider.retire_kek(1)
    assert str(info.value) == "Vault refused trimming old key versions: the token lacks permission or has expired"


INTEGRITY = f"/v1/transit/keys/{KEY}-integrity"
# HMAC-SHA256(key, b"helpline integrity root") for the key bytes 00..1f (version 1) and 20..3f (version 2):
# the root every purpose key of a Vault installation is derived from (app/crypto/purpose.py).
ROOT_V1 = bytes.fromhex("29d749d8eabe5221a9df6017d37687fbc590af5f090c936ae2a2d5c48807961b")
ROOT_V2 = bytes.fromhex("c8eece08ff1ad5c17b17d54db7e56f6f4b77b0fa4abacb0b05efddeb221acd8b")


def test_the_integrity_root_is_vaults_hmac_under_its_own_key_known_answer(vault: VaultTransitStandIn) -> None:
    provider = _provider(vault)
    assert provider.integrity_root() == provider.integrity_root(1)  # created on first use, then kept
    integrity = vault.keys[f"{KEY}-integrity"]
    assert sorted(vault.keys) == [KEY, f"{KEY}-integrity"]
    integrity.hmac_keys = {1: bytes(range(32)), 2: bytes(range(32, 64))}
    integrity.versions[2], integrity.created[2] = cipher.new_key(), 0
    assert provider.integrity_root() == (2, ROOT_V2)
    assert provider.integrity_root(1) == (1, ROOT_V1)
    assert provider.integrity_root(2) == (2, ROOT_V2)
    # Rotating the data-key KEK leaves the root alone.
    provider.add_primary_kek()
    assert provider.integrity_root() == (2, ROOT_V2)


def test_the_integrity_root_needs_no_key_creation_once_its_key_exists(vault: VaultTransitStandIn) -> None:
    provider = _provider(vault)
    first = provider.integrity_root()
    vault.refuse("POST", INTEGRITY, times=5)  # a token allowed to use the key, not to create keys
    before = vault.requests
    assert provider.integrity_root() == first
    assert vault.requests - before == 2  # read the key, then the HMAC


def test_a_failing_integrity_root_names_the_step(vault: VaultTransitStandIn) -> None:
    provider = _provider(vault)
    refused = ": the token lacks permission or has expired"
    vault.refuse("POST", INTEGRITY)
    with pytest.raises(CryptoError) as info:
        provider.integrity_root()
    assert str(info.value) == "Vault refused creating the integrity key" + refused
    vault.interpose("GET", INTEGRITY, None, (403, {"errors": ["permission denied"]}))
    with pytest.raises(CryptoError) as info:
        provider.integrity_root()  # missing, created, then its reading refused
    assert str(info.value) == "Vault refused reading the integrity key" + refused
    vault.refuse("GET", INTEGRITY)
    with pytest.raises(CryptoError) as info:
        provider.integrity_root()
    assert str(info.value) == "Vault refused reading the integrity key" + refused
    vault.refuse("POST", f"/v1/transit/hmac/{KEY}-integrity")
    with pytest.raises(CryptoError) as info:
        provider.integrity_root()
    assert str(info.value) == "Vault refused deriving the integrity root" + refused
    vault.interpose("POST", f"/v1/transit/hmac/{KEY}-integrity", (200, {"data": {"hmac": "vault:v2:AAAA"}}))
    with pytest.raises(CryptoError) as info:
        provider.integrity_root(1)
    assert str(info.value) == "Vault computed the integrity root under another version than 1"
