"""A rebuild starting beside a writer takes the epoch rows in the writers' order, so neither fails.

Writers hold the live epochs FOR KEY SHARE in epoch order (``crypto.live_epochs``). A rebuild that took
them FOR UPDATE in the table's physical order could hold the newer row while a writer held the older one
and then wait for it, while the writer waited for the newer: PostgreSQL breaks such a deadlock by failing
one of them. Here the rows are laid out newest first on disk, a writer holds the older row, the rebuild's
lock is taken, and then the writer takes the newer row; it must get it, and the rebuild must go on after
the writer commits. (PostgreSQL only: SQLite runs one writer at a time.)
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import text

from app import bootstrap
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.db import make_engine, unit_of_work
from app.lifecycle import reindex
from tests.conftest import make_settings

LIVE = "state IN ('active', 'building')"


def test_a_rebuild_waits_for_a_writer_instead_of_deadlocking_with_it(database_url_factory, tmp_path) -> None:
    settings = make_settings(tmp_path, database_url=database_url_factory("postgresql"))
    bootstrap.migrate(settings)
    engine = make_engine(settings)
    try:
        with unit_of_work(engine) as session:
            crypto.bind(session, settings=settings, keyring=get_keyring(settings))
            older = crypto.active_epoch(session).epoch
            newer = crypto.new_index_epoch(session, bits=14, widths={"contact.handle": 14}, building=True)
        with engine.begin() as conn:  # a new version of the older row: on disk it now comes after the newer
            conn.execute(text("UPDATE index_key SET bits = bits WHERE epoch = :e"), {"e": older})
            on_disk = list(conn.scalars(text(f"SELECT epoch FROM index_key WHERE {LIVE}")))
        assert on_disk == [newer, older]  # the layout this test is about

        writer = engine.connect()
        writer.begin()
        writer.execute(text("SET LOCAL lock_timeout = '10s'"))
        writer.execute(text("SELECT epoch FROM index_key WHERE epoch = :e FOR KEY SHARE"), {"e": older})
        outcome: dict[str, object] = {}

        def rebuild() -> None:
            try:
                with unit_of_work(engine) as session:
                    session.execute(text("SET LOCAL lock_timeout = '20s'"))
                    reindex.lock_epochs(session)
                    outcome["locked"] = True
            except Exception as exc:  # what the test reports: the rebuild failed
                outcome["error"] = exc

        starter = threading.Thread(target=rebuild)
        starter.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the rebuild waits for a lock the writer holds
            with engine.connect() as probe:
                waiting = probe.scalar(
                    text("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype IN ('tuple', 'transactionid')")
                )
            if waiting:
                break
            time.sleep(0.05)
        assert waiting, "the rebuild never waited for the writer"
        time.sleep(1.5)  # past deadlock_timeout (1 s): a deadlock would be found by now
        writer.execute(text("SELECT epoch FROM index_key WHERE epoch = :e FOR KEY SHARE"), {"e": newer})
        writer.commit()
        writer.close()
        starter.join(timeout=30)
        assert "error" not in outcome, outcome.get("error")
        assert outcome.get("locked") is True
    finally:
        engine.dispose()
