"""Migration 0014 on an install whose queue already holds repeats: of each thing the earliest raised stays
open and every later open one is resolved by ``system`` on its own day; resolved entries and different
things are left as they were; downgrade drops the rule and keeps the entries."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy import Engine, insert, inspect, select, text
from sqlalchemy.schema import CreateIndex

from app import bootstrap
from app.attention.models import AttentionItem
from app.db import Base, make_engine
from tests.conftest import BACKENDS, make_settings

# (id, kind, raised_on, record_code, other_code, raised_by, resolved_on, resolved_by), as inserted before 0014.
BEFORE = [
    (uuid.UUID(int=11), "immediate_danger", date(2026, 11, 28), "K-0001", None, "zaur", None, None),
    (uuid.UUID(int=12), "immediate_danger", date(2026, 11, 25), "K-0001", None, "aminat", None, None),
    (uuid.UUID(int=13), "immediate_danger", date(2026, 11, 29), "K-0001", None, "zaur", None, None),
    # Raised the same day: the lower id stays open.
    (uuid.UUID(int=22), "duplicate", date(2026, 11, 27), "K-0002", "K-0001", "zaur", None, None),
    (uuid.UUID(int=21), "duplicate", date(2026, 11, 27), "K-0002", "K-0001", "aminat", None, None),
    # About no record: one open per person who raised it.
    (uuid.UUID(int=31), "duress", date(2026, 11, 20), None, None, "aminat", None, None),
    (uuid.UUID(int=32), "duress", date(2026, 11, 21), None, None, "aminat", None, None),
    (uuid.UUID(int=33), "duress", date(2026, 11, 22), None, None, "zaur", None, None),
    # Already resolved before a later open one: untouched, and no repeat of the open one.
    (uuid.UUID(int=41), "known_bad", date(2026, 11, 10), "K-0004", None, "aminat", date(2026, 11, 11), "lena"),
    (uuid.UUID(int=42), "known_bad", date(2026, 11, 12), "K-0004", None, "aminat", None, None),
    # Another thing for the same record: its own entry.
    (uuid.UUID(int=51), "known_bad", date(2026, 11, 26), "K-0001", None, "zaur", None, None),
]
RESOLVED = {  # id -> (resolved_on, resolved_by) after the upgrade
    uuid.UUID(int=11): (date(2026, 11, 28), "system"),
    uuid.UUID(int=13): (date(2026, 11, 29), "system"),
    uuid.UUID(int=22): (date(2026, 11, 27), "system"),
    uuid.UUID(int=32): (date(2026, 11, 21), "system"),
    uuid.UUID(int=41): (date(2026, 11, 11), "lena"),
}
COLUMNS = ("id", "kind", "raised_on", "record_code", "other_code", "raised_by", "resolved_on", "resolved_by")


@pytest.fixture(params=BACKENDS)
def before_0014(request, database_url_factory, tmp_path):
    settings = make_settings(tmp_path, database_url=database_url_factory(request.param))
    engine = make_engine(settings)
    bootstrap.upgrade(engine)
    bootstrap.downgrade(engine, "0013")
    with engine.begin() as conn:
        conn.execute(insert(AttentionItem), [dict(zip(COLUMNS, row, strict=True)) for row in BEFORE])
    yield engine
    engine.dispose()


def _entries(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(*(getattr(AttentionItem, c) for c in COLUMNS)))]


def _has_rule(engine: Engine) -> bool:
    catalog = (
        "SELECT count(*) FROM pg_indexes WHERE indexname = :n"
        if engine.dialect.name == "postgresql"
        else "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = :n"
    )
    with engine.connect() as conn:
        return bool(conn.scalar(text(catalog), {"n": "uq_attention_item_open_thing"}))


def test_repeats_are_resolved_by_system_on_their_own_day_and_the_earliest_stays_open(before_0014) -> None:
    engine = before_0014
    bootstrap.upgrade(engine)
    expected = [row[:6] + RESOLVED.get(row[0], (None, None)) for row in BEFORE]
    assert sorted(_entries(engine)) == sorted(expected)
    assert _has_rule(engine)


def test_downgrade_drops_the_rule_and_keeps_every_entry(before_0014) -> None:
    engine = before_0014
    bootstrap.upgrade(engine)
    after = sorted(_entries(engine))
    bootstrap.downgrade(engine, "0013")
    assert not _has_rule(engine)
    assert sorted(_entries(engine)) == after
    with engine.begin() as conn:  # no rule any more: a repeat goes in again
        conn.execute(insert(AttentionItem), [dict(zip(COLUMNS, BEFORE[0], strict=True)) | {"id": uuid.uuid4()}])
    assert len(_entries(engine)) == len(BEFORE) + 1


def test_the_rule_built_is_the_one_the_model_declares(before_0014) -> None:
    # Alembic compares expression indexes on PostgreSQL only, and never their WHERE: both checked here.
    engine = before_0014
    bootstrap.upgrade(engine)
    (declared,) = (
        i for i in Base.metadata.tables["attention_item"].indexes if i.name == "uq_attention_item_open_thing"
    )
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            built = conn.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'uq_attention_item_open_thing'"))
        assert built == str(CreateIndex(declared).compile(dialect=engine.dialect))
    else:
        (built,) = (i for i in inspect(engine).get_indexes("attention_item") if i["name"] == declared.name)
        assert (built["unique"], built["dialect_options"]["postgresql_where"]) == (True, "(resolved_on IS NULL)")
