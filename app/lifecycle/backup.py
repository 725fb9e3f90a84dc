"""Encrypted, consistent backups and their restore.

A backup is an age file (encrypted with ``pyrage`` to an X25519 recipient whose identity lives offline, so
the server alone cannot read its own backups) holding a tar of ``manifest.json`` and the database snapshot:
SQLite through the online backup API, PostgreSQL through ``pg_dump --format=custom``. The key file is never
inside: a backup restores only where the KEKs are available, and a stolen backup plus a stolen identity
still yields only field ciphertexts.

Anyone holding the age recipient can make a file that decrypts, so every backup is also signed with the
organisation's Ed25519 key from the key provider (``app.crypto.signing``, context ``backup``):
``signature.json`` beside the manifest holds the public half and a signature over the manifest's exact
bytes, and the manifest names the snapshot's SHA-256. ``restore`` refuses, in one line, a backup that is
unsigned, signed by another key, or whose snapshot does not match — unless told ``--trust-unsigned``.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyrage
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.crypto import signing
from app.crypto.errors import CryptoError
from app.crypto.keyring import forget_keyrings, get_keyring
from app.crypto.models import DataKey, IndexKey
from app.db import make_engine
from app.errors import HelplineError

FORMAT = "helpline-backup"
VERSION = 2  # 2: signed; version 1 (unsigned) is read only with --trust-unsigned
MANIFEST = "manifest.json"
SIGNATURE = "signature.json"
SIGNING_CONTEXT = "backup"
SQLITE_MEMBER = "helpline.db"
PG_MEMBER = "helpline.pgdump"
# Tables whose rows make a database "not empty" for restore: a freshly migrated one has none.
RECORD_TABLES = ("user_account", "contact", "evacuation_case", "data_key", "audit_entry")


class BackupError(HelplineError):
    """A backup or restore cannot go on; the message says why in one line."""


def _private_file(path: Path, *, exclusive: bool = True) -> int:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    return os.open(path, flags, 0o600)


@contextmanager
def _private_dir(settings: Settings) -> Iterator[Path]:
    """A 0700 scratch directory on the data volume (no plaintext leaves it), removed afterwards."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=".helpline-backup-", dir=settings.data_dir))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _sqlite_path(settings: Settings) -> Path:
    path = make_url(settings.database_url).database
    if not path or path == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(path)


def find_pg_tool(name: str) -> str:
    """``pg_dump``/``pg_restore``: $HELPLINE_PG_BINDIR, then PATH, then the newest /usr/lib/postgresql/*/bin."""
    override = os.environ.get("HELPLINE_PG_BINDIR")
    if override and os.access(Path(override) / name, os.X_OK):
        return str(Path(override) / name)
    found = shutil.which(name)
    if found:
        return found

    def version(path: str) -> tuple[int, ...]:
        m = re.search(r"/postgresql/([0-9.]+)/bin/", path)
        return tuple(int(p) for p in m.group(1).split(".") if p) if m else (0,)

    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=version, reverse=True):
        if os.access(candidate, os.X_OK):
            return candidate
    raise BackupError(f"{name} not found: install the PostgreSQL client tools of the server's version")


def _pg_env(settings: Settings) -> tuple[dict[str, str], str]:
    """libpq environment for the configured database (the password goes in PGPASSWORD, never argv)."""
    url = make_url(settings.database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for var, value in (
        ("PGHOST", url.host),
        ("PGPORT", url.port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
    ):
        if value is not None:
            env[var] = str(value)
    if not url.database:
        raise BackupError("HELPLINE_DATABASE_URL names no database")
    return env, url.database


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        raise BackupError(f"{what} failed: {lines[-1] if lines else f'exit code {proc.returncode}'}")


def _revision_and_keks(engine: Engine) -> tuple[str | None, list[int]]:
    with engine.connect() as conn:
        revision = None
        if inspect(conn).has_table("alembic_version"):
            revision = conn.scalar(text("SELECT version_num FROM alembic_version"))
        keks = set(conn.scalars(select(DataKey.kek_id).distinct())) | set(
            conn.scalars(select(IndexKey.kek_id).distinct())
        )
    return revision, sorted(int(k) for k in keks)


def _recipient(value: str) -> Any:
    try:
        return pyrage.x25519.Recipient.from_str(value.strip())
    except Exception:
        raise BackupError("--recipient is not an age public key (age1...)") from None


def backup(*, settings: Settings, out: Path, recipient: str) -> dict[str, Any]:
    """Write an age-encrypted snapshot of the configured database to ``out`` (0600); returns its manifest."""
    to = _recipient(recipient)
    if out.exists():
        raise BackupError(f"{out} already exists; refusing to overwrite it")
    engine = make_engine(settings)
    try:
        revision, keks = _revision_and_keks(engine)
    finally:
        engine.dispose()
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "backend": "sqlite" if settings.is_sqlite else "postgresql",
        "revision": revision,
        "created_on": settings.today().isoformat(),
        "kek_ids": keks,
    }
    with _private_dir(settings) as tmp:
        if settings.is_sqlite:
            member = tmp / SQLITE_MEMBER
            os.close(_private_file(member))
            source = sqlite3.connect(_sqlite_path(settings))
            target = sqlite3.connect(member)
            try:
                source.backup(target)  # one step: a consistent snapshot even while the service writes
                target.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
            finally:
                target.close()
                source.close()
        else:
            member = tmp / PG_MEMBER
            env, dbname = _pg_env(settings)
            os.close(_private_file(member))
            _run(
                [
                    find_pg_tool("pg_dump"),
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    f"--file={member}",
                    dbname,
                ],
                env,
                "pg_dump",
            )
        manifest["database"] = member.name
        manifest["database_sha256"] = _sha256(member)
        keyring = get_keyring(settings)
        manifest["signed_by"] = signing.public_key(keyring)
        body = json.dumps(manifest, indent=2).encode()
        signature = {
            "algorithm": "ed25519",
            "public_key": manifest["signed_by"],
            "signature": base64.b64encode(signing.sign(keyring, context=SIGNING_CONTEXT, message=body)).decode(),
        }
        archive = tmp / "backup.tar"
        with os.fdopen(_private_file(archive), "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
            for name, data in ((MANIFEST, body), (SIGNATURE, json.dumps(signature, indent=2).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o600
                tar.addfile(info, io.BytesIO(data))
            tar.add(member, arcname=member.name)
        try:
            with archive.open("rb") as reader, os.fdopen(_private_file(out), "wb") as writer:
                pyrage.encrypt_io(reader, writer, [to])
        except BaseException:
            out.unlink(missing_ok=True)
            raise
    return manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def signature_problem(
    settings: Settings, *, manifest_bytes: bytes, manifest: dict[str, Any], signature: bytes | None, database: Path
) -> str | None:
    """Why this backup's signature cannot be trusted, or None if it is this installation's and intact."""
    if signature is None:
        return "it is unsigned"
    try:
        doc = json.loads(signature)
        public, sig = str(doc["public_key"]), base64.b64decode(doc["signature"], validate=True)
    except (ValueError, KeyError, TypeError):
        return "its signature is malformed"
    ours = signing.public_key(get_keyring(settings))
    if public != ours:
        return "it is signed by another key than this installation's"
    if not signing.verify(ours, context=SIGNING_CONTEXT, message=manifest_bytes, signature=sig):
        return "its signature does not match its contents"
    if manifest.get("database_sha256") != _sha256(database):
        return "its database snapshot is not the one that was signed"
    return None


def _identity(identity_file: Path) -> Any:
    try:
        lines = identity_file.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        raise BackupError(f"cannot read identity file {identity_file}") from None
    for line in lines:
        if line.strip().startswith("AGE-SECRET-KEY-"):
            try:
                return pyrage.x25519.Identity.from_str(line.strip())
            except Exception:
                break
    raise BackupError(f"{identity_file} holds no age identity (a line starting AGE-SECRET-KEY-1)")


def _database_has_records(settings: Settings) -> bool:
    if settings.is_sqlite and not _sqlite_path(settings).exists():
        return False
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
            for table in RECORD_TABLES:
                if table in present and conn.scalar(select(func.count()).select_from(text(table))):
                    return True
        return False
    finally:
        engine.dispose()


def _open_archive(path: Path, identity: Any, tmp: Path) -> tuple[dict[str, Any], bytes, bytes | None, Path]:
    archive = tmp / "backup.tar"
    try:
        with path.open("rb") as reader, os.fdopen(_private_file(archive), "wb") as writer:
            pyrage.decrypt_io(reader, writer, [identity])
    except OSError:
        raise BackupError(f"cannot read backup {path}") from None
    except Exception:
        raise BackupError(f"cannot decrypt {path}: it was not made for this identity, or it is damaged") from None
    try:
        with tarfile.open(archive, mode="r") as tar:
            manifest_file = tar.extractfile(MANIFEST)
            if manifest_file is None:
                raise KeyError(MANIFEST)
            manifest_bytes = manifest_file.read()
            manifest = json.loads(manifest_bytes)
            signature_file = tar.extractfile(SIGNATURE) if SIGNATURE in tar.getnames() else None
            signature = signature_file.read() if signature_file is not None else None
            if manifest.get("format") != FORMAT or manifest.get("version") not in (1, VERSION):
                raise BackupError(f"{path} is not a Helpline backup of a version this release reads")
            name = manifest.get("database")
            if name not in (SQLITE_MEMBER, PG_MEMBER):
                raise BackupError(f"{path} names no database snapshot")
            member = tar.extractfile(name)
            if member is None:
                raise KeyError(name)
            database = tmp / name
            with os.fdopen(_private_file(database), "wb") as fh:
                shutil.copyfileobj(member, fh)
    except (tarfile.TarError, KeyError, ValueError):
        raise BackupError(f"{path} decrypts but its contents are damaged") from None
    return manifest, manifest_bytes, signature, database


def restore(
    *, settings: Settings, path: Path, identity_file: Path, assume_yes: bool = False, trust_unsigned: bool = False
) -> dict[str, Any]:
    """Decrypt a backup and restore it into the configured database; refuses to overwrite records unless told,
    and refuses a backup this installation did not sign unless ``trust_unsigned``."""
    if not path.is_file():
        raise BackupError(f"backup {path} not found")
    identity = _identity(identity_file)
    with _private_dir(settings) as tmp:
        manifest, manifest_bytes, signature, database = _open_archive(path, identity, tmp)
        problem = signature_problem(
            settings, manifest_bytes=manifest_bytes, manifest=manifest, signature=signature, database=database
        )
        if problem is not None and not trust_unsigned:
            raise BackupError(f"refusing {path}: {problem} (pass --trust-unsigned to restore it anyway)")
        manifest["trusted_unsigned"] = problem
        backend = "sqlite" if settings.is_sqlite else "postgresql"
        if manifest.get("backend") != backend:
            raise BackupError(f"this is a {manifest.get('backend')} backup; the configured database is {backend}")
        if not assume_yes and _database_has_records(settings):
            raise BackupError("the configured database already holds records; pass --yes to overwrite it")
        if settings.is_sqlite:
            target_path = _sqlite_path(settings)
            target_path.parent.mkdir(parents=True, exist_ok=True)
            if not target_path.exists():
                os.close(_private_file(target_path))
            source = sqlite3.connect(database)
            target = sqlite3.connect(target_path, timeout=30)
            try:
                source.backup(target)  # page by page into the live file, WAL and all
            finally:
                target.close()
                source.close()
        else:
            env, dbname = _pg_env(settings)
            _run(
                [
                    find_pg_tool("pg_restore"),
                    "--clean",
                    "--if-exists",
                    "--no-owner",
                    "--no-privileges",
                    "--single-transaction",
                    f"--dbname={dbname}",
                    str(database),
                ],
                env,
                "pg_restore",
            )
    forget_keyrings()  # cached index roots belong to the database that was replaced
    return manifest


def missing_keks(settings: Settings, manifest: dict[str, Any]) -> list[int]:
    """KEK ids the backup's keys are wrapped under that the configured provider does not hold."""
    try:
        held = set(get_keyring(settings).provider.kek_ids())
    except CryptoError:
        held = set()
    return [int(k) for k in manifest.get("kek_ids", []) if int(k) not in held]
