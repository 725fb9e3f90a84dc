"""Rebuilding the blind indexes under a new epoch and width: matches survive, old keys go, and the
width belongs to the epoch, not to the setting of the day."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import bootstrap
from app.contacts import flagged
from app.contacts.schemas import FlaggedHandleIn
from app.crypto import service as crypto
from app.crypto.keyring import forget_keyrings, get_keyring
from app.crypto.models import BlindIndexEntry, IndexKey
from app.db import make_engine, unit_of_work
from app.lifecycle import reindex
from tests.conftest import BACKENDS, make_settings
from tests.factories import Factory


@pytest.fixture(params=BACKENDS)
def install(request, migrated_url_factory, tmp_path):
    settings = make_settings(tmp_path, database_url=migrated_url_factory(request.param))
    bootstrap.migrate(settings)
    engine = make_engine(settings)
    yield engine, settings
    engine.dispose()


def _seed(engine, settings):
    with unit_of_work(engine) as session:
        crypto.bind(session, settings=settings, keyring=get_keyring(settings))
        factory = Factory(session)
        worker, coordinator = factory.user("caseworker"), factory.user("coordinator")
        for i in range(30):
            factory.contact(worker, handle=f"@caller_{i}")
        factory.contact(worker, handle="+7 912 345-67-89")
        flagged.add_flagged_handle(
            session=session, actor=coordinator, data=FlaggedHandleIn(handle="@entrapper", reason="posed as a friend")
        )
        return worker.username


def _record(engine, settings, username, handle):
    from app.auth import service as auth_service

    with unit_of_work(engine) as session:
        crypto.bind(session, settings=settings, keyring=get_keyring(settings))
        worker = auth_service.get_user(session, username=username)
        return Factory(session).contact(worker, handle=handle)


def test_reindex_moves_every_entry_to_a_new_epoch_and_width_and_matches_survive(install) -> None:
    engine, settings = install
    username = _seed(engine, settings)
    result = reindex.reindex(engine=engine, settings=settings, keyring=get_keyring(settings), bits=16)
    assert (result.epoch, result.bits, result.indexed, result.skipped) == (2, 16, 32, 0)
    assert result.retired_epochs == [1]
    with engine.connect() as conn:
        assert conn.execute(select(IndexKey.epoch, IndexKey.bits)).all() == [(2, 16)]
        epochs = set(conn.scalars(select(BlindIndexEntry.epoch)))
        assert epochs == {2}
        assert max(conn.scalars(select(BlindIndexEntry.bucket))) < 2**16
    forget_keyrings()
    again = _record(engine, settings, username, "89123456789")
    assert again.possible_duplicate is True
    bad = _record(engine, settings, username, "@Entrapper")
    assert bad.flagged_handle is True
    fresh = _record(engine, settings, username, "@never_called_before")
    assert fresh.possible_duplicate is False and fresh.flagged_handle is False


def test_changing_the_width_setting_alone_does_not_break_matching(install) -> None:
    engine, settings = install
    username = _seed(engine, settings)
    forget_keyrings()
    # An operator changes HELPLINE_INDEX_BITS without rebuilding: the epoch's own width still rules.
    changed = settings.model_copy(update={"index_bits": 20})
    assert _record(engine, changed, username, "+79123456789").possible_duplicate is True
    assert _record(engine, changed, username, "@entrapper").flagged_handle is True


def test_an_interrupted_reindex_is_finished_by_running_it_again(install) -> None:
    engine, settings = install
    username = _seed(engine, settings)
    keyring = get_keyring(settings)
    calls = []

    def stop_after_first_batch(done: int, total: int) -> None:
        calls.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reindex.reindex(
            engine=engine, settings=settings, keyring=keyring, bits=14, batch_size=10, progress=stop_after_first_batch
        )
    with engine.connect() as conn:
        assert set(conn.scalars(select(IndexKey.epoch))) == {1, 2}
    result = reindex.reindex(engine=engine, settings=settings, keyring=keyring, batch_size=10)
    # The first run committed one batch of 10 before it stopped; the second moved the other 22.
    assert calls == [10]
    assert (result.epoch, result.bits, result.indexed) == (2, 14, 22)
    with engine.connect() as conn:
        assert conn.execute(select(IndexKey.epoch, IndexKey.bits)).all() == [(2, 14)]
        assert len(conn.scalars(select(BlindIndexEntry.subject_id)).all()) == 32
    forget_keyrings()
    assert _record(engine, settings, username, "@caller_29").possible_duplicate is True
