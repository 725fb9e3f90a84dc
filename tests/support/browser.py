"""Playwright (sync API) helpers for driving Debian's Chromium in the tests.

Playwright's own browser download cannot work on these machines, so we always
launch the system browser (``/usr/bin/chromium`` from Debian's ``chromium``
package, installed by ``scripts/ensure-system-deps``) via ``executable_path``.
Never call ``playwright install``.

Typical use::

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        context = new_context(browser, javascript=False)
        requests = RequestRecorder(context)
        console = ConsoleRecorder(context)
        page = context.new_page()
        page.goto(app_url)
        requests.assert_all_within(app_url)
        console.assert_no_csp_violations()
"""

from __future__ import annotations

import os
import shutil
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Error, Page, Playwright, Request

__all__ = [
    "CHROMIUM_ARGS",
    "ConsoleEntry",
    "ConsoleRecorder",
    "RecordedRequest",
    "RequestRecorder",
    "chromium_executable",
    "launch_chromium",
    "new_context",
    "origin_of",
]

#: Flags for Chromium as root in a sandbox-less container with no network but loopback.
#: The background-networking/component/sync flags stop Chromium from phoning home
#: (those connections would be refused here, and would pollute request checks).
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)

_DEFAULT_EXECUTABLE = "/usr/bin/chromium"
_IGNORED_SCHEMES = frozenset({"data", "blob", "about", "chrome", "chrome-extension", "devtools"})

# Browser -> default for new_context(javascript=None), set by launch_chromium.
_js_default: weakref.WeakKeyDictionary[Browser, bool] = weakref.WeakKeyDictionary()


def chromium_executable() -> str:
    """Path of the system Chromium (``$HELPLINE_CHROMIUM`` overrides)."""
    override = os.environ.get("HELPLINE_CHROMIUM")
    candidates = [override] if override else [_DEFAULT_EXECUTABLE, shutil.which("chromium")]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise RuntimeError(
        f"Chromium not found ({override or _DEFAULT_EXECUTABLE}, or `chromium` on PATH) -- "
        "run scripts/ensure-system-deps (installs Debian's chromium); "
        "Playwright's own browser download does not work here"
    )


def launch_chromium(
    playwright: Playwright,
    *,
    javascript_enabled: bool = True,
    headless: bool = True,
    args: Sequence[str] = (),
    **launch_kwargs: Any,
) -> Browser:
    """Launch Debian's Chromium headless with :data:`CHROMIUM_ARGS` (+ ``args``).

    JavaScript is a per-context setting in Playwright: ``javascript_enabled``
    only sets the default that :func:`new_context` uses for this browser.
    """
    browser = playwright.chromium.launch(
        executable_path=chromium_executable(),
        headless=headless,
        args=[*CHROMIUM_ARGS, *args],
        **launch_kwargs,
    )
    _js_default[browser] = javascript_enabled
    return browser


def new_context(
    browser: Browser,
    *,
    javascript: bool | None = None,
    locale: str = "en-US",
    **context_kwargs: Any,
) -> BrowserContext:
    """A fresh, isolated context (own cookies/storage).

    ``javascript=None`` uses the ``javascript_enabled`` given to
    :func:`launch_chromium` (default on).  Extra keyword arguments go to
    ``browser.new_context`` (e.g. ``viewport``, ``base_url``, ``extra_http_headers``).
    """
    if javascript is None:
        javascript = _js_default.get(browser, True)
    context_kwargs.setdefault("viewport", {"width": 1280, "height": 800})
    return browser.new_context(java_script_enabled=javascript, locale=locale, **context_kwargs)


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url``, with the default port made explicit."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port or {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(scheme)
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    url: str
    resource_type: str
    is_navigation: bool


class RequestRecorder:
    """Records every request made by a context (all its pages) or by one page.

    Attach *before* navigating.  ``outside(allowed...)`` lists the requests whose
    origin is not one of ``allowed`` (``data:``, ``blob:``, ``about:`` URLs are
    not network requests and are ignored).
    """

    def __init__(self, target: BrowserContext | Page) -> None:
        self.requests: list[RecordedRequest] = []
        self.failed: list[tuple[str, str]] = []  # (url, failure text)
        self._target = target
        target.on("request", self._on_request)
        target.on("requestfailed", self._on_failed)

    def _on_request(self, request: Request) -> None:
        self.requests.append(
            RecordedRequest(request.method, request.url, request.resource_type, request.is_navigation_request())
        )

    def _on_failed(self, request: Request) -> None:
        self.failed.append((request.url, request.failure or ""))

    def detach(self) -> None:
        self._target.remove_listener("request", self._on_request)
        self._target.remove_listener("requestfailed", self._on_failed)

    def clear(self) -> None:
        self.requests.clear()
        self.failed.clear()

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.requests]

    def network_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if urlsplit(r.url).scheme.lower() not in _IGNORED_SCHEMES]

    @property
    def origins(self) -> set[str]:
        return {origin_of(r.url) for r in self.network_requests()}

    def outside(self, *allowed: str) -> list[RecordedRequest]:
        """Requests to an origin other than those of the ``allowed`` URLs/origins."""
        ok = {origin_of(a) for a in allowed}
        return [r for r in self.network_requests() if origin_of(r.url) not in ok]

    def assert_all_within(self, *allowed: str) -> None:
        """Fail if any request went anywhere but the ``allowed`` origins (e.g. the app's base URL)."""
        stray = self.outside(*allowed)
        assert not stray, "requests left the allowed origins {}:\n{}".format(
            sorted({origin_of(a) for a in allowed}),
            "\n".join(f"  {r.method} {r.url} ({r.resource_type})" for r in stray),
        )


# --------------------------------------------------------------------------- console


@dataclass(frozen=True)
class ConsoleEntry:
    type: str  # "log", "error", "warning", ... or "pageerror" for uncaught exceptions
    text: str
    url: str = ""


CSP_MARKERS = ("Content Security Policy", "Content-Security-Policy")


class ConsoleRecorder:
    """Collects console messages and uncaught page errors of a context or page.

    Chromium reports CSP violations as console errors.  Older versions said
    ``Refused to execute inline script because it violates the following Content
    Security Policy directive: ...``; Chromium 156 says ``Executing inline script
    violates the following Content Security Policy directive 'script-src 'self''.
    ... The action has been blocked.`` (likewise ``Applying inline style ...``,
    ``Loading the image ...``).  Match on "Content Security Policy", as
    :meth:`csp_violations` does, never on "Refused".  With JavaScript disabled
    in the context, style-src/img-src violations are still reported.
    """

    def __init__(self, target: BrowserContext | Page) -> None:
        self.entries: list[ConsoleEntry] = []
        self._target = target
        if isinstance(target, Page):
            target.on("console", self._on_console)
            target.on("pageerror", self._on_pageerror)
        else:
            target.on("console", self._on_console)
            target.on("weberror", self._on_weberror)

    def _on_console(self, msg: ConsoleMessage) -> None:
        loc = msg.location or {}
        self.entries.append(ConsoleEntry(msg.type, msg.text, str(loc.get("url", ""))))

    def _on_pageerror(self, error: Error) -> None:
        self.entries.append(ConsoleEntry("pageerror", f"{error.name}: {error.message}"))

    def _on_weberror(self, web_error: Any) -> None:
        self._on_pageerror(web_error.error)

    def detach(self) -> None:
        if isinstance(self._target, Page):
            self._target.remove_listener("console", self._on_console)
            self._target.remove_listener("pageerror", self._on_pageerror)
        else:
            self._target.remove_listener("console", self._on_console)
            self._target.remove_listener("weberror", self._on_weberror)

    def clear(self) -> None:
        self.entries.clear()

    @property
    def messages(self) -> list[str]:
        return [e.text for e in self.entries if e.type != "pageerror"]

    @property
    def page_errors(self) -> list[str]:
        return [e.text for e in self.entries if e.type == "pageerror"]

    @property
    def errors(self) -> list[ConsoleEntry]:
        """Console errors and uncaught exceptions."""
        return [e for e in self.entries if e.type in ("error", "pageerror")]

    def csp_violations(self) -> list[str]:
        return [e.text for e in self.entries if any(m in e.text for m in CSP_MARKERS)]

    def assert_no_csp_violations(self) -> None:
        found = self.csp_violations()
        assert not found, "CSP violations:\n" + "\n".join(f"  {t}" for t in found)

    def assert_no_errors(self, ignore: Iterable[str] = ()) -> None:
        """Fail on console errors/uncaught exceptions, except those containing an ``ignore`` substring."""
        skip = tuple(ignore)
        found = [e for e in self.errors if not any(s in e.text for s in skip)]
        assert not found, "browser console errors:\n" + "\n".join(f"  [{e.type}] {e.text}" for e in found)
