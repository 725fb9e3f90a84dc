"""Key providers and the keyring: where key-encryption keys (KEKs) live and how data keys are wrapped.

A KEK never touches the database. Providers: a key file (default), an environment variable, or
HashiCorp Vault transit (see ``app.crypto.vault``), where the KEK never leaves Vault.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import stat
import threading
import uuid
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.config import Settings
from app.crypto import cipher
from app.crypto.errors import CryptoError, DecryptionError, KeyFileError, UnknownKeyError

KEY_FILE_FORMAT = 1


class KeyProvider(Protocol):
    """Holds KEKs and wraps/unwraps data keys with them."""

    name: str

    def primary_kek_id(self) -> int: ...

    def kek_ids(self) -> list[int]: ...

    def wrap(self, kek_id: int, dek: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, kek_id: int, wrapped: bytes, aad: bytes) -> bytes: ...

    def add_primary_kek(self) -> int: ...

    def retire_kek(self, kek_id: int) -> None: ...

    def integrity_root(self, root_id: int | None = None) -> tuple[int, bytes]:
        """The root that per-purpose secrets (audit MACs, seals, signing) derive from: (id, 32 bytes).

        Apart from the KEKs, so rotating the KEK changes no MAC and no signing key. ``None`` asks for
        the current one; an id names an older one still held (UnknownKeyError if not).
        """
        ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{what} is not valid base64") from None
    if len(value) != 32:
        raise KeyFileError(f"{what} must be 32 bytes (256 bits), got {len(value)}")
    return value


_KEK_ID_DRAWS = 64


def _new_kek_id(existing: set[int]) -> int:
    # A handful of KEKs among 2**32 ids: 64 draws that all miss mean the random source is broken, and key
    # creation must stop with a line that says so rather than spin.
    for _ in range(_KEK_ID_DRAWS):
        kek_id = secrets.randbits(32)
        if kek_id and kek_id not in existing:
            return kek_id
    raise CryptoError(f"no free key id in {_KEK_ID_DRAWS} random draws: the random source is broken")


class _LocalKeks(ABC):
    """Wrapping for providers that hold their KEKs in this process (file, env); Vault wraps remotely."""

    @abstractmethod
    def _kek(self, kek_id: int) -> bytes:
        """The KEK with this id, or UnknownKeyError."""

    def wrap(self, kek_id: int, dek: bytes, aad: bytes) -> bytes:
        return cipher.wrap_key(self._kek(kek_id), dek, aad)

    def unwrap(self, kek_id: int, wrapped: bytes, aad: bytes) -> bytes:
        return cipher.unwrap_key(self._kek(kek_id), wrapped, aad)

    def rewrap_batch(self, items: Sequence[tuple[int, bytes, bytes, bytes]], target: int) -> list[bytes]:
        return rewrap_local(self._kek, items, target)


class FileKeyProvider(_LocalKeks):
    """KEKs in a JSON key file with mode 0600, ideally on another volume than the database."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._keks: dict[int, bytes] = {}
        self._primary = 0
        self._roots: dict[int, bytes] = {}
        self._root_primary = 0
        self._load()

    @staticmethod
    def check_mode(path: Path) -> None:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeyFileError(
                f"key file {path} is accessible to group or others (mode {mode:04o}); run: chmod 600 {path}"
            )

    def _load(self) -> None:
        if not self.path.exists():
            raise KeyFileError(f"key file {self.path} not found; run 'helpline init' first")
        self.check_mode(self.path)
        try:
            doc = json.loads(self.path.read_text("utf-8"))
            keks = {int(k): _unb64(v, f"key {k}") for k, v in doc["keks"].items()}
            primary = int(doc["primary"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeyFileError(f"key file {self.path} is malformed") from None
        if primary not in keks:
            raise KeyFileError(f"key file {self.path} names a primary key it does not hold")
        try:
            roots = {int(k): _unb64(v, f"integrity root {k}") for k, v in doc.get("integrity", {}).items()}
            root_primary = int(doc.get("integrity_primary") or 0)
        except (ValueError, TypeError, AttributeError):
            raise KeyFileError(f"key file {self.path} is malformed") from None
        if roots and root_primary not in roots:
            raise KeyFileError(f"key file {self.path} names an integrity root it does not hold")
        self._keks, self._primary = keks, primary
        self._roots, self._root_primary = roots, root_primary
        self._mtime = self._stamp()

    def _stamp(self) -> tuple[int, int]:
        st = self.path.stat()
        return (st.st_mtime_ns, st.st_ino)

    def refresh(self) -> None:
        """Re-read the key file if another process (``keys rotate``) replaced it since it was loaded.

        A running service must wrap new data keys under the new primary and must be able to
        unwrap keys another process re-wrapped, without a restart.
        """
        try:
            changed = self._stamp() != self._mtime
        except OSError:
            return
        if changed:
            with self._lock:
                self._load()

    @classmethod
    def create(cls, path: Path) -> FileKeyProvider:
        """Write a new key file with one random KEK; refuses to overwrite an existing one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        kek_id = _new_kek_id(set())
        root_id = _new_kek_id(set())
        doc = {
            "format": KEY_FILE_FORMAT,
            "primary": kek_id,
            "keks": {str(kek_id): _b64(cipher.new_key())},
            "integrity_primary": root_id,
            "integrity": {str(root_id): _b64(cipher.new_key())},
            "created_on": date.today().isoformat(),
        }
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            raise KeyFileError(f"key file {path} already exists; refusing to overwrite a key") from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        return cls(path)

    def _save(self) -> None:
        doc = {
            "format": KEY_FILE_FORMAT,
            "primary": self._primary,
            "keks": {str(k): _b64(v) for k, v in self._keks.items()},
            "integrity_primary": self._root_primary,
            "integrity": {str(k): _b64(v) for k, v in self._roots.items()},
            "updated_on": date.today().isoformat(),
        }
        write_private_file(self.path, json.dumps(doc, indent=2).encode("utf-8"))
        self._mtime = self._stamp()

    def primary_kek_id(self) -> int:
        self.refresh()
        return self._primary

    def kek_ids(self) -> list[int]:
        self.refresh()
        return sorted(self._keks)

    def _kek(self, kek_id: int) -> bytes:
        kek = self._keks.get(kek_id)
        if kek is None:
            self.refresh()
            kek = self._keks.get(kek_id)
        if kek is None:
            raise UnknownKeyError(f"key-encryption key {kek_id} is not in the key file")
        return kek

    def add_primary_kek(self) -> int:
        with self._lock:
            kek_id = _new_kek_id(set(self._keks))
            self._keks[kek_id] = cipher.new_key()
            self._primary = kek_id
            self._save()
            return kek_id

    def retire_kek(self, kek_id: int) -> None:
        with self._lock:
            if kek_id == self._primary:
                raise CryptoError("refusing to retire the primary key-encryption key")
            self._keks.pop(kek_id, None)
            self._save()

    def integrity_root(self, root_id: int | None = None) -> tuple[int, bytes]:
        if not self._roots:
            self._add_first_root()
        wanted = self._root_primary if root_id is None else root_id
        root = self._roots.get(wanted)
        if root is None:
            self.refresh()
            root = self._roots.get(wanted)
        if root is None:
            raise UnknownKeyError(f"integrity root {wanted} is not in the key file")
        return wanted, root

    def _add_first_root(self) -> None:
        # Key files made before integrity roots existed get one on first use. Two processes may get
        # here at once: the lock file and the re-read under it make sure only one root is ever made.
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with self._lock:
                self._load()
                if not self._roots:
                    self._root_primary = _new_kek_id(set())
                    self._roots = {self._root_primary: cipher.new_key()}
                    self._save()
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        return f"FileKeyProvider(path={str(self.path)!r}, keks={len(self._keks)})"


class EnvKeyProvider(_LocalKeks):
    """KEKs from HELPLINE_MASTER_KEY: base64 keys separated by commas, the first one primary."""

    name = "env"

    def __init__(self, value: str) -> None:
        keys = [_unb64(part.strip(), "HELPLINE_MASTER_KEY") for part in value.split(",") if part.strip()]
        if not keys:
            raise KeyFileError("HELPLINE_MASTER_KEY is empty")
        self._keks = {self.kek_id_for(k): k for k in keys}
        self._primary = self.kek_id_for(keys[0])
        # Rotation puts a new key first and keeps the old ones after it, so the last key is the
        # longest-lived: the integrity root derives from it and survives every KEK rotation.
        self._root_primary = self.kek_id_for(keys[-1])

    @staticmethod
    def kek_id_for(key: bytes) -> int:
        # Derived, not stored: the same variable always yields the same ids.
        return int.from_bytes(hashlib.sha256(b"helpline kek id" + key).digest()[:4], "big") or 1

    def primary_kek_id(self) -> int:
        return self._primary

    def kek_ids(self) -> list[int]:
        return sorted(self._keks)

    def _kek(self, kek_id: int) -> bytes:
        try:
            return self._keks[kek_id]
        except KeyError:
            raise UnknownKeyError(f"key-encryption key {kek_id} is not in HELPLINE_MASTER_KEY") from None

    def add_primary_kek(self) -> int:
        raise CryptoError(
            "the env key provider cannot make keys: put a new base64 key first in HELPLINE_MASTER_KEY "
            "(keep the old one after it) and run 'helpline keys rotate' again"
        )

    def retire_kek(self, kek_id: int) -> None:
        raise CryptoError(f"remove key {kek_id} from HELPLINE_MASTER_KEY by hand; it is no longer used")

    def integrity_root(self, root_id: int | None = None) -> tuple[int, bytes]:
        wanted = self._root_primary if root_id is None else root_id
        try:
            material = self._keks[wanted]
        except KeyError:
            raise UnknownKeyError(f"integrity root {wanted} is not in HELPLINE_MASTER_KEY") from None
        # A one-way derivation under its own label: the root reveals nothing of the key-wrapping key.
        return wanted, derive(material, b"helpline integrity root")

    def __repr__(self) -> str:
        return f"EnvKeyProvider(keks={len(self._keks)})"


def derive(material: bytes, label: bytes) -> bytes:
    """HKDF-SHA256 of 32 bytes from ``material`` under a label that names their one use."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(material)


def write_private_file(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with a 0600 file holding ``data``; it survives a crash either whole or not at all.

    The temp file is made with O_CREAT|O_EXCL|O_NOFOLLOW, so a leftover temp (of any mode) or a
    symlink planted at its name is never written through: a stale one is removed first and, if
    something still sits there, the write fails. File and directory are fsynced around the rename.
    """
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # a temp left by a crash, or planted: unlink removes a symlink, never its target
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def rewrap_local(
    kek_of: Callable[[int], bytes], items: Sequence[tuple[int, bytes, bytes, bytes]], target: int
) -> list[bytes]:
    """Re-wrap (kek id, wrapped, old aad, new aad) items under ``target`` with one cipher object per KEK.

    Same envelope as ``cipher.wrap_key``/``unwrap_key``; used by key rotation, where building a cipher
    per key would cost as much as the encryption itself.
    """
    new = AESGCM(kek_of(target))
    old: dict[int, AESGCM] = {}
    out = []
    for kek_id, wrapped, old_aad, new_aad in items:
        aes = old.get(kek_id)
        if aes is None:
            aes = old[kek_id] = AESGCM(kek_of(kek_id))
        try:
            dek = aes.decrypt(wrapped[: cipher.NONCE_BYTES], wrapped[cipher.NONCE_BYTES :], old_aad)
        except InvalidTag:
            raise DecryptionError("cannot unwrap data key: wrong key-encryption key or altered") from None
        nonce = os.urandom(cipher.NONCE_BYTES)
        out.append(nonce + new.encrypt(nonce, dek, new_aad))
    return out


def describe_source(settings: Settings) -> str:
    """Where this installation's keys come from, in one line fit for a log (never a key itself)."""
    if settings.key_provider == "env":
        return "keys come from HELPLINE_MASTER_KEY (key provider 'env'); nothing is stored on disk"
    if settings.key_provider == "vault":
        return (
            f"keys come from Vault transit at {settings.vault_addr}, key {settings.vault_key_name!r} "
            "(key provider 'vault'); the key-encryption key never leaves Vault"
        )
    return (
        f"keys come from the key file {settings.key_path} (key provider 'file'); keep an offline copy, "
        "or set HELPLINE_KEY_PROVIDER=env or vault to keep keys off this disk"
    )


def make_provider(settings: Settings) -> KeyProvider:
    """The provider the settings ask for, with a clear error if it cannot start."""
    if settings.key_provider == "env":
        assert settings.master_key is not None
        return EnvKeyProvider(settings.master_key)
    if settings.key_provider == "vault":
        from app.crypto.vault import VaultTransitProvider

        return VaultTransitProvider.from_settings(settings)
    return FileKeyProvider(settings.key_path)


class Keyring:
    """Wraps and unwraps per-subject data keys through a provider, with a bounded cache of open DEKs."""

    def __init__(self, provider: KeyProvider, *, cache_size: int = 4096) -> None:
        self.provider = provider
        self._cache: OrderedDict[tuple[uuid.UUID, int], bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.index_roots: dict[int, bytes] = {}
        self.index_keys: dict[tuple[str, int], bytes] = {}
        # (root id or "" for the current one, purpose) -> (root id, key); see app.crypto.purpose.
        self.purpose_keys: dict[tuple[str, str], tuple[int, bytes]] = {}

    def wrap_dek(
        self, dek: bytes, *, subject_id: uuid.UUID, key_id: int, kek_id: int | None = None
    ) -> tuple[int, bytes]:
        kek_id = kek_id if kek_id is not None else self.provider.primary_kek_id()
        aad = cipher.dek_aad(subject_id=subject_id, key_id=key_id, kek_id=kek_id)
        return kek_id, self.provider.wrap(kek_id, dek, aad)

    def unwrap_dek(self, wrapped: bytes, *, subject_id: uuid.UUID, key_id: int, kek_id: int) -> bytes:
        cache_key = (subject_id, key_id)
        with self._lock:
            dek = self._cache.get(cache_key)
            if dek is not None:
                self._cache.move_to_end(cache_key)
                return dek
        aad = cipher.dek_aad(subject_id=subject_id, key_id=key_id, kek_id=kek_id)
        dek = self.provider.unwrap(kek_id, wrapped, aad)
        self.remember(subject_id, key_id, dek)
        return dek

    def remember(self, subject_id: uuid.UUID, key_id: int, dek: bytes) -> None:
        with self._lock:
            self._cache[(subject_id, key_id)] = dek
            self._cache.move_to_end((subject_id, key_id))
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def evict(self, subject_id: uuid.UUID) -> None:
        """Forget every cached data key of a subject (after shredding or re-encryption)."""
        with self._lock:
            for cache_key in [k for k in self._cache if k[0] == subject_id]:
                del self._cache[cache_key]

    def evict_many(self, subject_ids: set[uuid.UUID]) -> None:
        """Forget the cached data keys of many subjects in one pass over the cache."""
        with self._lock:
            for cache_key in [k for k in self._cache if k[0] in subject_ids]:
                del self._cache[cache_key]

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self.index_roots.clear()
            self.index_keys.clear()
            self.purpose_keys.clear()

    def __repr__(self) -> str:
        return f"Keyring(provider={self.provider.name}, cached={len(self._cache)})"


_keyrings: dict[tuple[str, str, str], Keyring] = {}
_keyrings_lock = threading.Lock()


def get_keyring(settings: Settings) -> Keyring:
    """One keyring per key source and database for the life of the process."""
    source = str(settings.key_path) if settings.key_provider == "file" else settings.key_provider
    cache_key = (settings.key_provider, source, settings.database_url)
    with _keyrings_lock:
        keyring = _keyrings.get(cache_key)
        if keyring is None:
            keyring = Keyring(make_provider(settings))
            _keyrings[cache_key] = keyring
        return keyring


def forget_keyrings() -> None:
    """Drop every cached keyring (tests, and after a restore or rotation in another process)."""
    with _keyrings_lock:
        for keyring in _keyrings.values():
            keyring.clear()
        _keyrings.clear()
