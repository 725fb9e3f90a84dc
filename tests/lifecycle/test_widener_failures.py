"""The background index rebuild meets a deadlock with a key rotation or a writer: one line, and it carries on.

PostgreSQL breaks a deadlock by failing one side. For a request that is a replay (app/web/flow.py); for the
server's rebuild thread it is a retry at its next turn, which resumes where the last batch ended. It was logged
as an error with a traceback, as if the rebuild had broken; a failure that is not of that kind still is.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import DBAPIError

from app.lifecycle import reindex


class _Deadlock(Exception):
    sqlstate = "40P01"


class _Broken(Exception):
    sqlstate = "42P01"  # undefined table: not something a retry cures


class _Once(reindex.IndexWidener):
    """The widener's loop around a run that fails the way it is told to, once."""

    def __init__(self, failure: Exception) -> None:
        super().__init__(engine=None, settings=None, keyring=None, interval=0.01)  # type: ignore[arg-type]
        self.failure, self.calls, self.done = failure, 0, threading.Event()

    def run_once(self) -> None:  # type: ignore[override]
        self.calls += 1
        if self.calls == 1:
            raise self.failure
        self.done.set()
        self._stop.set()
        return None


def _run(failure: Exception, caplog) -> list[logging.LogRecord]:
    widener = _Once(failure)
    with caplog.at_level(logging.INFO, logger="helpline.reindex"):
        widener.start()
        assert widener.done.wait(10), "the widener did not carry on after the failure"
        widener.stop()
    assert widener.calls == 2
    return [r for r in caplog.records if r.name == "helpline.reindex"]


def test_a_deadlock_is_one_warning_line_and_the_rebuild_carries_on(caplog) -> None:
    records = _run(DBAPIError("SELECT", {}, _Deadlock()), caplog)
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("WARNING", "blind-index rebuild met _Deadlock 40P01; it is retried in 0.01 s")
    ]
    assert records[0].exc_info is None


def test_another_database_failure_is_still_an_error_with_its_traceback(caplog) -> None:
    records = _run(DBAPIError("SELECT", {}, _Broken()), caplog)
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("ERROR", "blind-index rebuild stopped; it is retried in 0.01 s")
    ]
    assert records[0].exc_info is not None
