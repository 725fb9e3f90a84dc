"""Concurrent intake clients against a live server, with faults injected in the middle.

Each client is a thread with its own httpx connection and its own caseworker token, recording
contacts as fast as the server takes them. Every 201 is an acknowledged write whose id and code
are kept; afterwards the database is asked for every one of them. A fault (SIGKILL of the
server, restart of PostgreSQL) is bracketed by ``fault()``: a request that was in flight while a
fault was going on may fail; any other failure is a finding.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

import httpx
from sqlalchemy import select

from app.contacts.models import Contact
from tests.security import figures
from tests.support.live_server import LiveServer, unique_name

CLIENTS = 8


def contact_body(client: int, n: int) -> dict[str, object]:
    return {
        "received_on": date.today().isoformat(),
        "channel": "telegram",
        "region": "chechnya",
        "language": "ru",
        "risk": "high",
        "needs": ["evacuation", "shelter"],
        "alias": f"load client {client} contact {n}",
        "handle": f"@load_{client}_{n}",
        "notes": "recorded by the load test; nothing real",
    }


@dataclass
class Outcome:
    acknowledged: dict[uuid.UUID, str] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    # Failures of requests that neither started nor ran during a fault: each is a finding.
    unexpected: list[str] = field(default_factory=list)
    # Failures excused because a fault was going on while the request was in flight.
    during_fault: int = 0
    locked: int = 0


class Load:
    """``CLIENTS`` threads posting contacts to ``live`` until ``stop()``."""

    def __init__(self, live: LiveServer, *, clients: int = CLIENTS) -> None:
        self.live = live
        self.outcome = Outcome()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._faults_begun = 0
        self._faults_ended = 0
        self.tokens = []
        for _ in range(clients):
            account = live.create_user(unique_name("load"), "caseworker", via_cli=False)
            self.tokens.append(live.issue_token(account))
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Outcome:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in self._threads), "a load client did not stop"
        figures.count("acknowledged_writes", len(self.outcome.acknowledged))
        figures.count("locked_errors", self.outcome.locked)
        figures.count("server_errors_outside_faults", sum(1 for u in self.outcome.unexpected if u.startswith("5")))
        return self.outcome

    def run_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    @contextlib.contextmanager
    def fault(self) -> Iterator[None]:
        """Bracket an injected fault: requests in flight during it may fail."""
        with self._lock:
            self._faults_begun += 1
        figures.count("faults_injected")
        try:
            yield
        finally:
            with self._lock:
                self._faults_ended += 1

    def _connect(self, index: int) -> httpx.Client:
        return httpx.Client(
            base_url=self.live.base_url,
            headers={"Authorization": f"Bearer {self.tokens[index]}"},
            timeout=60,
            event_hooks=figures.HTTPX_HOOKS,
        )

    def _client(self, index: int) -> None:
        n = 0
        http = self._connect(index)
        try:
            while not self._stop.is_set():
                n += 1
                with self._lock:
                    begun_at_start, in_fault_at_start = self._faults_begun, self._faults_begun != self._faults_ended
                response: httpx.Response | None = None
                try:
                    response = http.post("/api/v1/contacts", json=contact_body(index, n))
                    status, text = str(response.status_code), response.text
                except httpx.TransportError as exc:
                    status, text = "transport", type(exc).__name__
                with self._lock:
                    excused = in_fault_at_start or self._faults_begun != begun_at_start
                    self.outcome.statuses[status] += 1
                    if "database is locked" in text:
                        self.outcome.locked += 1
                    if response is not None and response.status_code == 201:
                        body = response.json()
                        self.outcome.acknowledged[uuid.UUID(body["id"])] = body["code"]
                        continue
                    if excused:
                        self.outcome.during_fault += 1
                    else:
                        self.outcome.unexpected.append(f"{status} {text[:200]}")
                # After a failure, start on a fresh connection as a real client would: the server
                # may have closed this one after its error answer.
                http.close()
                http = self._connect(index)
                if response is None:
                    time.sleep(0.05)  # the server is down: do not spin
        finally:
            http.close()


def missing_writes(live: LiveServer, acknowledged: dict[uuid.UUID, str]) -> dict[uuid.UUID, str]:
    """The acknowledged contacts the database does not hold (with the code it answered)."""
    found: dict[uuid.UUID, str] = {}
    ids = list(acknowledged)
    with live.session() as db:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for contact_id, code in db.execute(  # type: ignore[attr-defined]
                select(Contact.id, Contact.code).where(Contact.id.in_(chunk))
            ):
                found[contact_id] = code
    missing = {i: c for i, c in acknowledged.items() if found.get(i) != c}
    figures.count("lost_writes", len(missing))
    return missing
