"""Eight intake clients on one SQLite database: no "database is locked", nothing acknowledged lost,
not even when the server is killed with SIGKILL in the middle of the load."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.load import CLIENTS, Load, missing_writes
from tests.security import figures
from tests.support.live_server import LiveServer


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the soak and the kill: each test checks only the writes and log lines of its own load."""
    with LiveServer(tmp_path_factory.mktemp("sqlite-load")) as server:
        yield server


@pytest.mark.slow
def test_eight_clients_for_the_soak_period_lose_nothing_and_never_see_a_lock(live: LiveServer) -> None:
    mark = live.log_mark()
    load = Load(live, clients=CLIENTS).start()
    load.run_for(figures.soak_seconds())
    outcome = load.stop()
    assert outcome.unexpected == []
    assert outcome.locked == 0
    assert set(outcome.statuses) == {"201"}
    # Enough writes to mean something: every client got many through.
    assert len(outcome.acknowledged) >= CLIENTS * 10
    assert missing_writes(live, outcome.acknowledged) == {}
    log = live.log_since(mark)
    assert "database is locked" not in log
    assert "Traceback" not in log
    assert live.cli("audit", "verify").returncode == 0


@pytest.mark.slow
def test_sigkill_under_load_loses_no_acknowledged_write_and_keeps_the_audit_chain(live: LiveServer) -> None:
    phase = max(3.0, figures.soak_seconds() / 4)
    starts = live.starts
    load = Load(live, clients=CLIENTS).start()
    load.run_for(phase)
    acknowledged_before_kill = len(load.outcome.acknowledged)
    with load.fault():
        live.kill()
        live.start(port=live.port)
    load.run_for(phase)
    outcome = load.stop()
    assert acknowledged_before_kill > 0
    assert len(outcome.acknowledged) > acknowledged_before_kill  # the restarted server took writes again
    assert outcome.unexpected == []  # only requests in flight around the kill failed
    assert outcome.locked == 0
    assert missing_writes(live, outcome.acknowledged) == {}
    verify = live.cli("audit", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert live.starts == starts + 1
