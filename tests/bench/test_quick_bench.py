"""``make bench QUICK=1`` runs end to end and writes a complete, well-formed results file.

This checks the harness, not the figures: no timing is asserted anywhere. It runs ``--smoke``: the quick run's
data set and every benchmark of it, with one-second loads and single repeats (the quick run's own loads took
over two minutes of the suite and their figures are never read here).
"""

from __future__ import annotations

import importlib
import json
import math
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from bench.runner import BENCHMARKS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, subprocess.CompletedProcess[str]]:
    results_dir = tmp_path_factory.mktemp("bench-results")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--results-dir", str(results_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=290,
    )
    latest = results_dir / "latest.json"
    assert latest.exists(), f"no results file; exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return json.loads(latest.read_text("utf-8")), results_dir, proc


@pytest.mark.slow
def test_quick_run_exits_cleanly_and_prints_the_table(quick_results) -> None:
    doc, _, proc = quick_results
    errors = {name: b.get("reason") for name, b in doc["benchmarks"].items() if b["status"] == "error"}
    assert proc.returncode == 0, f"benchmarks failed: {errors}\n{proc.stderr[-3000:]}"
    assert "benchmark" in proc.stdout and "target" in proc.stdout


@pytest.mark.slow
def test_results_name_the_machine_versions_date_and_data_set(quick_results) -> None:
    doc, results_dir, _ = quick_results
    assert doc["quick"] is True and doc["smoke"] is True
    assert isinstance(doc["size"], int) and doc["size"] > 0
    assert doc["data_set"]["size"] == doc["size"]
    assert doc["data_set"]["rows"]["contact"] == doc["size"]
    datetime.fromisoformat(doc["date"])
    machine = doc["machine"]
    assert machine["cpu_model"] and machine["cores"] >= 1 and machine["ram_bytes"] > 0
    versions = doc["versions"]
    for name in ("python", "sqlite", "postgres", "sqlalchemy", "fastapi", "cryptography", "uvicorn", "wrk"):
        assert versions.get(name), f"no version for {name}"
    dated = [p for p in results_dir.glob("*.json") if p.name != "latest.json"]
    assert len(dated) == 1 and json.loads(dated[0].read_text("utf-8")) == doc


@pytest.mark.slow
def test_every_benchmark_is_present_with_numeric_figures(quick_results) -> None:
    doc, _, _ = quick_results
    assert set(doc["benchmarks"]) == set(BENCHMARKS)
    for name, bench in doc["benchmarks"].items():
        module = importlib.import_module(BENCHMARKS[name])
        if bench["status"] == "unavailable":
            # Only allowed while what it measures is genuinely missing from the tree.
            assert module.requires(), f"{name} reported unavailable but its code is there: {bench['reason']}"
            continue
        assert bench["status"] == "ok", f"{name}: {bench['status']}: {bench.get('reason')}"
        assert bench["figures"], f"{name} has no figures"
        for figure in bench["figures"]:
            assert figure["name"] and figure["unit"]
            assert isinstance(figure["value"], int | float) and not math.isnan(figure["value"]), figure
            if figure["floor"] is not None:
                assert isinstance(figure["floor"], int | float)
            if figure["target"] is not None:
                op, bound = figure["target"].split(" ")
                assert op in ("<", "<=", ">", ">=") and float(bound) == float(bound)
                assert isinstance(figure["passed"], bool)
            else:
                assert figure["passed"] is None


@pytest.mark.slow
def test_intake_is_measured_against_its_floors_on_both_backends(quick_results) -> None:
    doc, _, _ = quick_results
    names = {f["name"] for f in doc["benchmarks"]["intake"]["figures"]}
    for backend in ("sqlite", "postgresql"):
        assert f"{backend}.intake contacts/s (encrypted)" in names
        assert f"{backend}.floor: intake contacts/s, crypto off" in names
        assert f"{backend}.floor: GET /health" in names
        assert f"{backend}.encryption overhead vs floor" in names
        assert {f"{backend}.intake latency {p}" for p in ("p50", "p95", "p99")} <= names
    # SQLite is compared with the plain FastAPI + SQLAlchemy app in the same run, and one caseworker alone.
    assert {"sqlite.intake vs the plain app", "sqlite.floor: plain app contacts/s"} <= names
    assert {f"sqlite.one caseworker {p}" for p in ("p50", "p95", "p99")} <= names
    details = doc["benchmarks"]["intake"]["details"]["sqlite"]
    assert all(len(details["rounds"][load]) >= 2 for load in ("plain app", "helpline", "health"))
    # The servers' CPU per request beside the throughput: a request costs CPU time, however busy the machine.
    cpu = next(f for f in doc["benchmarks"]["intake"]["figures"] if f["name"] == "sqlite.intake server CPU per request")
    assert cpu["unit"] == "ms" and cpu["value"] > 0 and cpu["floor"] > 0
    assert all(r["server_cpu_ms"] > 0 for load in ("plain app", "helpline") for r in details["rounds"][load])
    # Split by thread: the event loop (the main thread) and the request threads (the rest) each spent some.
    for load in ("plain app", "helpline"):
        for r in details["rounds"][load]:
            assert 0 < r["event_loop_cpu_ms"] < r["server_cpu_ms"]
            assert r["threads_cpu_ms"] == pytest.approx(r["server_cpu_ms"] - r["event_loop_cpu_ms"])
    assert {"sqlite.intake event-loop CPU per request", "sqlite.intake request-thread CPU per request"} <= names
    # And what it costs the disk: Helpline writes the contact, its data key, index entry, audit entry and
    # counters where the plain app writes one row, so it must show more bytes, both above zero.
    written = next(
        f for f in doc["benchmarks"]["intake"]["figures"] if f["name"] == "sqlite.intake written per request"
    )
    assert written["unit"] == "KB" and written["value"] > written["floor"] > 0
    # PostgreSQL: what one request costs the server, the database and wrk, and the ceiling that puts on workers.
    pg = doc["benchmarks"]["intake"]["details"]["postgresql"]["encrypted"]
    assert pg["server_cpu_ms"] > 0 and pg["database_cpu_ms"] > 0 and pg["client_cpu_ms"] > 0
    assert "postgresql.most any number of workers could reach here vs 1 worker" in names


@pytest.mark.slow
def test_intake_cost_gives_the_request_work_beside_sqlites_own(quick_results) -> None:
    doc, _, _ = quick_results
    figures = {f["name"]: f for f in doc["benchmarks"]["intake_cost"]["figures"]}
    whole = figures["sqlite.intake in-process: the request's work, CPU per intake"]
    floor = figures["sqlite.intake in-process: SQLite's own work per intake"]
    assert whole["floor"] == floor["value"] > 0
    # SQLite's part is a part: the request's work holds it, and its three pieces add up to the whole.
    assert whole["value"] > floor["value"]
    parts = sum(
        figures[f"sqlite.intake in-process: {p}, CPU per intake"]["value"]
        for p in ("authentication", "service", "commit")
    )
    assert parts == pytest.approx(whole["value"], rel=1e-6)
    assert figures["sqlite.intake in-process: transactions per intake"]["value"] == 2
