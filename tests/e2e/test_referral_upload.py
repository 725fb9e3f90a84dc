"""A coordinator imports a partner's package through the upload page, in Chromium against a real server, in Russian.

Packages that must be refused (a code that is not a referral code, no field at all) come back with the reason in
the coordinator's language and write nothing; the genuine package then lands as a case for the chosen caseworker,
and no protected field of it is shown to the coordinator. Uploaded again, it is refused with a reason that names
the referral and its sender, translated around them.
"""

from __future__ import annotations

import base64
from typing import Any

import pyrage
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select

from app.auth.models import User
from app.cases.models import Case
from app.contacts.models import Contact
from app.referrals import package
from app.referrals import service as referral_service
from app.referrals.models import ReceivedReferral
from tests.e2e.test_caseworker_day import PHONE
from tests.e2e.test_web import shot, sign_in, switch_language
from tests.support.browser import ConsoleRecorder, RequestRecorder, new_context
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.e2e

CANARY = "CANARY-E2E-UPLOADED"


def _upload(page: Page, data: bytes, identity: str, assign: str) -> None:
    page.goto("/referrals")
    page.set_input_files(
        "#i-package", files=[{"name": "p.age", "mimeType": "application/octet-stream", "buffer": data}]
    )
    page.set_input_files(
        "#i-identity", files=[{"name": "identity.txt", "mimeType": "text/plain", "buffer": f"{identity}\n".encode()}]
    )
    page.select_option("#i-assign", assign)
    page.click("form[action='/referrals/import'] button[type=submit]")


def _counts(live: LiveServer) -> tuple[int, int]:
    with live.session() as db:
        return db.scalar(select(func.count()).select_from(Contact)), db.scalar(
            select(func.count()).select_from(ReceivedReferral)
        )


def test_a_coordinator_uploads_refused_and_genuine_packages_in_russian(live: LiveServer, browser: Browser) -> None:
    ours, sender_identity = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    sender = Ed25519PrivateKey.generate()
    sender_key = base64.b64encode(sender.public_key().public_bytes_raw()).decode()
    live.create_user("madina", "caseworker")
    live.create_user("zaur", "caseworker")
    coordinator = live.create_user("rustam", "coordinator")
    with live.session() as db:
        referral_service.add_partner(
            session=db,
            actor="test",
            name="Sender",
            age_recipient=str(sender_identity.to_public()),
            verify_key=sender_key,
        )

    def sealed(**changes: Any) -> bytes:
        body = {
            "format": package.PACKAGE,
            "version": 1,
            "code": "R-E2EA-B1",
            "from": sender_key,
            "to": str(ours.to_public()),
            "sent_on": "2026-11-30",
            "fields": {"full_name": CANARY, "risk": "high"},
            **changes,
        }
        return package.encrypt(package.sign(body, key=sender), recipient=str(ours.to_public()))

    context = new_context(browser, javascript=True, base_url=live.base_url)
    requests, console = RequestRecorder(context), ConsoleRecorder(context)
    page = context.new_page()
    sign_in(page, coordinator)
    page.goto("/referrals")
    switch_language(page, "ru")
    before = _counts(live)

    _upload(page, sealed(code="R-<b>x</b>"), str(ours), "zaur")
    expect(page.locator("body")).to_contain_text("отклонено: код в пакете не является кодом передачи")
    _upload(page, sealed(fields={}), str(ours), "zaur")
    expect(page.locator("body")).to_contain_text("отклонено: в пакете нет ни одного поля")
    assert page.locator("#i-assign").input_value() == "zaur"  # the chosen caseworker is still chosen
    # At phone width the refusal and the form still fit the screen.
    page.set_viewport_size(PHONE)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the refused upload is {width}px wide at {PHONE['width']}px"
    shot(page, "referral-upload-refused-ru-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert _counts(live) == before  # nothing of a refused package was written

    _upload(page, sealed(), str(ours), "zaur")
    expect(page.locator("body")).to_contain_text("R-E2EA-B1")
    assert CANARY not in page.content()  # a coordinator never sees a protected field
    with live.session() as db:
        row = db.scalar(select(ReceivedReferral))
        assert row is not None and (row.code, row.imported_by) == ("R-E2EA-B1", "rustam")
        taken_by = db.scalar(
            select(User.username).join(Case, Case.assigned_to_id == User.id).where(Case.id == row.case_id)
        )
    assert taken_by == "zaur"  # the caseworker chosen on the page, not the first in the list
    assert _counts(live) == (before[0] + 1, before[1] + 1)
    # The same package again: the refusal names the referral and its sender, in Russian around them.
    _upload(page, sealed(), str(ours), "zaur")
    expect(page.locator("body")).to_contain_text("отклонено: передача R-E2EA-B1 от Sender уже импортирована")
    assert _counts(live) == (before[0] + 1, before[1] + 1)
    requests.assert_all_within(live.base_url)
    console.assert_no_csp_violations()
    context.close()
