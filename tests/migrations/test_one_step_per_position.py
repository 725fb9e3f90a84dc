"""Migration 0015 on a referral whose steps already share a position: renumbered in their recorded order,
every step kept; afterwards a step at a taken position is refused; downgrade drops the rule, keeps the steps."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from app import bootstrap
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.db import make_engine, unit_of_work
from app.referrals import service as referral_service
from tests.conftest import BACKENDS, make_settings
from tests.factories import Factory
from tests.referrals.conftest import referral_of_region
from tests.referrals.test_package import AGE_RECIPIENT, PUBLIC_B64

RULE = "uq_referral_step_referral_id_position"


@pytest.fixture(params=BACKENDS)
def install(request, migrated_url_factory, tmp_path):
    """A referral sent and accepted (steps 0 and 1), on a database taken back to 0014."""
    settings = make_settings(tmp_path, database_url=migrated_url_factory(request.param))
    bootstrap.migrate(settings)
    engine = make_engine(settings)
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=get_keyring(settings))
        referral_service.add_partner(
            session=s, actor="admin", name="Shelter", age_recipient=AGE_RECIPIENT, verify_key=PUBLIC_B64
        )
        factory = Factory(s)
        made, _case = referral_of_region(s, factory, partner="Shelter")
        referral_service.move(session=s, actor=factory.user("coordinator"), referral_id=made.id, to="accepted")
    bootstrap.downgrade(engine, "0014")
    yield engine, made.id
    engine.dispose()


def _key(engine, value: uuid.UUID) -> object:
    return value if engine.dialect.name == "postgresql" else value.hex


def _add_step(engine, referral_id: uuid.UUID, *, position: int, status: str) -> None:
    """A step at ``position``, a day after every other, as two writers stepping at once left them."""
    with engine.begin() as conn:
        conn.execute(
            text(
                'INSERT INTO referral_step (id, referral_id, position, status, "on", source, actor)'
                " VALUES (:id, :r, :p, :s, :on, 'by_hand', 'coord')"
            ),
            {
                "id": _key(engine, uuid.uuid4()),
                "r": _key(engine, referral_id),
                "p": position,
                "s": status,
                "on": date(2099, 1, 1),
            },
        )


def _steps(engine, referral_id: uuid.UUID) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT position, status FROM referral_step WHERE referral_id = :r ORDER BY position, status"),
            {"r": _key(engine, referral_id)},
        )
        return [(p, s) for p, s in rows]


def test_steps_at_one_position_are_renumbered_in_order_and_kept(install) -> None:
    engine, referral_id = install
    _add_step(engine, referral_id, position=1, status="declined")
    assert _steps(engine, referral_id) == [(0, "sent"), (1, "accepted"), (1, "declined")]
    bootstrap.upgrade(engine)
    assert _steps(engine, referral_id) == [(0, "sent"), (1, "accepted"), (2, "declined")]
    assert RULE in {i["name"] for i in inspect(engine).get_indexes("referral_step")}
    with pytest.raises(IntegrityError):
        _add_step(engine, referral_id, position=2, status="withdrawn")


def test_downgrade_drops_the_rule_and_keeps_every_step(install) -> None:
    engine, referral_id = install
    bootstrap.upgrade(engine)
    bootstrap.downgrade(engine, "0014")
    assert RULE not in {i["name"] for i in inspect(engine).get_indexes("referral_step")}
    _add_step(engine, referral_id, position=1, status="declined")
    assert _steps(engine, referral_id) == [(0, "sent"), (1, "accepted"), (1, "declined")]
