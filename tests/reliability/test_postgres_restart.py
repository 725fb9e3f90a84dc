"""PostgreSQL restarted under intake load: the service reconnects by itself (pool_pre_ping) and
nothing it acknowledged is lost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.load import CLIENTS, Load, missing_writes
from tests.security import figures
from tests.support.live_server import LiveServer
from tests.support.pgserver import PostgresServer, start_postgres


@pytest.fixture
def postgres(tmp_path) -> Iterator[PostgresServer]:
    # A server of its own: restarting the suite's shared one would disturb other tests' pools.
    server = start_postgres(tmp_path / "pg")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_postgres_restart_under_load_recovers_without_restarting_the_service(
    tmp_path, postgres: PostgresServer
) -> None:
    url = postgres.create_database("helpline_restart")
    with LiveServer(tmp_path / "live", database_url=url) as live:
        phase = max(3.0, figures.soak_seconds() / 4)
        pid = live.pid
        load = Load(live, clients=CLIENTS).start()
        load.run_for(phase)
        acknowledged_before = len(load.outcome.acknowledged)
        with load.fault():
            postgres.restart()
        load.run_for(phase)
        outcome = load.stop()
        assert acknowledged_before > 0
        assert len(outcome.acknowledged) > acknowledged_before
        # Requests that began after PostgreSQL was back all succeeded: the pool recovered on its own.
        assert outcome.unexpected == []
        assert live.pid == pid and live.running  # the service itself was never restarted
        assert missing_writes(live, outcome.acknowledged) == {}
        verify = live.cli("audit", "verify", check=False)
        assert verify.returncode == 0, verify.stdout + verify.stderr
