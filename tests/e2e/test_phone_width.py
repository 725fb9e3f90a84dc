"""The pages with tables fit a phone in Russian, and the lock button stays on the header's first line.

On a phone a table wider than the screen pushed the whole page sideways: the admin's "Actions" column, the
consents' "Withdraw" button and every number of the dashboard's "At a glance" sat off the screen. Lists now
turn into cards (``table.list`` with ``data-label``), wide statistics scroll inside their box under a first
column that stays put. In Russian the menu is long enough that the lock button fell to a second header line
on its own at 1280 px: the menu now wraps inside its own room.
"""

from __future__ import annotations

import base64
from datetime import date

import pyrage
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.sync_api import Browser, Page, expect

from app.auth import service as auth_service
from app.cases import service as case_service
from app.contacts import service as contact_service
from app.contacts.schemas import ContactIn
from app.referrals import service as referral_service
from app.referrals.schemas import ConsentIn
from tests.e2e.test_caseworker_day import PHONE
from tests.e2e.test_web import shot, sign_in, switch_language
from tests.support.browser import new_context
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.e2e

WIDE = {"width": 1280, "height": 800}


def _case_with_a_consent(live: LiveServer) -> str:
    """A caseworker's case with a consent to a partner with long keys (the widest cells there are)."""
    identity = pyrage.x25519.Identity.generate()
    verify = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    with live.session() as db:
        referral_service.add_partner(
            session=db, actor="test", name="Мемориал-Юг", age_recipient=str(identity.to_public()), verify_key=verify
        )
        worker = auth_service.get_user(db, username="zarina")
        data = ContactIn.model_validate(
            {"received_on": date.today(), "channel": "signal", "region": "chechnya", "language": "ru", "risk": "high"}
        )
        contact = contact_service.record_contact(session=db, actor=worker, data=data)  # type: ignore[arg-type]
        case = case_service.open_case(session=db, actor=worker, contact_id=contact.id)  # type: ignore[arg-type]
        consent = ConsentIn.model_validate(
            {"partner": "Мемориал-Юг", "given_on": date.today(), "how": "written", "fields": ["full_name", "risk"]}
        )
        referral_service.record_consent(session=db, actor=worker, case_id=case.id, data=consent)  # type: ignore[arg-type]
        return str(case.id)


def _fits(page: Page, path: str) -> None:
    page.goto(path)
    expect(page.locator("h1")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{path} is {width}px wide at {PHONE['width']}px"


def _lock_on_the_first_line(page: Page) -> None:
    brand = page.locator(".top .brand").bounding_box()
    lock = page.locator(".top .lock button").bounding_box()
    assert brand is not None and lock is not None
    assert lock["y"] < brand["y"] + brand["height"], f"the lock button is on a line of its own: {lock} under {brand}"
    assert lock["x"] > WIDE["width"] / 2, "the lock button is not at the right of the header"


def test_the_table_pages_fit_a_phone_in_russian(live: LiveServer, browser: Browser) -> None:
    accounts = {
        "zarina": live.create_user("zarina", "caseworker"),
        "timur": live.create_user("timur", "coordinator"),
        "aslan": live.create_user("aslan", "admin"),
    }
    case_id = _case_with_a_consent(live)
    paths = {
        "zarina": ["/referrals", f"/cases/{case_id}/referrals", "/partners"],
        "timur": ["/dashboard", "/referrals", "/partners"],
        "aslan": ["/admin/users", "/partners", "/dashboard"],
    }
    for name, account in accounts.items():
        context = new_context(browser, javascript=True, base_url=live.base_url, viewport=WIDE)
        page = context.new_page()
        sign_in(page, account)
        switch_language(page, "ru")
        _lock_on_the_first_line(page)
        page.set_viewport_size(PHONE)
        for path in paths[name]:
            _fits(page, path)
        shot(page, f"phone-ru-{name}")
        context.close()


def test_a_wide_statistics_table_scrolls_in_its_box_under_a_first_column_that_stays(
    live: LiveServer, browser: Browser
) -> None:
    account = live.create_user("madina", "coordinator")
    context = new_context(browser, javascript=True, base_url=live.base_url, viewport=PHONE)
    page = context.new_page()
    sign_in(page, account)
    switch_language(page, "ru")
    page.goto("/dashboard")
    box = page.locator("#per-period").locator("xpath=..")
    first = page.locator("#per-period tbody tr td").first
    before = first.bounding_box()
    box.evaluate("el => { el.scrollLeft = 400; }")
    assert box.evaluate("el => el.scrollLeft") > 0, "the per-period table does not scroll in its box"
    after = first.bounding_box()
    assert before is not None and after is not None and abs(after["x"] - before["x"]) < 1, (before, after)
    context.close()
