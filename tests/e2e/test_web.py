"""The web interface in Debian's Chromium against a real ``helpline serve``.

A caseworker records a contact with JavaScript off, opens a case and takes it to ``evacuated`` (a
coordinator verifies it, as the two-person rule asks); the coordinator's dashboard count moves.
Every request the browser makes is recorded and must go to the server alone; the console must show
no Content-Security-Policy violation. Screenshots land in tests/e2e/artifacts/ for a person to look at.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import update

from tests.support.browser import ConsoleRecorder, RequestRecorder, new_context
from tests.support.live_server import LiveAccount, LiveServer

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).parent / "artifacts"
SEEDED_ESCAPES = 5  # enough that the dashboard shows the count instead of "<5"


class Watched:
    """A browser context whose every request and console line is kept for the checks at the end."""

    def __init__(self, browser: Browser, base_url: str, *, javascript: bool) -> None:
        self.base_url = base_url
        self.context: BrowserContext = new_context(browser, javascript=javascript, base_url=base_url)
        self.requests = RequestRecorder(self.context)
        self.console = ConsoleRecorder(self.context)
        self.page: Page = self.context.new_page()

    def check(self) -> None:
        assert self.requests.requests, "nothing was recorded"
        self.requests.assert_all_within(self.base_url)
        self.console.assert_no_csp_violations()

    def close(self) -> None:
        self.context.close()


def sign_in(page: Page, account: LiveAccount, *, with_code: bool = True) -> None:
    page.goto("/login")
    page.fill("#username", account.username)
    page.fill("#password", account.password)
    if with_code:
        code = account.next_code()
        assert code is not None
        page.fill("#otp", code)
    page.click("button[type=submit].primary")


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def switch_language(page: Page, locale: str) -> None:
    page.click(f"form.lang button[value={locale}]")
    expect(page.locator("html")).to_have_attribute("lang", locale)


def evacuated_total(page: Page) -> str:
    """This month's escapes on the coordinator's dashboard (the first column of "At a glance")."""
    page.goto("/dashboard")
    return page.locator("#glance-evacuated td").first.inner_text().strip()


def seed_escapes(live: LiveServer, count: int) -> None:
    """Earlier escapes, written through the same services as the pages, so the dashboard is past K."""
    from app.auth import service as auth_service
    from app.cases import service as case_service
    from app.contacts import service as contact_service
    from app.contacts.schemas import ContactIn

    live.create_user("seed-worker", "caseworker", via_cli=False)
    live.create_user("seed-coord", "coordinator", via_cli=False)
    with live.session() as db:
        worker = auth_service.get_user(db, username="seed-worker")  # type: ignore[arg-type]
        coordinator = auth_service.get_user(db, username="seed-coord")  # type: ignore[arg-type]
        today = date.today()
        for _ in range(count):
            data = ContactIn.model_validate(
                {"received_on": today, "channel": "signal", "region": "chechnya", "language": "ru", "risk": "high"}
            )
            contact = contact_service.record_contact(session=db, actor=worker, data=data)  # type: ignore[arg-type]
            case = case_service.open_case(session=db, actor=worker, contact_id=contact.id)  # type: ignore[arg-type]
            case_service.transition(session=db, actor=worker, case_id=case.id, to="verifying", on=today)  # type: ignore[arg-type]
            case_service.verify(session=db, actor=coordinator, case_id=case.id)  # type: ignore[arg-type]
            for status in ("planning", "in_transit", "evacuated"):
                case_service.transition(session=db, actor=worker, case_id=case.id, to=status, on=today)  # type: ignore[arg-type]


def test_caseworker_records_a_contact_without_javascript_and_takes_the_case_to_evacuated(live, browser):
    seed_escapes(live, SEEDED_ESCAPES)
    worker = live.create_user("amina", "caseworker")
    coordinator = live.create_user("rustam", "coordinator")

    # The coordinator is new: the password alone opens nothing (no set-up page shows the key);
    # a code from the key handed over at creation does, from the very first sign-in.
    coord = Watched(browser, live.base_url, javascript=True)
    sign_in(coord.page, coordinator, with_code=False)
    expect(coord.page).to_have_url(re.compile(r"/login$"))
    assert coord.page.locator("figure.qr svg").count() == 0
    assert coordinator.totp_secret not in coord.page.content()
    sign_in(coord.page, coordinator)
    expect(coord.page).to_have_url(re.compile(r"/dashboard$"))
    before = evacuated_total(coord.page)
    assert before == str(SEEDED_ESCAPES)

    cw = Watched(browser, live.base_url, javascript=False)
    page = cw.page
    sign_in(page, worker)
    expect(page).to_have_url(re.compile(r"/contacts/new$"))
    assert page.locator("#received_on").input_value() == date.today().isoformat()
    shot(page, "intake-form-en")

    # A mistake: the date is in the future. Everything else typed must come back untouched.
    future = (date.today() + timedelta(days=3)).isoformat()
    page.fill("#received_on", future)
    page.select_option("#channel", "telegram")
    page.select_option("#region", "dagestan")
    page.select_option("#language", "ce")
    page.select_option("#risk", "immediate")
    page.check("input[name=needs][value=evacuation]")
    page.check("input[name=needs][value=legal]")
    page.fill("#alias", "Marat")
    page.fill("#handle", "@marat_k_2026")
    page.fill("#notes", "Calls from a borrowed phone; brother was detained last week.")
    response_status: list[int] = []
    page.once("response", lambda r: response_status.append(r.status))
    page.click("button[type=submit].primary")
    expect(page.locator("#received_on-error")).to_be_visible()
    assert response_status == [422]
    assert "future" in page.locator("#received_on-error").inner_text()
    shot(page, "intake-form-error-en")
    assert page.locator("#received_on").input_value() == future
    assert page.locator("#channel").input_value() == "telegram"
    assert page.locator("#region").input_value() == "dagestan"
    assert page.locator("#language").input_value() == "ce"
    assert page.locator("#risk").input_value() == "immediate"
    assert page.locator("input[name=needs][value=evacuation]").is_checked()
    assert page.locator("input[name=needs][value=legal]").is_checked()
    assert not page.locator("input[name=needs][value=shelter]").is_checked()
    assert page.locator("#alias").input_value() == "Marat"
    assert page.locator("#handle").input_value() == "@marat_k_2026"
    assert page.locator("#notes").input_value() == "Calls from a borrowed phone; brother was detained last week."

    page.fill("#received_on", date.today().isoformat())
    page.click("button[type=submit].primary")
    expect(page.locator("p.success")).to_be_visible()
    code = page.locator("h1").inner_text().split()[-1]
    assert re.fullmatch(r"H-[0-9A-Z-]+", code), code
    assert "Marat" in page.locator("dl.fields").inner_text()

    page.goto("/contacts")
    expect(page.locator("table")).to_contain_text(code)
    page.click(f"text={code}")
    page.click("form[action='/cases'] button[type=submit]")
    expect(page).to_have_url(re.compile(r"/cases/[0-9a-f-]{36}$"))
    case_url = page.url
    page.click("button[name=to][value=verifying]")
    expect(page.locator("h1 .badge")).to_have_text("Verifying")
    # The opener cannot verify their own case, and planning is not offered before a second person does.
    assert page.locator("form[action$='/verify']").count() == 0
    assert page.locator("button[name=to][value=planning]").count() == 0

    coord.page.goto(case_url)
    assert "Marat" not in coord.page.content()  # a coordinator sees no decrypted field
    coord.page.click("form[action$='/verify'] button[type=submit]")
    expect(coord.page.locator("dl.fields")).to_contain_text("verified by rustam")

    page.reload()
    for status, label in (("planning", "Planning"), ("in_transit", "In transit"), ("evacuated", "Evacuated")):
        page.click(f"button[name=to][value={status}]")
        expect(page.locator("h1 .badge")).to_have_text(label)
    assert page.locator("ol.timeline li").count() == 5
    shot(page, "case-page-en")

    assert evacuated_total(coord.page) == str(SEEDED_ESCAPES + 1)
    shot(coord.page, "dashboard-en")

    # The same three pages in Russian.
    switch_language(page, "ru")
    page.goto("/contacts/new")
    expect(page.locator("h1")).to_have_text("Новое обращение")
    shot(page, "intake-form-ru")
    page.goto(case_url)
    expect(page.locator("h1 .badge")).to_have_text("Эвакуирован")
    shot(page, "case-page-ru")
    switch_language(coord.page, "ru")
    coord.page.goto("/dashboard")
    expect(coord.page.locator("h1")).to_have_text("Сводка")
    shot(coord.page, "dashboard-ru")

    # Lock now ends the session: the case page is gone from this browser.
    page.click("form.lock button")
    expect(page).to_have_url(re.compile(r"/login\?locked=1$"))
    page.goto(case_url)
    expect(page).to_have_url(re.compile(r"/login"))

    cw.check()
    coord.check()
    cw.close()
    coord.close()


def test_a_post_without_csrf_token_is_refused(live, browser):
    account = live.create_user("csrf-check", "caseworker")
    watched = Watched(browser, live.base_url, javascript=False)
    sign_in(watched.page, account)
    expect(watched.page).to_have_url(re.compile(r"/contacts/new$"))
    fields = {
        "received_on": date.today().isoformat(),
        "channel": "phone",
        "region": "moscow",
        "language": "ru",
        "risk": "low",
    }
    refused = watched.context.request.post(f"{live.base_url}/contacts/new", form=fields, max_redirects=0)
    assert refused.status == 403
    forged = watched.context.request.post(
        f"{live.base_url}/contacts/new", form={**fields, "csrf_token": "f" * 64}, max_redirects=0
    )
    assert forged.status == 403
    # Nothing was recorded, and the session itself is still fine.
    watched.page.goto("/contacts")
    expect(watched.page.locator("main")).to_contain_text("0 contacts")
    watched.check()
    watched.close()


def test_an_idle_session_expires(live, browser):
    from app.auth.models import User, WebSession

    account = live.create_user("idle-one", "caseworker")
    watched = Watched(browser, live.base_url, javascript=False)
    sign_in(watched.page, account)
    expect(watched.page).to_have_url(re.compile(r"/contacts/new$"))
    # Sixteen minutes without a request, without waiting them out: the session's clock is moved back.
    with live.session() as db:
        user_id = db.query(User.id).filter(User.username == "idle-one").scalar()  # type: ignore[attr-defined]
        db.execute(  # type: ignore[attr-defined]
            update(WebSession)
            .where(WebSession.user_id == user_id)
            .values(last_seen_at=datetime.now(UTC) - timedelta(minutes=16))
        )
    watched.page.goto("/contacts")
    expect(watched.page).to_have_url(re.compile(r"/login\?ended=1$"))
    expect(watched.page.locator("p.notice")).to_contain_text("without activity")
    watched.check()
    watched.close()


def seed_months(live: LiveServer, *, contacts: int = 160, seed: int = 5) -> None:
    """Contacts and escapes over the last four months, then last month and the one before released."""
    import random

    from app.auth import service as auth_service
    from app.cases import service as case_service
    from app.contacts import service as contact_service
    from app.contacts.schemas import ContactIn
    from app.stats import ledger

    rnd = random.Random(seed)
    # Several caseworkers: one may record only so many contacts an hour.
    for i in range(4):
        live.create_user(f"stats-worker-{i}", "caseworker", via_cli=False)
    live.create_user("stats-coord", "coordinator", via_cli=False)
    today = date.today()
    regions = ("chechnya", "chechnya", "chechnya", "dagestan", "dagestan", "ingushetia", "moscow", "abroad")
    with live.session() as db:
        workers = [auth_service.get_user(db, username=f"stats-worker-{i}") for i in range(4)]  # type: ignore[arg-type]
        coordinator = auth_service.get_user(db, username="stats-coord")  # type: ignore[arg-type]
        for n in range(contacts):
            worker = workers[n % len(workers)]
            day = today - timedelta(days=rnd.randrange(110))
            data = ContactIn.model_validate(
                {
                    "received_on": day,
                    "channel": "signal",
                    "region": rnd.choice(regions),
                    "language": "ru",
                    "risk": "high",
                }
            )
            contact = contact_service.record_contact(session=db, actor=worker, data=data)  # type: ignore[arg-type]
            if rnd.random() < 0.5:
                case = case_service.open_case(session=db, actor=worker, contact_id=contact.id, on=day)  # type: ignore[arg-type]
                case_service.transition(session=db, actor=worker, case_id=case.id, to="verifying", on=day)  # type: ignore[arg-type]
                if rnd.random() < 0.7:
                    case_service.verify(session=db, actor=coordinator, case_id=case.id, on=day)  # type: ignore[arg-type]
                    end = min(day + timedelta(days=rnd.randrange(3, 20)), today)
                    for status in ("planning", "in_transit", "evacuated"):
                        case_service.transition(session=db, actor=worker, case_id=case.id, to=status, on=end)  # type: ignore[arg-type]
        first = today.replace(day=1)
        before_last = (first - timedelta(days=32)).replace(day=1)
        ledger.release_month(db, month=before_last, actor="e2e", today=today)


def test_both_statistics_views_in_english_and_russian(live, browser):
    seed_months(live)
    coordinator = live.create_user("zarema", "coordinator")
    analyst = live.create_user("dana", "analyst")
    views = []
    for account, name in ((coordinator, "stats-operational"), (analyst, "stats-published")):
        watched = Watched(browser, live.base_url, javascript=True)
        views.append(watched)
        sign_in(watched.page, account, with_code=False)
        watched.page.fill("#otp", account.next_code() or "")
        watched.page.click("button[type=submit].primary")
        watched.page.goto("/dashboard")
        watched.page.set_viewport_size({"width": 1100, "height": 900})
        if account is coordinator:
            expect(watched.page.locator("#glance-contacts th")).to_have_text("Contacts")
            # Months by name, the month under way marked as such; nothing hidden from the coordinator.
            month_name = date.today().strftime("%B")
            expect(watched.page.locator("#per-period tr.partial td").first).to_contain_text(month_name)
            assert "&lt;5" not in watched.page.content()
        else:
            expect(watched.page.locator("h1")).to_have_text("Published statistics")
            expect(watched.page.locator("#release-id")).to_contain_text("release_id")
            # What releases never hold is said in words, not left as an empty table.
            expect(watched.page.locator("#not-published")).to_contain_text("are not published")
            cells = watched.page.locator("#release-table td.num").all_inner_texts()
            assert cells and not [c for c in cells if c.strip().isdigit() and 0 < int(c) < 5]
        shot(watched.page, f"{name}-en")
        switch_language(watched.page, "ru")
        watched.page.goto("/dashboard")
        shot(watched.page, f"{name}-ru")
    analyst_page = views[1].page
    analyst_page.goto("/exports")
    expect(analyst_page.locator("#records-withheld")).to_contain_text("*")
    shot(analyst_page, "exports-ru")
    switch_language(analyst_page, "en")
    analyst_page.goto("/exports")
    expect(analyst_page.locator("#records-withheld")).to_contain_text("withheld")
    expect(analyst_page.locator("#records-withheld")).to_contain_text("released months only")
    shot(analyst_page, "exports-en")
    for watched in views:
        watched.check()
        watched.close()
