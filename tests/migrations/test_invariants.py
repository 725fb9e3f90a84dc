"""Migration 0011 on rows that already break its invariants: a history is renumbered, nothing lost;
two cases of one contact stop the upgrade, naming them, with nothing changed."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import inspect, text

from app import bootstrap
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.db import make_engine, unit_of_work
from tests.conftest import BACKENDS, make_settings
from tests.factories import Factory

COLUMNS = (
    "contact_id, status, region, opened_on, opened_by_id, assigned_to_id, verified_by_id, verified_on,"
    " first_contact_on, evacuated_on, resettled_on, closed_on, status_on"
)


@pytest.fixture(params=BACKENDS)
def install(request, database_url_factory, tmp_path):
    settings = make_settings(tmp_path, database_url=database_url_factory(request.param))
    engine = make_engine(settings)
    bootstrap.upgrade(engine)
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=get_keyring(settings))
        factory = Factory(s)
        worker = factory.user("caseworker")
        case = factory.case(worker, status="verifying", verifier=factory.user("coordinator"))
    bootstrap.downgrade(engine, "0010")
    yield engine, case
    engine.dispose()


def _positions(engine, case_id) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [
            (p, s)
            for p, s in conn.execute(
                text("SELECT position, to_status FROM case_transition WHERE case_id = :c ORDER BY position"),
                {"c": case_id if engine.dialect.name == "postgresql" else case_id.hex},
            )
        ]


def test_two_entries_at_one_position_are_renumbered_in_order_and_kept(install) -> None:
    engine, case = install
    cid = case.id if engine.dialect.name == "postgresql" else case.id.hex
    with engine.begin() as conn:
        conn.execute(
            text(
                'INSERT INTO case_transition (id, case_id, position, from_status, to_status, "on", actor_id)'
                " SELECT :new, case_id, position, from_status, 'paused', \"on\", actor_id FROM case_transition"
                " WHERE case_id = :c AND position = 1"
            ),
            {"new": uuid.uuid4() if engine.dialect.name == "postgresql" else uuid.uuid4().hex, "c": cid},
        )
    assert [p for p, _ in _positions(engine, case.id)] == [0, 1, 1]
    bootstrap.upgrade(engine)
    after = _positions(engine, case.id)
    assert [p for p, _ in after] == [0, 1, 2]
    assert sorted(s for _, s in after) == ["new", "paused", "verifying"]
    assert "uq_case_transition_case_id_position" in {i["name"] for i in inspect(engine).get_indexes("case_transition")}


def test_two_cases_of_one_contact_stop_the_upgrade_naming_them(install) -> None:
    engine, case = install
    cid = case.id if engine.dialect.name == "postgresql" else case.id.hex
    twin = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO evacuation_case (id, code, {COLUMNS}) SELECT :new, 'C-TWIN-00', {COLUMNS}"
                " FROM evacuation_case WHERE id = :c"
            ),
            {"new": twin if engine.dialect.name == "postgresql" else twin.hex, "c": cid},
        )
    with pytest.raises(RuntimeError, match=f"cases opened twice from one contact: .*{case.code}.*") as refused:
        bootstrap.upgrade(engine)
    assert "C-TWIN-00" in str(refused.value)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0010"
        assert conn.execute(text("SELECT count(*) FROM evacuation_case")).scalar_one() == 2
