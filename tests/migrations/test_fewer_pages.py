"""Migration 0013 changes only the shape of tables, never a row: down to 0012 and up again keeps every
audit entry (the chain still verifies), every counter and every blind-index entry (a look-up still
finds the earlier contact); on SQLite the keys become the tables themselves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from app import bootstrap
from app.audit import service as audit
from app.auth.models import User
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.db import make_engine, unit_of_work
from tests.conftest import BACKENDS, make_settings
from tests.factories import Factory

HANDLE = "+7 912 345-67-89"


@pytest.fixture(params=BACKENDS)
def install(request, database_url_factory, tmp_path) -> Iterator[tuple[Engine, Any, Any]]:
    settings = make_settings(tmp_path, database_url=database_url_factory(request.param))
    engine = make_engine(settings)
    bootstrap.migrate(settings)  # the schema and the install's keys (the blind-index key among them)
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=get_keyring(settings))
        factory = Factory(s)
        worker = factory.user("caseworker")
        factory.contact(worker, handle=HANDLE, alias="Ivan")
        factory.case(worker, status="planning")
        worker_id = worker.id
    yield engine, settings, worker_id
    engine.dispose()


def _rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    queries = {
        "audit_entry": "SELECT seq, at, actor, action, target, detail, prev_hash, hash, key_id FROM audit_entry",
        "blind_index_entry": 'SELECT subject_id, "column", epoch, bucket, value_ct FROM blind_index_entry',
        "period_count": "SELECT grain, period, measure, dim, value, count FROM period_count",
    }
    with engine.connect() as conn:
        return {name: sorted(tuple(r) for r in conn.execute(text(q))) for name, q in queries.items()}


def _sqlite_shape(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        sql = dict(conn.execute(text("SELECT name, sql FROM sqlite_schema WHERE type = 'table'")).all())
        indexes = {
            name for (name,) in conn.execute(text("SELECT name FROM sqlite_schema WHERE tbl_name = 'audit_entry'"))
        }
    return {
        "without_rowid": {t for t in ("blind_index_entry", "period_count", "audit_entry") if "WITHOUT ROWID" in sql[t]},
        "audit_seq_index": "sqlite_autoindex_audit_entry_1" in indexes,
    }


def test_down_and_up_again_keeps_every_row_and_the_chain(install) -> None:
    engine, settings, worker_id = install
    before = _rows(engine)
    assert len(before["audit_entry"]) >= 5 and len(before["blind_index_entry"]) == 1 and before["period_count"]

    bootstrap.downgrade(engine, "0012")
    assert "ix_contact_received_on" in {i["name"] for i in inspect(engine).get_indexes("contact")}
    if engine.dialect.name == "sqlite":
        assert _sqlite_shape(engine) == {"without_rowid": set(), "audit_seq_index": True}
    assert _rows(engine) == before

    bootstrap.upgrade(engine)
    assert "ix_contact_received_on" not in {i["name"] for i in inspect(engine).get_indexes("contact")}
    if engine.dialect.name == "sqlite":
        assert _sqlite_shape(engine) == {
            "without_rowid": {"blind_index_entry", "period_count"},
            "audit_seq_index": False,
        }
        with engine.connect() as conn:
            # The entry's number is the row id itself.
            assert conn.execute(text("SELECT count(*) FROM audit_entry WHERE rowid != seq")).scalar() == 0
    assert _rows(engine) == before

    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=get_keyring(settings))
        assert audit.verify(s) == (len(before["audit_entry"]), None)
        # The same caseworker calls in the same number, written another way: the look-up finds it.
        again = Factory(s).contact(s.get(User, worker_id), handle="+79123456789")
    assert again.possible_duplicate is True


def test_a_range_of_days_is_still_read_through_an_index_on_sqlite(database_url_factory, tmp_path) -> None:
    # SQLite's plan is fixed by the schema; PostgreSQL's follows its statistics, so it is not pinned here.
    engine = make_engine(make_settings(tmp_path, database_url=database_url_factory("sqlite")))
    bootstrap.upgrade(engine)
    with engine.connect() as conn:
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                text("EXPLAIN QUERY PLAN SELECT count(*) FROM contact WHERE received_on >= :a AND received_on < :b"),
                {"a": "2026-01-01", "b": "2026-02-01"},
            )
        )
    engine.dispose()
    assert "ix_contact_export_by_day" in plan and "received_on>? AND received_on<?" in plan.replace("=", "")
