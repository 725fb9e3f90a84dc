"""Key providers and the keyring at their edges: the key file's layout and every refusal it gives, keys
another process added, the env provider's derived root, the cache of open data keys and which keyring a
setting gets. Each expectation is written out (exact messages, fixed keys and their derived bytes)."""

from __future__ import annotations

import base64
import json
import os
import stat
import uuid
from pathlib import Path

import pytest

from app.config import Settings
from app.crypto import cipher
from app.crypto import keyring as keyring_module
from app.crypto.errors import CryptoError, DecryptionError, KeyFileError, UnknownKeyError
from app.crypto.keyring import (
    EnvKeyProvider,
    FileKeyProvider,
    Keyring,
    _new_kek_id,
    describe_source,
    forget_keyrings,
    get_keyring,
    make_provider,
    write_private_file,
)

ONE, TWO = b"\x01" * 32, b"\x02" * 32
ONE_B64, TWO_B64 = base64.b64encode(ONE).decode(), base64.b64encode(TWO).decode()
# EnvKeyProvider.kek_id_for and HKDF-SHA256(key, info=b"helpline integrity root") of the keys above.
ONE_ID, TWO_ID = 2127450376, 3248862480
ONE_ROOT = bytes.fromhex("b3af35990eb673b7806e8eba7e4bef57678a1bafe1cdd79a13c8392dae135609")
TWO_ROOT = bytes.fromhex("1e6fa8445f9e13ad7f957a14aa84914ac8014ba26b72c64ec158204a021b8293")


def _write(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    os.chmod(path, 0o600)
    return path


def _aad(subject: uuid.UUID, kek_id: int) -> bytes:
    return cipher.dek_aad(subject_id=subject, key_id=1, kek_id=kek_id)


# -- the key file ----------------------------------------------------------------------------------


def test_a_new_key_file_has_the_documented_layout_and_lives_in_a_new_directory(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "volume" / "keys.json"  # parents that do not exist yet
    provider = FileKeyProvider.create(path)
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert list(doc) == ["format", "primary", "keks", "integrity_primary", "integrity", "created_on"]
    assert doc["format"] == 1 and list(doc["keks"]) == [str(doc["primary"])]
    assert list(doc["integrity"]) == [str(doc["integrity_primary"])] and doc["integrity_primary"] != doc["primary"]
    # Plain JSON indented by two spaces, so an offline or paper copy can be read and typed back.
    assert text == json.dumps(doc, indent=2)
    assert provider.integrity_root() == (
        doc["integrity_primary"],
        base64.b64decode(doc["integrity"][str(doc["integrity_primary"])]),
    )
    assert repr(provider) == f"FileKeyProvider(path={str(path)!r}, keks=1)"


def test_a_new_key_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    umask = os.umask(0)  # the mode asked for, not one a strict umask would have trimmed to 0600 anyway
    try:
        FileKeyProvider.create(path)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_saved_key_file_keeps_the_layout(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    provider = FileKeyProvider.create(path)
    created = json.loads(path.read_text(encoding="utf-8"))
    new = provider.add_primary_kek()
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert list(doc) == ["format", "primary", "keks", "integrity_primary", "integrity", "updated_on"]
    assert doc["format"] == 1 and doc["primary"] == new and sorted(doc["keks"]) == sorted([str(new), *created["keks"]])
    assert doc["integrity_primary"] == created["integrity_primary"] and doc["integrity"] == created["integrity"]
    assert text == json.dumps(doc, indent=2)


def test_a_key_file_written_by_hand_is_read_as_written(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "keys.json",
        {
            "format": 1,
            "primary": 7,
            "keks": {"7": ONE_B64, "3": TWO_B64},
            "integrity_primary": 9,
            "integrity": {"9": TWO_B64, "5": ONE_B64},
        },
    )
    provider = FileKeyProvider(path)
    assert provider.primary_kek_id() == 7 and provider.kek_ids() == [3, 7]
    assert provider.integrity_root() == (9, TWO) and provider.integrity_root(5) == (5, ONE)
    subject = uuid.uuid4()
    assert cipher.unwrap_key(ONE, provider.wrap(7, b"k" * 32, _aad(subject, 7)), _aad(subject, 7)) == b"k" * 32


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"primary": 1, "keks": {"1": "AAA="}}, "key 1 must be 32 bytes (256 bits), got 2"),
        ({"primary": 1, "keks": {"1": ONE_B64[:10] + "*" + ONE_B64[10:]}}, "key 1 is not valid base64"),
        ({"primary": 2, "keks": {"1": ONE_B64}}, "key file {path} names a primary key it does not hold"),
        (
            {"primary": 1, "keks": {"1": ONE_B64}, "integrity": {"4": "AAA="}, "integrity_primary": 4},
            "integrity root 4 must be 32 bytes (256 bits), got 2",
        ),
        ({"primary": 1, "keks": {"1": ONE_B64}, "integrity": "AAA="}, "key file {path} is malformed"),
        (
            {"primary": 1, "keks": {"1": ONE_B64}, "integrity": {"1": TWO_B64}},
            "key file {path} names an integrity root it does not hold",
        ),
        (
            {"primary": 1, "keks": {"1": ONE_B64}, "integrity": {"4": TWO_B64}, "integrity_primary": 5},
            "key file {path} names an integrity root it does not hold",
        ),
    ],
)
def test_a_broken_key_file_is_refused_with_what_is_wrong(tmp_path: Path, doc: dict, message: str) -> None:
    path = _write(tmp_path / "keys.json", doc)
    with pytest.raises(KeyFileError) as info:
        FileKeyProvider(path)
    assert str(info.value) == message.format(path=path)


def test_an_old_key_file_gets_its_root_under_a_private_lock_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "keys.json", {"format": 1, "primary": 1, "keks": {"1": ONE_B64}})
    provider = FileKeyProvider(path)
    umask = os.umask(0)  # the mode asked for, not one a strict umask would have trimmed to 0600 anyway
    try:
        root_id, root = provider.integrity_root()
    finally:
        os.umask(umask)
    assert json.loads(path.read_text())["integrity"] == {str(root_id): base64.b64encode(root).decode()}
    lock = tmp_path / "keys.json.lock"
    assert lock.exists() and stat.S_IMODE(lock.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.json", "keys.json.lock"]


def test_keys_and_roots_added_by_another_process_are_found_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    service = FileKeyProvider.create(path)  # the running service
    old = service.primary_kek_id()
    rotate = FileKeyProvider(path)  # `keys rotate` in another process
    new = rotate.add_primary_kek()
    subject, dek = uuid.uuid4(), cipher.new_key()
    wrapped = rotate.wrap(new, dek, _aad(subject, new))
    assert service.unwrap(new, wrapped, _aad(subject, new)) == dek  # an unknown id makes it re-read the file
    assert service.primary_kek_id() == new and service.kek_ids() == sorted([old, new])
    doc = json.loads(path.read_text())
    doc["integrity"]["12345"] = ONE_B64
    write_private_file(path, json.dumps(doc).encode())
    assert service.integrity_root(12345) == (12345, ONE)
    with pytest.raises(UnknownKeyError) as info:
        service.integrity_root(777)
    assert str(info.value) == "integrity root 777 is not in the key file"
    with pytest.raises(UnknownKeyError) as info:
        service.unwrap(777, wrapped, _aad(subject, 777))
    assert str(info.value) == "key-encryption key 777 is not in the key file"


def test_a_key_or_root_already_held_is_used_without_reading_the_key_file(tmp_path: Path, monkeypatch) -> None:
    # Every data key opened asks for its KEK: only an id this process does not hold may cost a look at the disk.
    path = tmp_path / "keys.json"
    service = FileKeyProvider.create(path)
    old = service.primary_kek_id()
    root_id, root = service.integrity_root()
    subject, dek = uuid.uuid4(), cipher.new_key()
    wrapped = service.wrap(old, dek, _aad(subject, old))
    rotate = FileKeyProvider(path)  # `keys rotate` in another process re-wraps everything, then retires the old KEK
    rotate.add_primary_kek()
    rotate.retire_kek(old)
    assert str(old) not in json.loads(path.read_text())["keks"]
    # A request that read its wrapped key before the rotation committed can still open it.
    assert service.unwrap(old, wrapped, _aad(subject, old)) == dek

    def read_the_file() -> tuple[int, int]:
        raise AssertionError("the key file was read for a key this process already holds")

    held = FileKeyProvider(path)
    new = held.primary_kek_id()
    held_root = held.integrity_root()
    monkeypatch.setattr(held, "_stamp", read_the_file)
    wrapped = held.wrap(new, dek, _aad(subject, new))
    assert held.unwrap(new, wrapped, _aad(subject, new)) == dek
    assert held.integrity_root(root_id) == (root_id, root) == held_root
    assert held.integrity_root() == (root_id, root)


def _edit_in_place(path: Path, primary: int) -> os.stat_result:
    """Make ``primary`` the file's primary key without changing its inode or times; the old stamp."""
    stamp = path.stat()
    doc = json.loads(path.read_text())
    doc["keks"][str(primary)], doc["primary"] = ONE_B64, primary
    with path.open("r+", encoding="utf-8") as fh:
        fh.write(json.dumps(doc))
        fh.truncate()
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    return stamp


def test_the_key_file_is_read_again_only_when_it_was_replaced(tmp_path: Path) -> None:
    # Every data key wrapped asks for the primary; the file is re-read only when its stamp changed.
    path = tmp_path / "keys.json"
    provider = FileKeyProvider.create(path)
    primary = provider.primary_kek_id()
    stamp = _edit_in_place(path, 42)
    assert provider.primary_kek_id() == primary and provider.kek_ids() == [primary]
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1))
    assert provider.primary_kek_id() == 42 and provider.kek_ids() == sorted([primary, 42])
    new = provider.add_primary_kek()  # written by this process: its own stamp is remembered
    _edit_in_place(path, 43)
    assert provider.primary_kek_id() == new


def test_retiring_the_primary_is_refused_and_an_absent_key_is_already_retired(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    provider = FileKeyProvider.create(path)
    primary = provider.primary_kek_id()
    with pytest.raises(CryptoError) as info:
        provider.retire_kek(primary)
    assert str(info.value) == "refusing to retire the primary key-encryption key"
    provider.retire_kek(primary + 1)  # not held: nothing to do (a resumed rotation retires twice)
    assert FileKeyProvider(path).kek_ids() == [primary]


def test_the_key_file_temp_is_created_private_whatever_the_umask(tmp_path: Path, monkeypatch) -> None:
    # Between creating the temp file and tightening its mode nothing may open it: it must be born 0600.
    born: list[int] = []
    real_fchmod = os.fchmod

    def record(fd: int, mode: int) -> None:
        born.append(stat.S_IMODE(os.fstat(fd).st_mode))
        real_fchmod(fd, mode)

    monkeypatch.setattr(os, "fchmod", record)
    old = os.umask(0)
    try:
        write_private_file(tmp_path / "keys.json", b"{}")
    finally:
        os.umask(old)
    assert born == [0o600] and stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600


def test_a_failed_key_file_write_reports_its_own_error_even_if_the_temp_is_gone(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "keys.json"
    provider = FileKeyProvider.create(path)
    before = path.read_bytes()

    def replace_fails(src, dst):  # the disk fails the rename after another process removed the temp
        os.unlink(src)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", replace_fails)
    with pytest.raises(OSError) as info:
        provider.add_primary_kek()
    assert info.value.errno == 28 and path.read_bytes() == before
    assert not (tmp_path / "keys.json.tmp").exists()


def test_new_key_ids_are_nonzero_32_bit_and_never_one_already_taken() -> None:
    ids = [_new_kek_id(set()) for _ in range(200)]
    assert all(0 < i < 2**32 for i in ids)  # they go into the 4-byte KEK id of every data key's AAD

    class Taken(set):
        """Says the first three ids it is asked about are taken."""

        def __init__(self) -> None:
            super().__init__()
            self.asked: list[int] = []

        def __contains__(self, item: object) -> bool:
            self.asked.append(item)  # type: ignore[arg-type]
            return len(self.asked) <= 3

    taken = Taken()
    assert _new_kek_id(taken) == taken.asked[-1] and len(taken.asked) == 4


def test_a_new_key_id_is_drawn_as_32_random_bits_until_one_is_neither_zero_nor_taken(monkeypatch) -> None:
    asked: list[int] = []
    draws = iter([0, 5, 0, 9, 11])

    def randbits(k: int) -> int:
        asked.append(k)
        return next(draws)  # past the last draw: StopIteration, so a draw that never ends fails at once

    monkeypatch.setattr(keyring_module.secrets, "randbits", randbits)
    assert _new_kek_id({5}) == 9
    assert asked == [32, 32, 32, 32]


def test_a_random_source_that_only_gives_taken_ids_stops_key_creation_after_64_draws(monkeypatch) -> None:
    asked: list[int] = []

    def randbits(k: int) -> int:
        asked.append(k)
        return 5

    monkeypatch.setattr(keyring_module.secrets, "randbits", randbits)
    with pytest.raises(CryptoError) as info:
        _new_kek_id({5})
    assert str(info.value) == "no free key id in 64 random draws: the random source is broken"
    assert len(asked) == 64


def test_rewrapping_with_a_wrong_associated_data_is_refused(tmp_path: Path) -> None:
    provider = FileKeyProvider.create(tmp_path / "keys.json")
    old = provider.primary_kek_id()
    new = provider.add_primary_kek()
    subjects = [uuid.uuid4() for _ in range(3)]
    deks = [cipher.new_key() for _ in subjects]
    items = [
        (old, provider.wrap(old, d, _aad(s, old)), _aad(s, old), _aad(s, new))
        for d, s in zip(deks, subjects, strict=True)
    ]
    moved = provider.rewrap_batch(items, new)
    assert [provider.unwrap(new, w, _aad(s, new)) for w, s in zip(moved, subjects, strict=True)] == deks
    with pytest.raises(DecryptionError) as info:
        provider.rewrap_batch([(old, items[0][1], _aad(uuid.uuid4(), old), items[0][3])], new)
    assert str(info.value) == "cannot unwrap data key: wrong key-encryption key or altered"


# -- the env provider ------------------------------------------------------------------------------


def test_env_keys_their_ids_and_the_root_from_the_last_key() -> None:
    provider = EnvKeyProvider(f" {TWO_B64} , {ONE_B64} ,")
    assert provider.primary_kek_id() == TWO_ID and provider.kek_ids() == sorted([ONE_ID, TWO_ID])
    assert provider.integrity_root() == (ONE_ID, ONE_ROOT)  # the last key outlives rotations
    assert provider.integrity_root(TWO_ID) == (TWO_ID, TWO_ROOT)
    assert EnvKeyProvider(TWO_B64).integrity_root() == (TWO_ID, TWO_ROOT)
    with pytest.raises(UnknownKeyError) as info:
        provider.integrity_root(5)
    assert str(info.value) == "integrity root 5 is not in HELPLINE_MASTER_KEY"
    with pytest.raises(UnknownKeyError) as info:
        provider.unwrap(5, b"", b"")
    assert str(info.value) == "key-encryption key 5 is not in HELPLINE_MASTER_KEY"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (" , ", "HELPLINE_MASTER_KEY is empty"),
        (ONE_B64[:10] + "*" + ONE_B64[10:], "HELPLINE_MASTER_KEY is not valid base64"),
        (base64.b64encode(b"short").decode(), "HELPLINE_MASTER_KEY must be 32 bytes (256 bits), got 5"),
        (base64.b64encode(b"k" * 33).decode(), "HELPLINE_MASTER_KEY must be 32 bytes (256 bits), got 33"),
    ],
)
def test_a_bad_master_key_is_refused_with_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(KeyFileError) as info:
        EnvKeyProvider(value)
    assert str(info.value) == message


def test_the_env_provider_tells_the_operator_how_to_rotate_by_hand() -> None:
    provider = EnvKeyProvider(ONE_B64)
    with pytest.raises(CryptoError) as info:
        provider.add_primary_kek()
    assert str(info.value) == (
        "the env key provider cannot make keys: put a new base64 key first in HELPLINE_MASTER_KEY "
        "(keep the old one after it) and run 'helpline keys rotate' again"
    )
    with pytest.raises(CryptoError) as info:
        provider.retire_kek(ONE_ID)
    assert str(info.value) == f"remove key {ONE_ID} from HELPLINE_MASTER_KEY by hand; it is no longer used"


# -- the keyring -----------------------------------------------------------------------------------


class CountingEnv(EnvKeyProvider):
    """The env provider, counting the data keys it is asked to unwrap."""

    unwraps = 0

    def unwrap(self, kek_id: int, wrapped: bytes, aad: bytes) -> bytes:
        self.unwraps += 1
        return super().unwrap(kek_id, wrapped, aad)


def test_a_data_key_can_be_wrapped_under_an_older_kek_id() -> None:
    keyring = Keyring(EnvKeyProvider(f"{TWO_B64},{ONE_B64}"))
    subject, dek = uuid.uuid4(), cipher.new_key()
    assert keyring.wrap_dek(dek, subject_id=subject, key_id=1)[0] == TWO_ID
    kek_id, wrapped = keyring.wrap_dek(dek, subject_id=subject, key_id=1, kek_id=ONE_ID)
    assert kek_id == ONE_ID and cipher.unwrap_key(ONE, wrapped, _aad(subject, ONE_ID)) == dek


def test_open_data_keys_are_cached_least_recently_used_first_out() -> None:
    provider = CountingEnv(ONE_B64)
    keyring = Keyring(provider, cache_size=2)
    subjects = [uuid.uuid4() for _ in range(3)]
    deks = [cipher.new_key() for _ in subjects]
    wrapped = [keyring.wrap_dek(d, subject_id=s, key_id=1)[1] for d, s in zip(deks, subjects, strict=True)]

    def read(i: int) -> bytes:
        return keyring.unwrap_dek(wrapped[i], subject_id=subjects[i], key_id=1, kek_id=ONE_ID)

    assert [read(0), read(1), read(0), read(1)] == [deks[0], deks[1], deks[0], deks[1]]
    assert provider.unwraps == 2  # both fit: read from the cache the second time
    assert read(0) == deks[0] and read(2) == deks[2]  # 0 was read last, so 1 leaves for 2
    assert provider.unwraps == 3
    assert read(0) == deks[0] and provider.unwraps == 3
    assert read(1) == deks[1] and provider.unwraps == 4


def test_the_default_cache_holds_4096_data_keys() -> None:
    provider = CountingEnv(ONE_B64)
    keyring = Keyring(provider)
    subjects = [uuid.uuid4() for _ in range(4097)]
    for subject in subjects:
        keyring.remember(subject, 1, b"k" * 32)
    assert keyring.unwrap_dek(b"", subject_id=subjects[1], key_id=1, kek_id=ONE_ID) == b"k" * 32  # still held
    assert provider.unwraps == 0
    subject, dek = subjects[0], cipher.new_key()
    _, wrapped = keyring.wrap_dek(dek, subject_id=subject, key_id=1)
    assert keyring.unwrap_dek(wrapped, subject_id=subject, key_id=1, kek_id=ONE_ID) == dek  # evicted: unwrapped
    assert provider.unwraps == 1


def test_evicting_forgets_only_the_subjects_named() -> None:
    provider = CountingEnv(ONE_B64)
    keyring = Keyring(provider)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for subject in (a, b, c):
        keyring.remember(subject, 1, subject.bytes * 2)
    keyring.evict(a)
    keyring.evict_many({b})
    assert keyring.unwrap_dek(b"", subject_id=c, key_id=1, kek_id=ONE_ID) == c.bytes * 2  # kept
    for gone in (a, b):
        with pytest.raises(DecryptionError):
            keyring.unwrap_dek(b"\0" * 60, subject_id=gone, key_id=1, kek_id=ONE_ID)  # asked of the provider
    assert provider.unwraps == 2


# -- which provider and keyring a setting gets -----------------------------------------------------


def test_each_provider_is_described_in_one_line_without_a_key(tmp_path: Path) -> None:
    env = Settings(data_dir=tmp_path, key_provider="env", master_key=ONE_B64)
    assert describe_source(env) == "keys come from HELPLINE_MASTER_KEY (key provider 'env'); nothing is stored on disk"
    vault = Settings(data_dir=tmp_path, key_provider="vault", vault_addr="https://vault:8200", vault_token="t")
    assert describe_source(vault) == (
        "keys come from Vault transit at https://vault:8200, key 'helpline' (key provider 'vault'); "
        "the key-encryption key never leaves Vault"
    )
    file = Settings(data_dir=tmp_path, key_file=tmp_path / "k.json")
    assert describe_source(file) == (
        f"keys come from the key file {tmp_path / 'k.json'} (key provider 'file'); keep an offline copy, "
        "or set HELPLINE_KEY_PROVIDER=env or vault to keep keys off this disk"
    )
    assert isinstance(make_provider(env), EnvKeyProvider) and make_provider(env).primary_kek_id() == ONE_ID


def test_one_keyring_per_key_source_and_database(tmp_path: Path) -> None:
    forget_keyrings()
    try:
        FileKeyProvider.create(tmp_path / "a.json")
        FileKeyProvider.create(tmp_path / "b.json")
        a = Settings(data_dir=tmp_path, key_file=tmp_path / "a.json", database_url="sqlite:///x.db")
        b = Settings(data_dir=tmp_path, key_file=tmp_path / "b.json", database_url="sqlite:///x.db")
        assert get_keyring(a) is get_keyring(a) and get_keyring(a) is not get_keyring(b)
        assert get_keyring(a).provider.primary_kek_id() != get_keyring(b).provider.primary_kek_id()
        # The env variable is one per process: the data directory does not make another keyring.
        env = Settings(data_dir=tmp_path / "one", key_provider="env", master_key=ONE_B64, database_url="sqlite:///x.db")
        same = Settings(
            data_dir=tmp_path / "two", key_provider="env", master_key=ONE_B64, database_url="sqlite:///x.db"
        )
        assert get_keyring(env) is get_keyring(same) and get_keyring(env) is not get_keyring(a)
    finally:
        forget_keyrings()
