"""The caseworker's day in Chromium against a real server whose idle limit is one minute.

Typing through an expired session loses nothing; Enter never submits; notes after saving; asking for
verification reaches the coordinator's queue; axe-core finds no violation on any page state at desktop
and phone width; lists fit 390 px; screenshots of the new pages in both languages go to
tests/e2e/artifacts/. The minute is never waited out: the page's clock is moved forward (Playwright's
clock) and the server's session is aged in its database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select, update

from tests.e2e.test_web import ARTIFACTS, Watched, shot, sign_in, switch_language
from tests.support import axe
from tests.support.browser import new_context
from tests.support.live_server import LiveServer

# Long: collected first, so the two test processes finish together (tests/conftest.py).
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FIRST_HALF = "Called at night from a borrowed phone; brother detained on Tuesday. "
SECOND_HALF = "Second half typed after the session ended: needs a safe flat in Nalchik."
PHONE = {"width": 390, "height": 844}
CONFIRM_TEXT = {"en": "Nothing has changed yet.", "ru": "Пока ничего не изменено."}
WARNING_TEXT = {"en": "about a minute", "ru": "Примерно через минуту"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("caseworker-day"), env={"HELPLINE_SESSION_IDLE_MINUTES": "1"}) as server:
        yield server


def _age_sessions(live: LiveServer, username: str, minutes: int = 2) -> None:
    from app.auth.models import User, WebSession

    with live.session() as db:
        user_id = db.scalar(select(User.id).where(User.username == username))  # type: ignore[attr-defined]
        db.execute(  # type: ignore[attr-defined]
            update(WebSession)
            .where(WebSession.user_id == user_id)
            .values(last_seen_at=datetime.now(UTC) - timedelta(minutes=minutes))
        )


def _contacts_of(live: LiveServer, username: str) -> list[object]:
    from app.auth import service as auth_service
    from app.contacts import service as contact_service

    with live.session() as db:
        user = auth_service.get_user(db, username=username)  # type: ignore[arg-type]
        listing = contact_service.list_contacts(session=db, actor=user)  # type: ignore[arg-type]
        return [
            contact_service.read_contact(session=db, actor=user, contact_id=c.id)  # type: ignore[arg-type]
            for c in listing.items
        ]


def _signed_in_context(live: LiveServer, browser: Browser, username: str, **kwargs: object) -> Page:
    """A page whose context holds a session made through the sessions service (no TOTP step spent)."""
    from app.auth import service as auth_service
    from app.auth import sessions

    with live.session() as db:
        user = auth_service.get_user(db, username=username)  # type: ignore[arg-type]
        token = sessions.start(db, user=user).token  # type: ignore[arg-type]
    context = new_context(browser, javascript=True, base_url=live.base_url, **kwargs)
    context.add_cookies([{"name": "helpline_session", "value": token, "url": live.base_url}])
    return context.new_page()


def _overflowing(page: Page) -> list[str]:
    """Elements reaching past the viewport's right edge (what makes a phone scroll sideways)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
            .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '') + ' ' +
                 Math.round(e.getBoundingClientRect().right))"""
    )


def _fill_intake(page: Page, handle: str = "+7 928 555 77 11") -> None:
    page.select_option("#region", "chechnya")
    page.select_option("#risk", "high")
    page.fill("#alias", "Timur")
    page.fill("#handle", handle)


def test_typing_through_an_expired_session_saves_the_whole_note_after_signing_in(live, browser):
    account = live.create_user("madina", "caseworker")
    watched = Watched(browser, live.base_url, javascript=True)
    page = watched.page
    page.clock.install()
    sign_in(page, account)
    expect(page).to_have_url(re.compile(r"/contacts/new$"))
    _fill_intake(page)
    page.click("#notes")
    page.keyboard.type(FIRST_HALF)
    # Close to the idle limit the page warns, in words, before anything ends.
    page.clock.fast_forward("00:50")
    banner = page.locator("#session-warning")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("about a minute")
    shot(page, "session-warning-en")
    # The limit passes on the server and on the page: the page stays, with the text on it.
    _age_sessions(live, "madina")
    page.clock.fast_forward("00:20")
    expect(banner).to_contain_text("Your session has ended")
    expect(page).to_have_url(re.compile(r"/contacts/new$"))
    page.keyboard.type(SECOND_HALF)
    # Enter in a one-line field submits nothing.
    page.focus("#alias")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/contacts/new$"))
    assert _contacts_of(live, "madina") == []
    page.click("form[data-keep] button[type=submit].primary")
    expect(page).to_have_url(re.compile(r"/login\?ended=1&held=1$"))
    assert _contacts_of(live, "madina") == []
    sign_in(page, account)
    expect(page).to_have_url(re.compile(r"/held$"))
    expect(page.locator("textarea[name=notes]")).to_have_value(FIRST_HALF + SECOND_HALF)
    shot(page, "held-form-en")
    page.click("form[data-keep] button[type=submit].primary")
    expect(page).to_have_url(re.compile(r"/contacts/[0-9a-f-]{36}\?saved=1"))
    saved = _contacts_of(live, "madina")
    assert len(saved) == 1 and saved[0].notes == FIRST_HALF + SECOND_HALF  # type: ignore[attr-defined]
    assert saved[0].alias == "Timur" and saved[0].region == "chechnya"  # type: ignore[attr-defined]
    watched.check()
    watched.close()


def test_typing_keeps_the_session_alive(live, browser):
    account = live.create_user("zaur", "caseworker")
    watched = Watched(browser, live.base_url, javascript=True)
    page = watched.page
    page.clock.install()
    sign_in(page, account)
    expect(page).to_have_url(re.compile(r"/contacts/new$"))
    page.click("#notes")
    for _ in range(4):  # four bursts of typing, 25 s apart: 100 s in all, past the one-minute limit
        page.clock.fast_forward("00:25")
        with page.expect_response(re.compile(r"/session/keepalive$")) as answer:
            page.keyboard.type("still typing. ")
        assert answer.value.status == 204
    expect(page.locator("#session-warning")).to_be_hidden()
    page.goto("/contacts")
    expect(page).to_have_url(re.compile(r"/contacts$"))
    watched.check()
    watched.close()


def test_enter_does_not_submit_without_javascript_either(live, browser):
    account = live.create_user("aslan", "caseworker")
    watched = Watched(browser, live.base_url, javascript=False)
    page = watched.page
    sign_in(page, account)
    _fill_intake(page)
    page.focus("#handle")
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)  # a submission would have navigated by now
    expect(page).to_have_url(re.compile(r"/contacts/new$"))
    assert _contacts_of(live, "aslan") == []
    watched.close()


def _verification_flow(live: LiveServer, browser: Browser) -> dict[str, str]:
    """A caseworker records, adds a note, opens a case, asks for verification; returns URLs for the checks."""
    worker = live.create_user("leila", "caseworker")
    coordinator = live.create_user("ruslan", "coordinator")
    w = Watched(browser, live.base_url, javascript=True)
    sign_in(w.page, worker)
    _fill_intake(w.page, handle="@leila_caller")
    w.page.select_option("#risk", "immediate")
    w.page.fill("#notes", "First call.")
    w.page.click("form[data-keep] button[type=submit].primary")
    expect(w.page).to_have_url(re.compile(r"/contacts/[0-9a-f-]{36}\?saved=1"))
    contact_url = w.page.url.split("?")[0]
    w.page.fill("#note-text", "Rang back: safe until Friday.")
    w.page.click("#notes ~ form button.primary")
    expect(w.page.locator("ol.notes")).to_contain_text("Rang back: safe until Friday.")
    w.page.click("form[action='/cases'] button.primary")
    expect(w.page).to_have_url(re.compile(r"/cases/[0-9a-f-]{36}$"))
    case_url = w.page.url
    w.page.click("button[value=verifying].primary")
    w.page.click("form[action$='/verification-request'] button")
    expect(w.page.locator("p.success")).to_contain_text("coordinators' queue")
    # Planning stays shut until the second person verifies.
    assert w.page.locator("button[value=planning]").count() == 0
    w.page.click("button[value=declined]")
    expect(w.page.locator("#confirm")).to_contain_text("Nothing has changed yet.")
    shot(w.page, "case-confirm-terminal-en")
    w.page.goto(case_url)
    expect(w.page.locator("h1 .badge")).to_have_text("Verifying")

    c = Watched(browser, live.base_url, javascript=True)
    sign_in(c.page, coordinator)  # a new account signs in with a code from its handed-over key at once
    c.page.goto("/attention")
    expect(c.page.locator("nav .count")).to_have_text("2")
    expect(c.page.locator("main")).to_contain_text("Waiting for verification")
    expect(c.page.locator("main")).to_contain_text("Contact in immediate danger")
    c.page.click("table.list a[href^='/cases/']")
    c.page.click("form[action$='/verify'] button.primary")
    expect(c.page.locator("main")).to_contain_text("verified by ruslan")
    c.page.goto("/attention")
    expect(c.page.locator("nav .count")).to_have_text("1")
    w.page.goto(case_url)
    expect(w.page.locator("button[value=planning].primary")).to_be_visible()
    # The coordinator keeps the known-bad list on its page; the handle is never shown back.
    c.page.goto("/known-bad")
    c.page.fill("#handle", "@trap_account_77")
    c.page.fill("#reason", "Posed as a cousin in March.")
    c.page.click("form[action='/known-bad'] button.primary")
    expect(c.page.locator("table.list")).to_contain_text("Posed as a cousin in March.")
    expect(c.page.locator("main")).not_to_contain_text("trap_account_77")
    # The caseworker finds the contact by its handle written another way.
    w.page.goto("/search?q=%40LEILA_CALLER")
    expect(w.page.locator("table.list a")).to_have_count(1)
    w.check()
    c.check()
    w.close()
    c.close()
    return {"contact": contact_url, "case": case_url}


def test_verification_request_reaches_the_queue_and_unlocks_planning_then_every_page_passes_axe(live, browser):
    urls = _verification_flow(live, browser)
    axe.ensure_axe()
    states = {
        "leila": [
            "/contacts/new",
            "/contacts/new#errors",
            "/contacts",
            "/cases",
            urls["contact"],
            urls["case"],
            urls["case"] + "#confirm",
            "/search",
            "/search?q=%40leila_caller",
            "/search?q=Timur&by=alias",
        ],
        "ruslan": ["/attention", "/cases", urls["case"], "/known-bad", "/known-bad#errors"],
    }
    found: list[str] = []
    for role, paths in states.items():
        for viewport in ({"width": 1280, "height": 800}, PHONE):
            page = _signed_in_context(live, browser, role, viewport=viewport, bypass_csp=True)
            for path in paths:
                page.goto(path.split("#")[0])
                if path.endswith("#errors"):
                    page.click("main form[novalidate] button[type=submit].primary")  # nothing filled in: errors
                    expect(page.locator("[aria-invalid=true]").first).to_be_focused()
                if path.endswith("#confirm"):
                    page.click(".moves button.danger >> nth=0")
                    expect(page.locator("#confirm")).to_be_visible()
                for violation in axe.violations(page):
                    found.append(f"{role} {viewport['width']}px {path}: {violation}")
                if viewport is PHONE:
                    width = page.evaluate("document.documentElement.scrollWidth")
                    assert width <= PHONE["width"], f"{path} is {width}px wide at 390px"
            page.context.close()
    assert not found, "axe-core found:\n" + "\n".join(found)


@pytest.mark.parametrize("locale", ["en", "ru"])
def test_screenshots_of_the_new_pages(live, browser, locale):
    if "leila" not in live.accounts:
        _verification_flow(live, browser)
    for username, pages in (
        ("leila", ["/contacts", "/cases", "/search?q=Timur&by=alias"]),
        ("ruslan", ["/attention", "/known-bad"]),
    ):
        for viewport, suffix in (({"width": 1280, "height": 800}, ""), (PHONE, "-phone")):
            page = _signed_in_context(live, browser, username, viewport=viewport, locale=locale)
            page.goto("/")
            if locale == "ru":
                page.click("form.lang button[value=ru]")
                expect(page.locator("html")).to_have_attribute("lang", "ru")
            for path in pages:
                page.goto(path)
                name = path.strip("/").split("?")[0].replace("/", "-")
                shot(page, f"{name}-{locale}{suffix}")
                if path == "/contacts" and page.locator("table.list a").count():
                    page.click("table.list a[href^='/contacts/']")
                    shot(page, f"contact-notes-{locale}{suffix}")
                if path == "/cases" and page.locator("table.list a").count():
                    page.click("table.list a[href^='/cases/']")
                    shot(page, f"case-next-step-{locale}{suffix}")
                    # A terminal move asks first, in the page's language.
                    page.click(".moves button.danger >> nth=0")
                    expect(page.locator("#confirm")).to_contain_text(CONFIRM_TEXT[locale])
                    shot(page, f"case-confirm-terminal-{locale}{suffix}")
                if viewport is PHONE:
                    assert _overflowing(page) == [], f"{path} ({locale}) is wider than 390px"
            page.context.close()
    assert (ARTIFACTS / f"attention-{locale}.png").is_file()
    # The warning before the idle limit, in the page's language.
    page = _signed_in_context(live, browser, "leila", locale=locale)
    page.clock.install()
    page.goto("/")
    if locale == "ru":
        page.click("form.lang button[value=ru]")
    page.goto("/contacts/new")
    page.clock.fast_forward("00:50")
    expect(page.locator("#session-warning")).to_contain_text(WARNING_TEXT[locale])
    shot(page, f"session-warning-{locale}")
    page.context.close()


def test_lock_now_keeps_the_form_being_typed(live, browser):
    account = live.create_user("kheda", "caseworker")
    page = _signed_in_context(live, browser, "kheda")
    page.goto("/contacts/new")
    _fill_intake(page, handle="@kheda_caller")
    page.fill("#notes", "Half a note when someone came in. " + SECOND_HALF)
    page.click("form.lock button")
    expect(page).to_have_url(re.compile(r"/login\?locked=1$"))
    page.goto("/contacts/new")
    expect(page).to_have_url(re.compile(r"/login"))  # really locked
    sign_in(page, account)
    expect(page).to_have_url(re.compile(r"/held$"))
    expect(page.locator("textarea[name=notes]")).to_have_value("Half a note when someone came in. " + SECOND_HALF)
    expect(page.locator("input[name=alias]")).to_have_value("Timur")
    page.context.close()


def _contrast(a: str, b: str) -> float:
    def luminance(rgb: str) -> float:
        parts = [int(x) / 255 for x in re.findall(r"\d+", rgb)[:3]]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in parts]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_focus_ring_stands_out_at_least_3_to_1(live, browser):
    live.create_user("fatima", "caseworker")
    page = _signed_in_context(live, browser, "fatima")
    page.goto("/contacts/new")
    found = {}
    for selector, background in (("#alias", "main"), ("form.lock button", "header.top")):
        page.focus(selector)
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Tab")  # focused from the keyboard, so :focus-visible applies
        style = page.evaluate(
            """([sel, bg]) => { const s = getComputedStyle(document.querySelector(sel));
                 let b = getComputedStyle(document.querySelector(bg)).backgroundColor;
                 if (b === 'rgba(0, 0, 0, 0)') b = getComputedStyle(document.body).backgroundColor;
                 if (b === 'rgba(0, 0, 0, 0)') b = 'rgb(255, 255, 255)';
                 return [s.outlineStyle, s.outlineWidth, s.outlineColor, b]; }""",
            [selector, background],
        )
        found[selector] = style
        assert style[0] == "solid" and float(style[1].removesuffix("px")) >= 2, style
        assert _contrast(style[2], style[3]) >= 3, (selector, style)
    assert found["#alias"][2] != found["form.lock button"][2]  # dark on the page, light on the dark header
    page.context.close()


def test_a_move_from_a_stale_case_page_is_refused_with_the_reason_in_russian(live, browser):
    """Two tabs of one case: the move made in one is refused in the other, which says why in Russian, the
    statuses by their Russian names, and fits a phone's screen."""
    worker = live.create_user("aminat", "caseworker")
    w = Watched(browser, live.base_url, javascript=True)
    sign_in(w.page, worker)
    switch_language(w.page, "ru")
    _fill_intake(w.page, handle="@aminat_caller")
    w.page.click("form[data-keep] button[type=submit].primary")
    expect(w.page).to_have_url(re.compile(r"/contacts/[0-9a-f-]{36}\?saved=1"))
    w.page.click("form[action='/cases'] button.primary")
    expect(w.page).to_have_url(re.compile(r"/cases/[0-9a-f-]{36}$"))
    stale = w.page.context.new_page()
    stale.goto(w.page.url)
    w.page.click("button[value=verifying].primary")
    expect(w.page.locator("h1 .badge")).to_have_text("На проверке")
    stale.set_viewport_size(PHONE)
    stale.click("button[value=verifying].primary")
    expect(stale.locator("body")).to_contain_text(
        "Это изменение сейчас невозможно: случай нельзя перевести из статуса «На проверке» в «На проверке»"
    )
    width = stale.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the refused move is {width}px wide at {PHONE['width']}px"
    shot(stale, "case-move-refused-ru-phone")
