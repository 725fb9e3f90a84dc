"""Bringing a database to the latest schema and a fresh install to a usable state."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, select

from app.audit import seals
from app.audit import service as audit
from app.auth import service as auth_service
from app.auth.models import Role, User
from app.config import Settings
from app.crypto import service as crypto
from app.crypto.keyring import FileKeyProvider, get_keyring
from app.db import get_engine, unit_of_work

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _migrations_root() -> Path:
    """Where alembic.ini and migrations/ live: beside the package in a checkout, else the working
    directory (an installed package, e.g. the Docker image's /srv/helpline)."""
    for root in (PROJECT_ROOT, Path.cwd()):
        if (root / "migrations" / "env.py").exists():
            return root
    raise FileNotFoundError("cannot find migrations/: run helpline from the directory that holds alembic.ini")


def alembic_config() -> Config:
    root = _migrations_root()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run migrations up to ``revision`` on this engine."""
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def migrate(settings: Settings) -> None:
    """Upgrade to head, make sure the blind-index root key exists, and key what predates the audit key."""
    engine = get_engine(settings)
    upgrade(engine)
    with unit_of_work(engine) as session:
        keyring = get_keyring(settings)
        crypto.bind(session, settings=settings, keyring=keyring)
        crypto.ensure_index_root(session)
        # Once: a chain from before the audit key is re-linked under it (recorded in the chain), and
        # only then are the accounts and cases of that time sealed. Afterwards a missing seal is a
        # failing one, so clearing a seal by SQL and running migrate again re-seals nothing.
        if audit.key_legacy_chain(session) is not None:
            seals.seal_unsealed(session, keyring)


def init(settings: Settings) -> list[str]:
    """A data directory, a new key file (0600) and a migrated database; refuses to overwrite a key."""
    done = []
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    if settings.key_provider == "file":
        FileKeyProvider.create(settings.key_path)
        done.append(f"created key file {settings.key_path} (mode 0600): keep a copy offline, apart from backups")
    migrate(settings)
    done.append("database is at the latest schema")
    return done


def ensure_first_admin(settings: Settings) -> auth_service.NewAccount | None:
    """Create an 'admin' account if there is no admin yet; None if one exists."""
    with unit_of_work(get_engine(settings)) as session:
        crypto.bind(session, settings=settings, keyring=get_keyring(settings))
        if session.scalar(select(User.id).where(User.role == Role.admin).limit(1)) is not None:
            return None
        return auth_service.create_user(session, actor="setup", username="admin", role=Role.admin)
