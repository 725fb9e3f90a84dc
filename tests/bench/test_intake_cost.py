"""The intake-cost benchmark's floor is real: its replay writes exactly what the intakes wrote.

``bench/intake_cost.py`` reports SQLite's own work per intake by replaying the statements it captured
through the bare driver. That figure means something only if the capture is whole (every statement and
every commit) and the replay starts from the database as the intakes found it; both are checked here on
a small install, with no timing asserted.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench import dataset, intake_cost


class _Ctx:
    smoke = True

    def log(self, message: str) -> None:
        print(message)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[dataset.Install, Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("intake-cost")
    install = dataset.build(300, root / "install", log=lambda _m: None)
    twin = root / "twin.db"
    return install, twin, intake_cost._record(_Ctx(), install, 5, 30, twin)


def _fresh_copy(twin: Path, dest: Path) -> Path:
    shutil.copyfile(twin, dest)
    for suffix in ("-wal", "-shm"):
        if Path(f"{dest}{suffix}").exists():
            os.remove(f"{dest}{suffix}")
    return dest


def test_the_replay_writes_what_the_intakes_wrote(recorded, tmp_path: Path) -> None:
    install, twin, result = recorded
    after = intake_cost.state(install.db_path)
    before = intake_cost.state(twin)
    assert after["contact"] == before["contact"] + 30  # the twin was taken before the measured intakes
    copy = _fresh_copy(twin, tmp_path / "replay.db")
    seconds = intake_cost.replay(copy, result["captured"])
    assert seconds > 0
    assert intake_cost.state(copy) == after


def test_every_intake_commits_once_after_its_token_read(recorded) -> None:
    _install, _twin, result = recorded
    statements = [s for s, _p, _m in result["captured"]]
    # Two transactions an intake: the token read, then the write under BEGIN IMMEDIATE.
    assert statements.count("COMMIT") == 60
    assert statements.count("BEGIN IMMEDIATE") == 30
    assert sum(1 for s in statements if s.startswith("INSERT INTO contact ")) == 30
    assert set(result["spent"]) == {"authentication", "service", "commit"}
    assert all(v > 0 for v in result["spent"].values())


def test_a_replay_missing_a_statement_is_caught(recorded, tmp_path: Path) -> None:
    install, twin, result = recorded
    captured = list(result["captured"])
    dropped = next(i for i, (s, _p, _m) in enumerate(captured) if s.startswith("INSERT INTO audit_entry "))
    del captured[dropped]
    copy = _fresh_copy(twin, tmp_path / "short.db")
    intake_cost.replay(copy, captured)
    assert intake_cost.state(copy) != intake_cost.state(install.db_path)
