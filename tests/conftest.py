"""Shared fixtures: settings and keys in a temp dir, migrated SQLite and PostgreSQL databases,
a per-test session rolled back at the end, an API client sharing that session, and factories.

Database fixtures are parametrised over both backends: every test that asks for ``session`` or
``client`` runs on SQLite and on a real PostgreSQL server started here as an unprivileged user.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app import bootstrap
from app.auth import passwords
from app.config import Settings
from app.crypto import service as crypto
from app.crypto.keyring import FileKeyProvider, Keyring, forget_keyrings, get_keyring
from app.db import make_engine
from app.dependencies import get_session
from app.errors import HelplineError
from tests.factories import Factory

BACKENDS = ("sqlite", "postgresql")
if os.environ.get("HELPLINE_TEST_BACKENDS"):
    BACKENDS = tuple(os.environ["HELPLINE_TEST_BACKENDS"].split(","))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with long tests (marked ``slow``) first, each module kept whole and in its order.

    ``make test`` runs in two processes that are handed whole modules as they go; a long module begun last would keep
    one process busy after the other ran out of work.
    """
    long_modules = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in long_modules)


def make_settings(base: Path, *, database_url: str | None = None, **overrides: object) -> Settings:
    """Settings for a throwaway install under ``base`` (key file created if absent)."""
    base.mkdir(parents=True, exist_ok=True)
    key_file = base / "keys.json"
    if not key_file.exists():
        FileKeyProvider.create(key_file)
    values: dict[str, object] = {
        "data_dir": base,
        "key_file": key_file,
        "database_url": database_url or f"sqlite:///{base / 'helpline.db'}",
        "secure_cookies": False,
        # Many tests record dozens of contacts as one caseworker; the tests of these limits set them low.
        "intake_per_hour": 100_000,
        "decrypt_alarm_per_hour": 100_000,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.support.pgserver import start_postgres

    server = start_postgres(tmp_path_factory.mktemp("pg"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_url_factory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Make an empty database of a backend and return its URL."""

    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'helpline.db'}"
        server = request.getfixturevalue("pg_server")
        return server.create_database(f"t_{uuid.uuid4().hex[:12]}")  # type: ignore[attr-defined]

    return make


@pytest.fixture(scope="session")
def migrated_url_factory(
    request: pytest.FixtureRequest, database_url_factory, tmp_path_factory: pytest.TempPathFactory
):
    """Make a database of a backend at the latest Alembic revision and return its URL.

    Alembic runs once per backend, into a template; every database made here is a copy of it (a file
    copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL). The template holds the schema and
    nothing else (the migrations write no rows), so ``bootstrap.migrate`` on a copy still makes that
    install's own keyed rows, exactly as on a database migrated from empty.
    """
    templates: dict[str, str] = {}

    def make(backend: str) -> str:
        if backend not in templates:
            url = database_url_factory(backend)
            engine = create_engine(url, poolclass=NullPool)
            bootstrap.upgrade(engine)
            engine.dispose()  # a PostgreSQL template must have no open connection while it is copied
            templates[backend] = url
        template = make_url(templates[backend])
        if backend == "sqlite":
            target = tmp_path_factory.mktemp("sqlite") / "helpline.db"
            shutil.copyfile(str(template.database), target)
            return f"sqlite:///{target}"
        server = request.getfixturevalue("pg_server")
        return server.create_database(f"t_{uuid.uuid4().hex[:12]}", template=template.database)  # type: ignore[attr-defined,no-any-return]

    return make


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def migrated(
    backend: str, database_url_factory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, Settings]]:
    """A database of the current backend at the latest migration, shared by the session's tests."""
    settings = make_settings(tmp_path_factory.mktemp(f"install-{backend}"), database_url=database_url_factory(backend))
    bootstrap.migrate(settings)
    engine = make_engine(settings)
    yield engine, settings
    engine.dispose()


@pytest.fixture
def settings(migrated: tuple[Engine, Settings]) -> Settings:
    return migrated[1]


@pytest.fixture
def keyring(settings: Settings) -> Keyring:
    return get_keyring(settings)


@pytest.fixture
def engine(migrated: tuple[Engine, Settings]) -> Engine:
    return migrated[0]


@pytest.fixture
def session(migrated: tuple[Engine, Settings]) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test (commits become savepoints)."""
    engine, settings = migrated
    connection = engine.connect()
    outer = connection.begin()
    db = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False, autoflush=False)
    crypto.bind(db, settings=settings, keyring=get_keyring(settings))
    try:
        yield db
    finally:
        db.close()
        if outer.is_active:
            outer.rollback()
        connection.close()


@pytest.fixture
def factory(session: Session) -> Factory:
    return Factory(session)


@pytest.fixture(scope="session")
def migrated_app(migrated: tuple[Engine, Settings]) -> object:
    """The real app on the session's database, built once per backend.

    Building it (FastAPI analysing every route) costs more than most tests; its state is the settings,
    the keyring and the engine, the same for every test of the backend. Each test gets its own
    TestClient (its own cookies, its own lifespan) and its own dependency overrides.
    """
    from app.main import create_app

    return create_app(migrated[1])


@pytest.fixture
def client(session: Session, settings: Settings, migrated_app) -> Iterator[TestClient]:
    """The real app, whose unit of work runs inside the test's rolled-back transaction."""
    app = migrated_app
    app.dependency_overrides.clear()

    def shared_session() -> Iterator[Session]:
        try:
            yield session
            session.commit()
        except HelplineError as exc:
            session.commit() if exc.keep_changes else session.rollback()
            raise
        except BaseException:
            session.rollback()
            raise

    app.dependency_overrides[get_session] = shared_session
    try:
        with TestClient(app, base_url="http://testserver") as test_client:
            yield test_client
    finally:
        app.dependency_overrides.clear()  # the next test's client starts from the app as built


# Argon2id as Helpline runs it costs 19 MiB and two passes per hash or check; the suite creates and signs
# in thousands of accounts in-process. Tests hash at the lowest cost argon2id allows, the same algorithm and
# the same code paths, except those marked ``production_argon2``: the tests of the cost itself (and of the
# no-account path spending exactly that cost). Servers and CLI commands started as processes keep the real cost.
_CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, hash_len=32, salt_len=16)
_CHEAP_DUMMY = _CHEAP_HASHER.hash(uuid.uuid4().hex)


@pytest.fixture(autouse=True)
def _argon2_cost(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("production_argon2") is None:
        monkeypatch.setattr(passwords, "_hasher", _CHEAP_HASHER)
        monkeypatch.setattr(passwords, "_DUMMY_HASH", _CHEAP_DUMMY)


@pytest.fixture(autouse=True)
def _fresh_keyrings() -> Iterator[None]:
    yield
    # Cached data keys must not leak between tests that shred or rotate.
    forget_keyrings()


@pytest.fixture
def tokyo_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A server whose local time is not UTC: what is stored and compared must not depend on the machine's zone."""
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
