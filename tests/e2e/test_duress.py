"""A duress sign-in in Chromium against a real server: the pages look like the real ones.

Layla signs in for real, then (as if in front of someone) with her duress password in another
browser. The duress pages must carry the same headers and the same layout — the same elements,
classes, menus and forms — as her own real pages, and their lists must look exactly like those of a
new caseworker with nothing recorded. Her real browser is signed out; a coordinator sees the alarm.
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from playwright.sync_api import Browser, Page, expect

from app.contacts import service as contact_service
from app.contacts.schemas import ContactIn
from tests.support.browser import new_context
from tests.support.live_server import LiveAccount, LiveServer

pytestmark = pytest.mark.e2e

DURESS = "the kettle is on the stove"
PAGES = ("/contacts/new", "/contacts", "/cases", "/account")
# Headers that differ between any two responses whatever the session (clock, body length, cookies).
# Headers that differ between any two answers (the request id is new for every request).
VARYING = {"date", "content-length", "set-cookie", "x-request-id"}
OUTLINE = """() => Array.from(document.querySelectorAll('body *')).map(e =>
    [e.tagName, e.id, e.className, e.getAttribute('name') || '', e.getAttribute('href') || ''].join('|'))"""


def _sign_in(page: Page, account: LiveAccount, password: str) -> None:
    code = account.next_code()
    assert code is not None
    page.goto("/login")
    page.fill("#username", account.username)
    page.fill("#password", password)
    page.fill("#otp", code)
    page.click("button[type=submit].primary")


def _look(page: Page, path: str) -> tuple[dict[str, str], list[str], list[str]]:
    response = page.goto(path)
    assert response is not None and response.status == 200, path
    headers = {k: v for k, v in response.all_headers().items() if k not in VARYING}
    rows = list(page.evaluate(OUTLINE))
    menu = page.locator("header nav a").all_inner_texts()
    return headers, rows, menu


def _records(live: LiveServer, name: str, count: int) -> None:
    from app.auth import service as auth_service

    with live.session() as db:
        worker = auth_service.get_user(db, username=name)  # type: ignore[arg-type]
        for _ in range(count):
            data = ContactIn.model_validate(
                {
                    "received_on": date.today(),
                    "channel": "signal",
                    "region": "chechnya",
                    "language": "ru",
                    "risk": "high",
                }
            )
            contact_service.record_contact(session=db, actor=worker, data=data)  # type: ignore[arg-type]


def test_duress_pages_match_real_ones_and_the_real_session_ends(live: LiveServer, browser: Browser) -> None:
    layla = live.create_user("layla", "caseworker")
    fresh = live.create_user("nadia", "caseworker")
    coordinator = live.create_user("rustam", "coordinator")
    live.cli("user", "set-duress", "layla", "--password-stdin", input=DURESS + "\n")
    _records(live, "layla", 3)

    real = new_context(browser, javascript=True, base_url=live.base_url).new_page()
    _sign_in(real, layla, layla.password)
    expect(real).to_have_url(re.compile(r"/contacts/new$"))
    seen_real = {path: _look(real, path) for path in PAGES}
    real.goto("/contacts")
    assert real.locator("main table tbody tr").count() == 3

    new_worker = new_context(browser, javascript=True, base_url=live.base_url).new_page()
    _sign_in(new_worker, fresh, fresh.password)
    expect(new_worker).to_have_url(re.compile(r"/contacts/new$"))
    seen_new = {path: _look(new_worker, path) for path in PAGES}

    watched = new_context(browser, javascript=True, base_url=live.base_url).new_page()
    _sign_in(watched, layla, DURESS)
    expect(watched).to_have_url(re.compile(r"/contacts/new$"))
    seen_duress = {path: _look(watched, path) for path in PAGES}

    for path in PAGES:
        headers, rows, menu = seen_duress[path]
        assert headers == seen_real[path][0], path  # same headers, value for value
        assert menu == seen_real[path][2], path  # same menus
        # Same layout as a caseworker with nothing recorded, element for element (her name in the header).
        assert rows == seen_new[path][1], path
    assert seen_duress["/contacts/new"][1] == seen_real["/contacts/new"][1]
    watched.goto("/contacts")
    assert watched.locator("main table tbody tr").count() == 0
    assert watched.locator("header .who").inner_text() == real.locator("header .who").inner_text()

    # Her real browser is signed out; the coordinator's pages carry the alarm.
    real.goto("/contacts")
    expect(real).to_have_url(re.compile(r"/login"))
    desk = new_context(browser, javascript=True, base_url=live.base_url).new_page()
    _sign_in(desk, coordinator, coordinator.password)
    expect(desk).to_have_url(re.compile(r"/dashboard$"))
    assert "layla" in desk.locator("main [role=alert]").inner_text()
