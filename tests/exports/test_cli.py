"""``helpline export``: files written 0600, the same content rules as the API, an audit entry each."""

from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select

from app import bootstrap
from app.audit.models import AuditEntry
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.db import make_engine, unit_of_work
from tests.conftest import make_settings
from tests.factories import Factory

CANARY = "Canary-CLI-5R2P"


def _run(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
    env["HELPLINE_DATA_DIR"] = str(data)
    return subprocess.run(
        [sys.executable, "-m", "app", *args], env=env, cwd=data.parent, capture_output=True, text=True, timeout=120
    )


def test_cli_exports_are_private_audited_and_clean(tmp_path) -> None:
    data = tmp_path / "data"
    settings = make_settings(data)
    bootstrap.migrate(settings)
    engine = make_engine(settings)
    with unit_of_work(engine) as session:
        crypto.bind(session, settings=settings, keyring=get_keyring(settings))
        factory = Factory(session)
        worker = factory.user("caseworker")
        for i in range(10):
            factory.contact(worker, received_on=date(2026, 2, 2) + timedelta(days=i), notes=f"{CANARY} {i}")
    records, report, doc = tmp_path / "records.csv", tmp_path / "report.csv", tmp_path / "report.json"
    result = _run(data, "stats", "release", "--month", "2026-02")
    assert result.returncode == 0, result.stderr
    assert "released 2026-02 (month)" in result.stdout
    result = _run(data, "export", "records", "--out", str(records))  # released months only: February
    assert result.returncode == 0, result.stderr
    assert "10 rows written" in result.stdout
    assert result.stderr == ""  # no progress bar when stderr is not a terminal (a pipe here, a log file in cron)
    result = _run(data, "stats", "releases")
    assert result.returncode == 0 and "2026-02" in result.stdout and "exact" in result.stdout
    again = _run(data, "stats", "release", "--month", "2026-02")
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "already released" in again.stderr
    current = _run(data, "stats", "release", "--month", date.today().strftime("%Y-%m"))
    assert current.returncode == 1 and "ended" in current.stderr and "Traceback" not in current.stderr
    bad = _run(data, "stats", "release", "--month", "Feb 2026")
    assert bad.returncode == 1 and "YYYY-MM" in bad.stderr and bad.stderr.count("\n") == 1
    result = _run(data, "export", "aggregate", "--format", "csv", "--out", str(report), "--from", "2026-01-10")
    assert result.returncode == 0, result.stderr
    result = _run(data, "export", "aggregate", "--format", "json", "--out", str(doc))
    assert result.returncode == 0, result.stderr
    for path in (records, report, doc):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert CANARY.encode() not in path.read_bytes()
    rows = list(csv.DictReader(line for line in records.read_text().splitlines() if not line.startswith("#")))
    assert len(rows) == 10 and {r["period"] for r in rows} == {"2026-02"}
    assert "period_from,2026-02-01" in report.read_text() and "by_region,2026-02,chechnya,10," in report.read_text()
    assert [r["period"] for r in json.loads(doc.read_text())["releases"]][0] == "2026-02"
    with engine.connect() as conn:
        actions = conn.execute(select(AuditEntry.action, AuditEntry.actor).order_by(AuditEntry.seq)).all()
    assert "stats.release" in [a for a, _ in actions]
    assert [a for a, _ in actions if a.startswith("export.")] == [
        "export.records",
        "export.aggregate",
        "export.aggregate",
    ]
    assert all(actor.startswith("cli") for a, actor in actions if a.startswith("export."))
    engine.dispose()


def test_a_bad_date_is_one_line(tmp_path) -> None:
    data = tmp_path / "data"
    bootstrap.migrate(make_settings(data))
    result = _run(data, "export", "aggregate", "--out", str(tmp_path / "x.csv"), "--from", "March")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["helpline: --from must be a date written as YYYY-MM-DD"]
