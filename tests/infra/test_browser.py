"""Self-checks for tests/support/browser.py: Playwright drives Debian's Chromium.

Must pass with --noconftest.  Pages come from a tiny http.server on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.support.browser import (
    ConsoleRecorder,
    RequestRecorder,
    chromium_executable,
    launch_chromium,
    new_context,
    origin_of,
)

pytestmark = pytest.mark.e2e

PAGES: dict[str, tuple[bytes, dict[str, str]]] = {
    "/js.html": (
        b"<!doctype html><html><head><meta charset='utf-8'><title>unchanged</title></head>"
        b"<body><p>js test</p><script>document.title = 'changed by js';</script></body></html>",
        {},
    ),
    "/csp.html": (
        b"<!doctype html><html><head><meta charset='utf-8'><title>csp</title></head>"
        b"<body><p style='color:red'>inline style</p>"
        b"<script>document.title = 'inline ran';</script></body></html>",
        {"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'"},
    ),
    "/glyphs.html": (
        "<!doctype html><html><head><meta charset='utf-8'><title>glyphs</title></head>"
        "<body style='font-size:32px'><h1>Helpline — Допомога — Ayuda — مساعدة</h1></body></html>".encode(),
        {},
    ),
    # 127.0.0.2 is loopback too, but another origin: the recorder must flag it.
    "/foreign.html": (
        b"<!doctype html><html><head><title>foreign</title></head>"
        b"<body><img src='http://127.0.0.2:9/pixel.png' alt=''></body></html>",
        {},
    ),
}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        page = PAGES.get(self.path)
        if page is None:
            self.send_error(404)
            return
        body, headers = page
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = launch_chromium(playwright)
    try:
        yield browser
    finally:
        browser.close()


def test_system_chromium_is_used(browser: Browser) -> None:
    assert chromium_executable().endswith("/chromium")
    major = int(browser.version.split(".")[0])
    assert major >= 100


def test_javascript_on_runs_scripts_and_requests_are_recorded(browser: Browser, base_url: str) -> None:
    context = new_context(browser, javascript=True)
    try:
        requests = RequestRecorder(context)
        page = context.new_page()
        page.goto(f"{base_url}/js.html")
        assert page.title() == "changed by js"
        assert f"{base_url}/js.html" in requests.urls
        assert requests.requests[0].is_navigation
        requests.assert_all_within(base_url)
        assert requests.origins == {origin_of(base_url)}
    finally:
        context.close()


def test_javascript_off_does_not_run_scripts(browser: Browser, base_url: str) -> None:
    context = new_context(browser, javascript=False)
    try:
        requests = RequestRecorder(context)
        page = context.new_page()
        page.goto(f"{base_url}/js.html")
        assert page.title() == "unchanged"
        assert page.locator("p").inner_text() == "js test"
        assert requests.urls == [f"{base_url}/js.html"]
    finally:
        context.close()


def test_javascript_default_from_launch(playwright: Playwright, base_url: str) -> None:
    browser = launch_chromium(playwright, javascript_enabled=False)
    try:
        context = new_context(browser)
        page = context.new_page()
        page.goto(f"{base_url}/js.html")
        assert page.title() == "unchanged"
        context.close()
        context = new_context(browser, javascript=True)
        page = context.new_page()
        page.goto(f"{base_url}/js.html")
        assert page.title() == "changed by js"
        context.close()
    finally:
        browser.close()


def test_request_to_other_origin_is_flagged(browser: Browser, base_url: str) -> None:
    context = new_context(browser)
    try:
        requests = RequestRecorder(context)
        page = context.new_page()
        page.goto(f"{base_url}/foreign.html", wait_until="load")
        stray = requests.outside(base_url)
        assert [r.url for r in stray] == ["http://127.0.0.2:9/pixel.png"]
        with pytest.raises(AssertionError, match="127.0.0.2:9"):
            requests.assert_all_within(base_url)
        requests.assert_all_within(base_url, "http://127.0.0.2:9")
    finally:
        context.close()


def test_csp_violations_are_collected(browser: Browser, base_url: str) -> None:
    context = new_context(browser)
    try:
        console = ConsoleRecorder(context)
        page = context.new_page()
        page.goto(f"{base_url}/csp.html")
        page.wait_for_function("() => document.readyState === 'complete'")
        assert page.title() == "csp"  # inline script blocked
        violations = console.csp_violations()
        assert any("script-src" in v for v in violations), console.entries
        assert any("style-src" in v for v in violations), console.entries
        with pytest.raises(AssertionError, match="CSP violations"):
            console.assert_no_csp_violations()
        with pytest.raises(AssertionError, match="console errors"):
            console.assert_no_errors()
    finally:
        context.close()


def test_console_and_page_errors_on_a_page(browser: Browser, base_url: str) -> None:
    context = new_context(browser)
    try:
        page = context.new_page()
        console = ConsoleRecorder(page)
        page.goto(f"{base_url}/js.html")
        page.evaluate("() => { console.log('hello'); setTimeout(() => { throw new Error('boom'); }, 0); }")
        page.wait_for_timeout(200)
        assert "hello" in console.messages
        assert any("boom" in e for e in console.page_errors), console.entries
        console.assert_no_csp_violations()
    finally:
        context.close()


def test_screenshot_has_glyphs(browser: Browser, base_url: str, tmp_path: Path) -> None:
    fc_list = shutil.which("fc-list")
    if fc_list:  # fontconfig comes with chromium; fonts-dejavu-core provides Cyrillic glyphs
        fonts = subprocess.run([fc_list, ":lang=uk", "family"], capture_output=True, text=True).stdout
        assert "DejaVu" in fonts, f"no font with Cyrillic glyphs (fonts-dejavu-core missing?): {fonts!r}"
    context = new_context(browser, locale="uk-UA")
    try:
        page = context.new_page()
        page.goto(f"{base_url}/glyphs.html")
        out = tmp_path / "glyphs.png"
        png = page.screenshot(path=str(out), full_page=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert out.stat().st_size > 2000
        box = page.locator("h1").bounding_box()
        assert box is not None and box["width"] > 300
        assert page.evaluate("() => navigator.language") == "uk-UA"
    finally:
        context.close()
