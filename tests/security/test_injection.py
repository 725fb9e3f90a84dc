"""SQL injection: classic payloads in every query parameter of every GET route and in every JSON
field of intake, on both databases; then sqlmap against a live server on loopback.

Nothing may answer 500, no filter may widen what the caller sees, and a payload stored in a sealed
field must come back byte for byte (it is data, never SQL).
"""

from __future__ import annotations

import re
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.contacts.models import Contact
from tests.security import figures
from tests.support.live_server import LiveServer, unique_name

API = "/api/v1"

PAYLOADS = (
    "' OR '1'='1",
    "' OR 1=1 --",
    '" OR ""="',
    "1' OR '1'='1' /*",
    "x'; DROP TABLE contact; --",
    "'; DELETE FROM evacuation_case; --",
    "' UNION SELECT username, password_hash FROM user_account --",
    "1 UNION ALL SELECT NULL,NULL,NULL--",
    "%' OR 1=1 --",
    "chechnya' AND (SELECT 1 FROM pg_sleep(3)) IS NOT NULL --",
    "chechnya' AND 1=randomblob(100000000) --",
    "') OR ('a'='a",
    "\\'; SELECT 1; --",
    "ʼ OR ʼ1ʼ=ʼ1",  # modifier-letter apostrophes that some layers fold into quotes
    "chechnya\x00' OR 1=1 --",
    "2024-01-01' OR '1'='1",
    "-1 OR 1=1",
    "1e309",
    "99999999999999999999999999",
)


def _query_parameters(client) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """path -> names of its query parameters, for every GET operation of the served document."""
    document = client.get(f"{API}/openapi.json").json()
    found: dict[str, list[str]] = {}
    for path, item in document["paths"].items():
        operation = item.get("get")
        if not operation or "{" in path:
            continue
        names = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
        if names:
            found[path] = names
    return found


ROLE_FOR = {
    "/contacts": "caseworker",
    "/cases": "coordinator",
    "/search": "caseworker",
    "/attention": "coordinator",
    "/stats": "analyst",
    "/exports": "analyst",
    "/referrals": "coordinator",
}


def _role_for(path: str) -> str:
    for prefix, role in ROLE_FOR.items():
        if path.startswith(API + prefix):
            return role
    return "admin"


def _ids(response) -> set[str] | None:  # type: ignore[no-untyped-def]
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("items"), list):
            return {item["id"] for item in body["items"]}
    return None


def test_injection_in_every_query_parameter_neither_breaks_nor_widens(api, factory, session) -> None:
    client = api
    users = {role: factory.user(role) for role in ("caseworker", "coordinator", "analyst", "admin")}
    other = factory.user("caseworker")
    factory.case(users["caseworker"], full_name="Injection Probe")
    factory.case(other, full_name="Somebody Else")
    headers = {role: factory.headers(user) for role, user in users.items()}
    session.commit()
    contacts_before = session.scalar(select(func.count()).select_from(Contact))

    parameters = _query_parameters(client)
    assert {f"{API}/contacts", f"{API}/cases", f"{API}/stats/summary"} <= set(parameters)
    failures = []
    for path, names in parameters.items():
        role = _role_for(path)
        baseline = client.get(path, headers=headers[role])
        assert baseline.status_code == 200, (path, baseline.text[:200])
        visible = _ids(baseline)
        for name in names:
            for payload in PAYLOADS:
                response = client.get(path, params={name: payload}, headers=headers[role])
                figures.count("injection_payloads")
                figures.count("requests_sent")
                if response.status_code >= 500:
                    failures.append(f"{path}?{name}={payload!r}: {response.status_code}")
                    continue
                got = _ids(response) if response.status_code == 200 else None
                if got is not None and visible is not None and not got <= visible:
                    failures.append(f"{path}?{name}={payload!r}: rows the caller cannot otherwise see")
    assert failures == [], "\n".join(failures)
    assert session.scalar(select(func.count()).select_from(Contact)) == contacts_before


SEALED_CONTACT_FIELDS = ("alias", "handle", "notes")
PLAIN_CONTACT_FIELDS = ("region", "language", "channel", "risk", "received_on")


def _contact(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "received_on": date.today().isoformat(),
        "channel": "phone",
        "region": "ingushetia",
        "language": "ru",
        "risk": "low",
        "needs": [],
    }
    body.update(overrides)
    return body


def test_injection_in_every_intake_field_is_stored_as_data_or_refused(api, factory, session) -> None:
    client = api
    worker = factory.user("caseworker")
    coordinator = factory.user("coordinator")
    headers = factory.headers(worker)
    session.commit()
    failures = []
    for payload in PAYLOADS:
        for field in SEALED_CONTACT_FIELDS:
            response = client.post(f"{API}/contacts", json=_contact(**{field: payload}), headers=headers)
            figures.count("injection_payloads")
            figures.count("requests_sent", 2)
            if response.status_code != 201:
                failures.append(f"contact {field}={payload!r}: {response.status_code}")
                continue
            read = client.get(f"{API}/contacts/{response.json()['id']}", headers=headers).json()
            if payload.strip() and read[field] != payload:
                failures.append(f"contact {field}={payload!r} came back as {read[field]!r}")
        for field in PLAIN_CONTACT_FIELDS:
            response = client.post(f"{API}/contacts", json=_contact(**{field: payload}), headers=headers)
            figures.count("injection_payloads")
            figures.count("requests_sent")
            if response.status_code != 422:
                failures.append(f"contact {field}={payload!r}: {response.status_code} (a code list field takes no SQL)")
        response = client.post(f"{API}/contacts", json=_contact(needs=[payload]), headers=headers)
        figures.count("injection_payloads")
        if response.status_code != 422:
            failures.append(f"needs=[{payload!r}]: {response.status_code}")
        # The known-bad list and case assignment take free text too.
        coord_headers = factory.headers(coordinator)
        session.commit()
        for path, body in (
            (f"{API}/flagged-handles", {"handle": payload + "x", "reason": payload}),
            (f"{API}/auth/token", {"username": payload, "password": payload + "x" * 12, "otp": "123456"}),
        ):
            response = client.post(path, json=body, headers=coord_headers)
            figures.count("injection_payloads")
            figures.count("requests_sent")
            if response.status_code >= 500:
                failures.append(f"{path} {payload!r}: {response.status_code}")
    assert failures == [], "\n".join(failures)
    # Every table the payloads tried to drop or empty is still there and intact.
    session.expire_all()
    count = session.scalar(select(func.count()).select_from(Contact).where(Contact.recorded_by_id == worker.id))
    assert count == len(PAYLOADS) * len(SEALED_CONTACT_FIELDS)


def _sqlmap(url: str, token: str, out: Path, *, data: str | None = None) -> str:
    command = [
        "sqlmap",
        "-u",
        url,
        "--headers",
        f"Authorization: Bearer {token}",
        "--batch",
        "--level=2",
        "--risk=1",
        "--time-sec=1",
        "--threads=2",
        "--timeout=10",
        "--retries=0",
        "--disable-coloring",
        "--output-dir",
        str(out),
    ]
    if data is not None:
        command += ["--data", data, "--method", "POST"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=150, stdin=subprocess.DEVNULL)
    figures.count("sqlmap_runs")
    requests = re.findall(r"(\d+) HTTP\(s\) requests", proc.stdout)
    figures.count("requests_sent", sum(int(n) for n in requests))
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_sqlmap_finds_nothing_injectable_in_the_list_filters(live: LiveServer, tmp_path: Path) -> None:
    worker = live.create_user(unique_name("sqlmap"), "caseworker", via_cli=False)
    coordinator = live.create_user(unique_name("sqlmapc"), "coordinator", via_cli=False)
    targets = [
        (f"{live.base_url}/api/v1/contacts?region=chechnya&outcome=referred&received_from=2026-01-01", worker),
        (f"{live.base_url}/api/v1/cases?status=new&region=chechnya&opened_to=2026-12-31", coordinator),
    ]
    for url, account in targets:
        output = _sqlmap(url, live.issue_token(account), tmp_path / "sqlmap")
        # sqlmap must really have tested the parameters (and reached the app, authenticated) ...
        assert "testing 'AND boolean-based blind" in output, output[-2000:]
        assert "HTTP error code of 401" not in output
        # ... and found nothing.
        assert not re.search(r"parameter '[^']+' (is|appears to be) .*injectable", output), output[-3000:]
        assert "sqlmap identified the following injection point" not in output
        assert "all tested parameters do not appear to be injectable" in output, output[-2000:]
