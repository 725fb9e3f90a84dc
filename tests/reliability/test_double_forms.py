"""One web form sent twice at once, to real servers with several workers: one record, never two, no 5xx.

The two copies of the same filled intake form (one page: one CSRF token, one one-time token) leave on
two connections released together, so they can land on different workers; the one-time token is spent
in the database in the transaction that records the contact, whichever worker gets there first.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from app.auth.models import User
from app.contacts.models import Contact
from tests.support.live_server import LiveAccount, LiveServer, unique_name
from tests.web.test_domain_pages import intake

# Long: collected first, so the two test processes finish together (tests/conftest.py).
pytestmark = pytest.mark.slow

WORKERS = {"sqlite": 2, "postgresql": 4}
TWICE = 20
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
ONCE_RE = re.compile(r'name="form_once" value="([^"]+)"')


@pytest.fixture(params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path) -> Iterator[LiveServer]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_server").create_database(f"form_{uuid.uuid4().hex[:10]}")
    with LiveServer(tmp_path / "live", database_url=url, workers=WORKERS[request.param]) as server:
        yield server


def _signed_in(live: LiveServer, account: LiveAccount) -> httpx.Client:
    web = live.client()
    page = web.get("/login")
    found = CSRF_RE.search(page.text)
    assert found, page.text[:300]
    body = {
        "username": account.username,
        "password": account.password,
        "otp": account.next_code() or "",
        "csrf_token": found.group(1),
    }
    answer = web.post("/login", data=body, follow_redirects=False)
    assert answer.status_code in (302, 303), answer.text[:300]
    return web


def _contacts_of(live: LiveServer, name: str) -> int:
    with live.session() as db:
        user_id = db.scalar(select(User.id).where(User.username == name))  # type: ignore[attr-defined]
        return int(db.scalar(select(func.count()).select_from(Contact).where(Contact.recorded_by_id == user_id)))  # type: ignore[attr-defined]


def _both(clients: list[httpx.Client], body: dict[str, object]) -> list[httpx.Response]:
    barrier = threading.Barrier(2)
    answers: list[httpx.Response | BaseException] = [RuntimeError("not sent")] * 2

    def send(i: int) -> None:
        barrier.wait()
        try:
            answers[i] = clients[i].post("/contacts/new", data=body, follow_redirects=False)
        except BaseException as exc:  # noqa: BLE001  # reported by the assertion below
            answers[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(isinstance(a, httpx.Response) for a in answers), answers
    return answers  # type: ignore[return-value]


def test_the_same_intake_form_sent_twice_at_once_records_one_contact(live: LiveServer) -> None:
    account = live.create_user(unique_name("cw"), "caseworker")
    first = _signed_in(live, account)
    # The second connection is the same browser: the same session cookie, a connection of its own.
    second = live.client()
    second.cookies.update(first.cookies)
    try:
        for i in range(TWICE):
            page = first.get("/contacts/new")
            assert page.status_code == 200
            csrf, once = CSRF_RE.search(page.text), ONCE_RE.search(page.text)
            assert csrf and once, page.text[:300]
            body = {
                **intake(alias=f"Zarema {i}"),
                "needs": ["evacuation"],
                "csrf_token": csrf.group(1),
                "form_once": once.group(1),
            }
            answers = _both([first, second], body)
            statuses = sorted(a.status_code for a in answers)
            assert all(s < 500 for s in statuses), [(a.status_code, a.text[:300]) for a in answers]
            assert _contacts_of(live, account.username) == i + 1, statuses  # exactly one per form
            recorded = [a for a in answers if a.status_code == 303]
            assert recorded, statuses
            for again in answers:
                if again.status_code == 303:  # a second redirect may only lead to the same record
                    assert again.headers["location"] == recorded[0].headers["location"]
                else:
                    assert again.status_code == 409 and "already sent" in again.text, (
                        again.status_code,
                        again.text[:300],
                    )
    finally:
        first.close()
        second.close()
