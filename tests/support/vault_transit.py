"""A local stand-in for HashiCorp Vault's transit secrets engine, for tests (no Vault binary is packaged
for Debian or PyPI). It speaks the real HTTP API shapes on 127.0.0.1 so the provider is exercised through
``hvac`` unchanged:

- ``POST /v1/transit/keys/<name>`` (create), ``GET /v1/transit/keys/<name>`` (read),
  ``POST /v1/transit/keys/<name>/rotate``, ``/config`` (min_decryption_version), ``/trim``;
- ``POST /v1/transit/encrypt/<name>`` and ``/decrypt/<name>`` with ``plaintext``/``ciphertext``,
  ``associated_data``, ``key_version`` and ``batch_input``;
- ciphertexts ``vault:v<N>:base64(nonce | ciphertext | tag)`` under AES-256-GCM (type ``aes256-gcm96``);
- ``X-Vault-Token`` checked (403 ``permission denied``), errors as ``{"errors": [...]}``;
- ``POST /v1/transit/hmac/<name>`` (``sha2-256``) under a separate HMAC key per version, as Vault keeps one.

The engine can be mounted elsewhere than ``transit`` (``start(mount=...)``), and a test can put answers of
its own in front of the engine (``interpose``: a token's policy refusing one path, a Vault answering with
an error list or an unexpected body), to reach the provider's handling of what a real Vault may answer.

Key material stays inside this process, as it would inside Vault: tests can check it never reaches the
helpline database or key file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class _Failure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TransitKey:
    def __init__(self) -> None:
        self.versions: dict[int, bytes] = {1: AESGCM.generate_key(bit_length=256)}
        # Vault keeps a separate HMAC key beside each version's encryption key (keysutil's HMACKey).
        self.hmac_keys: dict[int, bytes] = {1: os.urandom(32)}
        self.created: dict[int, int] = {1: int(time.time())}
        self.min_decryption_version = 1
        self.min_encryption_version = 0
        self.min_available_version = 0

    @property
    def latest(self) -> int:
        return max(self.versions)

    def info(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "aes256-gcm96",
            "latest_version": self.latest,
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": self.min_encryption_version,
            "min_available_version": self.min_available_version,
            "keys": {str(v): self.created[v] for v in sorted(self.versions)},
            "deletion_allowed": False,
            "derived": False,
            "exportable": False,
            "supports_encryption": True,
            "supports_decryption": True,
        }

    def encrypt(self, plaintext_b64: str, aad_b64: str | None, version: int | None) -> str:
        version = version or self.latest
        if version > self.latest or version < max(self.min_encryption_version, 1) or version not in self.versions:
            raise _Failure(400, "requested version for encryption is not valid")
        nonce = os.urandom(12)
        body = AESGCM(self.versions[version]).encrypt(
            nonce, _unb64(plaintext_b64), _unb64(aad_b64) if aad_b64 else None
        )
        return f"vault:v{version}:" + base64.b64encode(nonce + body).decode()

    def hmac(self, input_b64: str, version: int | None, algorithm: str | None) -> str:
        if (algorithm or "sha2-256") != "sha2-256":
            raise _Failure(400, "the stand-in supports sha2-256 only")
        version = int(version or self.latest)
        if version < self.min_encryption_version or version not in self.hmac_keys:
            raise _Failure(400, "invalid key version")
        mac = hmac.new(self.hmac_keys[version], _unb64(input_b64), hashlib.sha256).digest()
        return f"vault:v{version}:" + base64.b64encode(mac).decode()

    def decrypt(self, ciphertext: str, aad_b64: str | None) -> str:
        parts = ciphertext.split(":", 2)
        if len(parts) != 3 or parts[0] != "vault" or not parts[1].startswith("v"):
            raise _Failure(400, "invalid ciphertext: no prefix")
        try:
            version = int(parts[1][1:])
        except ValueError:
            raise _Failure(400, "invalid ciphertext: version number could not be decoded") from None
        if version < self.min_decryption_version:
            raise _Failure(400, "ciphertext or signature version is disallowed by policy (too old)")
        if version not in self.versions:
            raise _Failure(400, "invalid key version")
        blob = _unb64(parts[2])
        try:
            plain = AESGCM(self.versions[version]).decrypt(blob[:12], blob[12:], _unb64(aad_b64) if aad_b64 else None)
        except InvalidTag:
            raise _Failure(400, "cipher: message authentication failed") from None
        return base64.b64encode(plain).decode()


def _unb64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Failure(400, "failed to base64-decode") from None


class VaultTransitStandIn:
    """Start with ``VaultTransitStandIn.start()``; ``addr`` and ``token`` go into the settings."""

    def __init__(self, mount: str = "transit") -> None:
        self.token = "stand-in-" + base64.b32encode(os.urandom(10)).decode().lower()
        self.mount = mount
        self.keys: dict[str, TransitKey] = {}
        self.requests = 0
        self._interposed: dict[tuple[str, str], list[tuple[int, dict[str, Any] | None] | None]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @classmethod
    def start(cls, mount: str = "transit") -> VaultTransitStandIn:
        stand_in = cls(mount)
        handler = type("Handler", (_Handler,), {"vault": stand_in})
        stand_in._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # A short poll: stop() waits for the serving loop to notice, once per test.
        threading.Thread(target=stand_in._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return stand_in

    @property
    def addr(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def key_material(self) -> list[bytes]:
        """Every key version held (for tests asserting it never leaves 'Vault')."""
        return [k for key in self.keys.values() for k in [*key.versions.values(), *key.hmac_keys.values()]]

    def interpose(self, method: str, path: str, *answers: tuple[int, dict[str, Any] | None] | None) -> None:
        """Answer the next requests to ``method path`` (such as ``POST /v1/transit/keys/k/rotate``) with
        ``(status, body)`` in turn instead of the engine; ``None`` lets that request through. Once the
        answers are used up, requests reach the engine again."""
        with self._lock:
            self._interposed[(method, path)] = list(answers)

    def refuse(self, method: str, path: str, times: int = 1) -> None:
        """The token's policy denies ``method path`` for the next ``times`` requests, as Vault does."""
        self.interpose(method, path, *[(403, {"errors": ["1 error occurred:\n\t* permission denied\n\n"]})] * times)

    # -- request handling ------------------------------------------------------------------

    def handle(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        parts = path.strip("/").split("/")
        with self._lock:
            self.requests += 1
            queued = self._interposed.get((method, path))
            answer = queued.pop(0) if queued else None
            if answer is not None:
                return answer
            if parts[:2] != ["v1", self.mount] or len(parts) < 4:
                raise _Failure(404, f"no handler for route {path!r}")
            kind, name, rest = parts[2], parts[3], parts[4:]
            if kind == "keys":
                return self._keys(method, name, rest, body)
            key = self.keys.get(name)
            if key is None:
                raise _Failure(400, f"encryption key not found: {name}")
            if kind == "encrypt" and method == "POST":
                return 200, {"data": self._batch(body, lambda item: self._encrypt(key, item, body))}
            if kind == "hmac" and method == "POST":
                return 200, {"data": {"hmac": key.hmac(body["input"], body.get("key_version"), body.get("algorithm"))}}
            if kind == "decrypt" and method == "POST":
                return 200, {
                    "data": self._batch(
                        body, lambda item: {"plaintext": key.decrypt(item["ciphertext"], item.get("associated_data"))}
                    )
                }
        raise _Failure(405, "unsupported operation")

    @staticmethod
    def _encrypt(key: TransitKey, item: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        version = int(item.get("key_version") or body.get("key_version") or 0)
        ciphertext = key.encrypt(item["plaintext"], item.get("associated_data"), version)
        return {"ciphertext": ciphertext, "key_version": int(ciphertext.split(":")[1][1:])}

    @staticmethod
    def _batch(body: dict[str, Any], one: Any) -> dict[str, Any]:
        batch = body.get("batch_input")
        if not batch:
            return dict(one(body))
        results = []
        for item in batch:
            try:
                results.append(one(item))
            except _Failure as exc:
                results.append({"error": str(exc)})
        return {"batch_results": results}

    def _keys(self, method: str, name: str, rest: list[str], body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        key = self.keys.get(name)
        if not rest:
            if method == "GET":
                if key is None:
                    raise _Failure(404, "")
                return 200, {"data": key.info(name)}
            if method == "POST":
                if body.get("type", "aes256-gcm96") != "aes256-gcm96":
                    raise _Failure(400, "the stand-in supports aes256-gcm96 only")
                self.keys.setdefault(name, TransitKey())
                return 204, None
        if key is None:
            raise _Failure(400, f"encryption key not found: {name}")
        action = rest[0]
        if action == "rotate" and method == "POST":
            version = key.latest + 1
            key.versions[version] = AESGCM.generate_key(bit_length=256)
            key.hmac_keys[version] = os.urandom(32)
            key.created[version] = int(time.time())
            return 200, {"data": key.info(name)}
        if action == "config" and method == "POST":
            if "min_decryption_version" in body:
                wanted = int(body["min_decryption_version"])
                if wanted > key.latest:
                    raise _Failure(400, "cannot set min decryption version to be greater than the latest version")
                key.min_decryption_version = max(wanted, 1)
            if "min_encryption_version" in body:
                key.min_encryption_version = int(body["min_encryption_version"])
            return 200, {"data": key.info(name)}
        if action == "trim" and method == "POST":
            floor = int(body["min_available_version"])
            if floor > key.min_decryption_version or (
                key.min_encryption_version and floor > key.min_encryption_version
            ):
                raise _Failure(
                    400, "cannot set min available version greater than min decryption or encryption version"
                )
            for version in [v for v in key.versions if v < floor]:
                del key.versions[version]
                del key.hmac_keys[version]
                del key.created[version]
            key.min_available_version = floor
            return 200, {"data": key.info(name)}
        raise _Failure(405, "unsupported operation")


class _Handler(BaseHTTPRequestHandler):
    vault: VaultTransitStandIn

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (quiet test output)
        pass

    def _serve(self, method: str) -> None:
        try:
            if self.headers.get("X-Vault-Token") != self.vault.token:
                raise _Failure(403, "permission denied")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            status, payload = self.vault.handle(method, self.path.split("?", 1)[0], body)
        except _Failure as exc:
            status, payload = exc.status, {"errors": [str(exc)] if str(exc) else []}
        except (ValueError, KeyError):
            status, payload = 400, {"errors": ["invalid request"]}
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._serve("POST")
