"""What the figures were measured on: CPU, cores, memory, and the versions of the stack."""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import subprocess
from importlib import metadata
from typing import Any

PACKAGES = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "cryptography", "pydantic", "psycopg", "alembic", "httpx")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        return 0


def _tool_version(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None


def postgres_version() -> str | None:
    try:
        from tests.support.pgserver import find_pg_bindir

        return _tool_version([str(find_pg_bindir() / "postgres"), "--version"])
    except Exception:
        return None


def describe() -> dict[str, Any]:
    """Machine and versions, for the results file."""
    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgres": postgres_version(),
        "wrk": _tool_version(["wrk", "--version"]),
    }
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {
        "machine": {
            "cpu_model": _cpu_model(),
            "cores": os.cpu_count() or 0,
            "ram_bytes": _ram_bytes(),
            "platform": platform.platform(),
            "load_average_at_start": list(load),
        },
        "versions": versions,
    }
