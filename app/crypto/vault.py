"""HashiCorp Vault transit as a key provider: the KEK never leaves Vault.

Data keys are wrapped and unwrapped by Vault's ``transit/encrypt`` and ``transit/decrypt`` with the DEK's
associated data, so a wrapped key only opens for its own subject, key id and KEK id. KEK ids are the
transit key's version numbers; rotation is ``transit/keys/<name>/rotate`` and retiring a version raises
the key's minimum decryption version and trims the older versions away.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import hvac
import hvac.exceptions

from app.config import Settings
from app.crypto.errors import CryptoError, DecryptionError, UnknownKeyError

MOUNT = "transit"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _version_of(wrapped: bytes) -> int:
    parts = wrapped.split(b":", 2)
    if len(parts) != 3 or parts[0] != b"vault" or not parts[1].startswith(b"v") or not parts[1][1:].isdigit():
        raise DecryptionError("wrapped data key is not a Vault transit ciphertext")
    return int(parts[1][1:])


class VaultTransitProvider:
    """KEKs are versions of one transit key; every wrap and unwrap is a call to Vault."""

    name = "vault"

    def __init__(self, client: Any, key_name: str, *, mount_point: str = MOUNT) -> None:
        self._client = client
        self._key = key_name
        self._mount = mount_point
        self._ensure_key()

    @classmethod
    def from_settings(cls, settings: Settings) -> VaultTransitProvider:
        if not (settings.vault_addr and settings.vault_token):
            raise CryptoError("the vault key provider needs HELPLINE_VAULT_ADDR and HELPLINE_VAULT_TOKEN")
        client = hvac.Client(url=settings.vault_addr, token=settings.vault_token, timeout=10)
        return cls(client, settings.vault_key_name)

    # -- plumbing -------------------------------------------------------------------------

    def _call(self, what: str, func: Any, *args: Any, invalid: type[CryptoError] = CryptoError, **kwargs: Any) -> Any:
        """``invalid`` is raised for a request Vault refuses as invalid: DecryptionError only for an unwrap,
        where it means a wrong key, a moved key or an altered one; anything else is the operator's to fix."""
        try:
            return func(*args, mount_point=self._mount, **kwargs)
        except hvac.exceptions.InvalidPath:
            raise UnknownKeyError(f"Vault transit key {self._key!r} not found ({what})") from None
        except hvac.exceptions.Forbidden:
            raise CryptoError(f"Vault refused {what}: the token lacks permission or has expired") from None
        except hvac.exceptions.InvalidRequest as exc:
            # Vault's messages name paths and versions, never plaintext.
            reason = "; ".join(getattr(exc, "errors", None) or []) or "invalid request"
            raise invalid(f"Vault {what} failed: {reason}") from None
        except hvac.exceptions.VaultError as exc:
            raise CryptoError(f"Vault {what} failed: {type(exc).__name__}") from None
        except OSError as exc:  # requests' connection errors derive from OSError
            raise CryptoError(f"cannot reach Vault for {what}: {type(exc).__name__}") from None

    def _batch(self, what: str, func: Any, sent: int, **kwargs: Any) -> list[dict[str, Any]]:
        """One result per key sent, in order: a short answer must not pair a new wrapping with another's row."""
        results: list[dict[str, Any]] = self._call(what, func, **kwargs)["data"]["batch_results"]
        if len(results) != sent:
            raise CryptoError(f"Vault {what} failed: {len(results)} results for {sent} data keys")
        return results

    def _info(self) -> dict[str, Any]:
        data: dict[str, Any] = self._call("reading the key", self._client.secrets.transit.read_key, name=self._key)[
            "data"
        ]
        return data

    def _ensure_key(self) -> None:
        try:
            self._info()
        except UnknownKeyError:
            self._call(
                "creating the key", self._client.secrets.transit.create_key, name=self._key, key_type="aes256-gcm96"
            )

    # -- KeyProvider ----------------------------------------------------------------------

    def primary_kek_id(self) -> int:
        return int(self._info()["latest_version"])

    def kek_ids(self) -> list[int]:
        info = self._info()
        floor = int(info.get("min_decryption_version") or 1)
        return sorted(int(v) for v in info["keys"] if int(v) >= floor)

    def wrap(self, kek_id: int, dek: bytes, aad: bytes) -> bytes:
        response = self._call(
            "wrapping a data key",
            self._client.secrets.transit.encrypt_data,
            name=self._key,
            plaintext=_b64(dek),
            associated_data=_b64(aad),
            key_version=kek_id,
        )
        wrapped = str(response["data"]["ciphertext"]).encode("ascii")
        if _version_of(wrapped) != kek_id:
            raise CryptoError(f"Vault wrapped under version {_version_of(wrapped)}, not {kek_id}")
        return wrapped

    def unwrap(self, kek_id: int, wrapped: bytes, aad: bytes) -> bytes:
        if _version_of(wrapped) != kek_id:
            raise DecryptionError("cannot unwrap data key: its KEK id does not match the Vault ciphertext")
        response = self._call(
            "unwrapping a data key",
            self._client.secrets.transit.decrypt_data,
            name=self._key,
            ciphertext=wrapped.decode("ascii"),
            associated_data=_b64(aad),
            invalid=DecryptionError,
        )
        return base64.b64decode(response["data"]["plaintext"])

    def rewrap_batch(self, items: Sequence[tuple[int, bytes, bytes, bytes]], target: int) -> list[bytes]:
        """Re-wrap (kek id, wrapped, old aad, new aad) items under ``target`` in two batched Vault calls."""
        for kek_id, wrapped, _, _ in items:
            if _version_of(wrapped) != kek_id:
                raise DecryptionError("cannot unwrap data key: its KEK id does not match the Vault ciphertext")
        opened = self._batch(
            "unwrapping data keys",
            self._client.secrets.transit.decrypt_data,
            len(items),
            name=self._key,
            batch_input=[{"ciphertext": w.decode("ascii"), "associated_data": _b64(a)} for _, w, a, _ in items],
            invalid=DecryptionError,
        )
        if any("error" in r and r["error"] for r in opened):
            raise DecryptionError("Vault could not unwrap a data key of the batch: wrong key or altered")
        sealed = self._batch(
            "wrapping data keys",
            self._client.secrets.transit.encrypt_data,
            len(items),
            name=self._key,
            key_version=target,
            batch_input=[
                {"plaintext": r["plaintext"], "associated_data": _b64(item[3])}
                for r, item in zip(opened, items, strict=True)
            ],
        )
        if any("error" in r and r["error"] for r in sealed):
            raise CryptoError("Vault could not wrap a data key of the batch")
        return [str(r["ciphertext"]).encode("ascii") for r in sealed]

    def add_primary_kek(self) -> int:
        self._call("rotating the key", self._client.secrets.transit.rotate_key, name=self._key)
        return self.primary_kek_id()

    def retire_kek(self, kek_id: int) -> None:
        info = self._info()
        latest = int(info["latest_version"])
        if kek_id >= latest:
            raise CryptoError("refusing to retire the primary key-encryption key")
        floor = int(info.get("min_decryption_version") or 1)
        if kek_id < floor:
            return
        # Vault versions are a range: retiring one retires every older one with it.
        self._call(
            "retiring old key versions",
            self._client.secrets.transit.update_key_configuration,
            name=self._key,
            min_decryption_version=kek_id + 1,
            min_encryption_version=0,
        )
        self._call(
            "trimming old key versions",
            self._client.secrets.transit.trim_key,
            name=self._key,
            min_version=kek_id + 1,
        )

    def integrity_root(self, root_id: int | None = None) -> tuple[int, bytes]:
        """Vault's HMAC under a transit key of its own (``<name>-integrity``), which ``keys rotate``
        never touches: the root is computed inside Vault and its key never leaves it."""
        name = f"{self._key}-integrity"
        try:
            info: dict[str, Any] = self._call(
                "reading the integrity key", self._client.secrets.transit.read_key, name=name
            )["data"]
        except UnknownKeyError:
            self._call(
                "creating the integrity key",
                self._client.secrets.transit.create_key,
                name=name,
                key_type="aes256-gcm96",
            )
            info = self._call("reading the integrity key", self._client.secrets.transit.read_key, name=name)["data"]
        version = int(info["latest_version"]) if root_id is None else root_id
        response = self._call(
            "deriving the integrity root",
            self._client.secrets.transit.generate_hmac,
            name=name,
            hash_input=_b64(b"helpline integrity root"),
            key_version=version,
            algorithm="sha2-256",
        )
        mac = str(response["data"]["hmac"])
        if not mac.startswith(f"vault:v{version}:"):
            raise CryptoError(f"Vault computed the integrity root under another version than {version}")
        return version, base64.b64decode(mac.split(":", 2)[2])

    def __repr__(self) -> str:
        return f"VaultTransitProvider(key={self._key!r})"
