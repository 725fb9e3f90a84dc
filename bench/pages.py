"""Page render: the intake form, a case page and the dashboard, served by ``helpline serve`` at the data set's size.

Signed-in web sessions are started through ``app.auth.sessions`` (the cookie the login form would set); each
page is fetched sequentially with httpx, the case page cycling through the caseworker's own cases. The
per-user bulk-read alarm is raised for the benchmark server only (``HELPLINE_DECRYPT_ALARM_PER_HOUR``), since
the benchmark reads more case pages in a minute than a person would in a day. Floor: ``GET /api/v1/health``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx

from bench import dataset, server
from bench.report import Outcome

TARGET_P95_MS = 200  # no figure is set in DESIGN.md; "nobody on a call waits" read as a fifth of a second


def requires() -> str | None:
    try:
        from app.auth import sessions
        from app.cases import pages as case_pages  # noqa: F401
        from app.contacts import pages as contact_pages  # noqa: F401
        from app.stats import pages as stats_pages  # noqa: F401
    except ImportError as exc:
        return f"web pages are not there yet ({exc})"
    return None if hasattr(sessions, "start") else "app.auth.sessions.start is not there yet"


def _web_cookie(install: dataset.Install, username: str) -> str:
    from app.auth import service as auth_service
    from app.auth import sessions
    from app.crypto import service as crypto
    from app.crypto.keyring import get_keyring
    from app.db import make_engine, unit_of_work

    settings = install.settings()
    engine = make_engine(settings)
    try:
        with unit_of_work(engine) as session:
            crypto.bind(session, settings=settings, keyring=get_keyring(settings))
            user = auth_service.get_user(session, username=username)
            return sessions.start(session, user=user).token
    finally:
        engine.dispose()


def _case_ids(install: dataset.Install, username: str, n: int) -> list[str]:
    from sqlalchemy import select

    from app.auth.models import User
    from app.cases.models import Case
    from app.db import make_engine

    engine = make_engine(install.settings())
    try:
        with engine.connect() as conn:
            uid = conn.execute(select(User.id).where(User.username == username)).scalar_one()
            ids = conn.execute(select(Case.id).where(Case.assigned_to_id == uid).limit(n)).scalars().all()
    finally:
        engine.dispose()
    return [str(i) for i in ids]


def _timed(http: httpx.Client, paths: list[str], *, warmup: int = 3) -> dict[str, float]:
    for path in paths[:warmup]:
        http.get(path)
    timings = []
    for path in paths:
        started = time.perf_counter()
        response = http.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}")
    timings.sort()
    return {
        "p50_ms": statistics.median(timings),
        "p95_ms": timings[max(0, int(len(timings) * 0.95) - 1)],
        "max_ms": timings[-1],
        "n": len(timings),
    }


def run(ctx: Any, outcome: Outcome) -> None:
    copy = ctx.sqlite_copy("pages")  # reading a case writes its audit entry
    n = 40 if ctx.quick else 200
    worker, coordinator = dataset.CASEWORKER, dataset.ROLES["coordinator"]
    cases = _case_ids(copy, worker, n)
    if not cases:
        raise RuntimeError("the data set has no case assigned to the benchmark caseworker")
    with server.serving(copy, HELPLINE_DECRYPT_ALARM_PER_HOUR="100000000") as live:
        cookies = {"worker": _web_cookie(copy, worker), "coordinator": _web_cookie(copy, coordinator)}
        from app.auth.sessions import COOKIE_NAME

        def client(who: str) -> httpx.Client:
            return httpx.Client(base_url=live.base_url, cookies={COOKIE_NAME: cookies[who]}, timeout=60)

        with httpx.Client(base_url=live.base_url, timeout=60) as http:
            floor = _timed(http, ["/api/v1/health"] * n)
        with client("worker") as http:
            intake = _timed(http, ["/contacts/new"] * n)
            case = _timed(http, [f"/cases/{cases[i % len(cases)]}" for i in range(n)])
        with client("coordinator") as http:
            dashboard = _timed(http, ["/dashboard"] * max(10, n // 4))
    for name, result in (
        ("intake form /contacts/new", intake),
        ("case page /cases/{id}", case),
        ("dashboard /dashboard", dashboard),
    ):
        outcome.add(f"{name} p95", result["p95_ms"], "ms", target=f"< {TARGET_P95_MS}", floor=floor["p95_ms"])
        outcome.add(f"{name} p50", result["p50_ms"], "ms", floor=floor["p50_ms"])
        outcome.details[name] = result
    outcome.details["floor /api/v1/health"] = floor
