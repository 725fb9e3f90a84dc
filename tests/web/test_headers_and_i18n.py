"""Security headers on every route, nothing from another host, and a complete Russian catalog."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient

from app.main import create_app
from app.web import i18n
from tests.conftest import make_settings

WEB = Path(__file__).resolve().parents[2] / "app" / "web"
POT = WEB / "translations" / "messages.pot"
RU_PO = WEB / "translations" / "ru" / "LC_MESSAGES" / "messages.po"
RU_MO = WEB / "translations" / "ru" / "LC_MESSAGES" / "messages.mo"

PUBLIC = ("/login", "/static/helpline.css", "/static/helpline.js", "/nowhere", "/api/v1/health")
SIGNED_IN = ("/contacts/new", "/contacts", "/cases", "/dashboard", "/exports", "/admin/users")


def assert_security_headers(response, *, static: bool = False) -> None:
    headers = response.headers
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "data:" not in csp and "*" not in csp
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert "camera=()" in headers["permissions-policy"]
    if not static:
        assert headers["cache-control"] == "no-store"


def test_headers_on_public_routes(client):
    for path in PUBLIC:
        response = client.get(path)
        assert_security_headers(response, static=path.startswith("/static/"))
    assert client.get("/static/helpline.css").status_code == 200
    assert "strict-transport-security" not in client.get("/login").headers  # plain-HTTP test settings


def test_headers_on_every_signed_in_page(pages, client, factory):
    pages.signed_in(factory.account("admin"))
    for path in SIGNED_IN:
        response = client.get(path)
        assert_security_headers(response)
        assert "<form" in response.text and 'action="/lock"' in response.text, path


def test_not_found_outside_api_is_an_html_page_and_json_inside(client):
    page = client.get("/no/such/page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    api = client.get("/api/v1/no/such/thing")
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}


def test_secure_cookies_and_hsts_when_enabled(tmp_path, factory, session, engine):
    from app.dependencies import get_session

    settings = make_settings(
        tmp_path, database_url=str(engine.url.render_as_string(hide_password=False)), secure_cookies=True
    )
    app = create_app(settings)

    def shared():
        yield session
        session.commit()

    app.dependency_overrides[get_session] = shared
    account = factory.account("caseworker")
    account.user.totp_enrolled = True
    session.commit()
    with TestClient(app, base_url="https://testserver") as secure:
        page = secure.get("/login")
        assert "max-age=" in page.headers["strict-transport-security"]
        pre = page.headers["set-cookie"].lower()
        assert "secure" in pre and "httponly" in pre and "samesite=strict" in pre
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        response = secure.post(
            "/login",
            data={
                "csrf_token": token,
                "username": account.username,
                "password": account.password,
                "otp": account.totp().now(),
            },
            follow_redirects=False,
        )
        assert response.status_code == 303
        cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "helpline_session=" in v)
        assert all(flag in cookie.lower() for flag in ("secure", "httponly", "samesite=strict", "path=/"))
        # __Host-: the browser refuses it from a sibling host or with a Domain (no login CSRF from there).
        assert pre.startswith("__host-") and "domain" not in pre
        assert cookie.startswith("__Host-helpline_session=") and "domain" not in cookie.lower()
        # A cookie without the prefix, as a sibling host could set one, is no session.
        planted = secure.cookies.get("__Host-helpline_session")
        assert secure.get("/contacts/new", follow_redirects=False).status_code == 200
        secure.cookies.clear()
        secure.cookies.set("helpline_session", planted)
        assert secure.get("/contacts/new", follow_redirects=False).headers["location"].startswith("/login")


def test_templates_and_assets_name_no_other_host():
    texts = [p.read_text(encoding="utf-8") for p in WEB.rglob("*") if p.suffix in (".html", ".css", ".js", ".svg")]
    assert texts
    for text in texts:
        hosts = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, flags=re.IGNORECASE)
        # The SVG namespace is a name, never fetched; nothing else may point off the server.
        assert set(hosts) <= {"http://www.w3.org"}, hosts
        assert "@import" not in text and "@font-face" not in text
        assert "<script>" not in text and " style=" not in text and " on" + "click=" not in text


def test_every_msgid_has_a_russian_translation():
    template = read_po(POT.open("rb"))
    russian = read_po(RU_PO.open("rb"), locale="ru")
    ids = [(m.id, m.context) for m in template if m.id]
    assert len(ids) > 100
    # A word with a context (i18n.NC_: a referral's status, a measure) is its own entry, translated apart.
    assert ("Sent", "referral status") in ids and ("Verified", "measure") in ids
    missing = []
    for msgid, context in ids:
        message = russian.get(msgid, context=context)
        strings = message.string if message is not None else None
        if not strings or (isinstance(strings, tuple) and not all(strings)) or (message and message.fuzzy):
            missing.append((msgid, context))
    assert not missing, missing


def test_the_russian_pages_call_a_case_by_one_word():
    # A case is «случай» (социальная работа: «ведение случая») on every page: a caseworker who reads «Мои случаи»
    # in the menu and «дело» in a refusal or on the referral pages cannot tell they are the same thing.
    russian = read_po(RU_PO.open("rb"), locale="ru")
    delo = re.compile(r"\bдел(?:о|а|у|ом|е|ах|ам|ами)?\b", re.IGNORECASE)
    names_a_case = re.compile(r"\bcase(?:s|'s)?\b", re.IGNORECASE)
    # The date before which a move may not be dated reads naturally without the noun.
    implied = {"must not be before the case's last status change"}
    other_word, not_named = [], []
    for message in russian:
        if not message.id:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        if any(delo.search(s) for s in strings):
            other_word.append(ids[0])
        named = any(names_a_case.search(i) for i in ids) and ids[0] not in implied
        if named and not all(re.search("случа", s, re.IGNORECASE) for s in strings):
            not_named.append(ids[0])
    assert not other_word, f"«дело» where the pages say «случай»: {other_word}"
    # A referral is «передача» on every page and in every refusal; «По направлению» is a contact's channel.
    napr = [m.id for m in russian if m.id and m.id != "Referral" and "направлени" in str(m.string).lower()]
    assert not napr, f"«направление» where the pages say «передача»: {napr}"
    assert not not_named, f"a case named in English but not as «случай» in Russian: {not_named}"


def test_compiled_catalog_matches_the_po_file():
    compiled = read_mo(RU_MO.open("rb"))
    source = read_po(RU_PO.open("rb"), locale="ru")

    def norm(value):
        return tuple(value) if isinstance(value, list | tuple) else value

    expected = {(m.context, norm(m.id)): norm(m.string) for m in source if m.id}
    actual = {(m.context, norm(m.id)): norm(m.string) for m in compiled if m.id}
    assert actual == expected, "run scripts/i18n compile"


@pytest.mark.parametrize("locale", ["en", "ru"])
def test_pages_render_in_the_chosen_language(pages, client, factory, locale):
    pages.signed_in(factory.account("caseworker"))
    response = pages.post("/language", {"locale": locale, "next": "/contacts/new"}, from_page="/contacts/new")
    assert response.status_code == 303 and response.headers["location"] == "/contacts/new"
    page = client.get("/contacts/new")
    assert f'<html lang="{locale}">' in page.text
    expected = "Новое обращение" if locale == "ru" else "New contact"
    assert f"<h1>{expected}</h1>" in page.text


def test_language_switch_refuses_a_foreign_next(pages, client):
    response = pages.post("/language", {"locale": "ru", "next": "//evil.example/"}, from_page="/login")
    assert response.headers["location"] == "/"
    assert client.get("/login").text.count('lang="ru"') >= 1


def test_accept_language_picks_russian_before_any_choice():
    assert i18n.pick_locale(None, accept_language="ru-RU,ru;q=0.9,en;q=0.8") == "ru"
    assert i18n.pick_locale("en", accept_language="ru") == "en"
    assert i18n.pick_locale(None, accept_language="de") == "en"


def test_dates_read_as_each_language_writes_them():
    from datetime import date

    from app.web.templating import environment

    day = date(2026, 3, 7)
    assert environment("en").filters["day"](day) == "2026-03-07"
    assert environment("ru").filters["day"](day) == "07.03.2026"
    assert environment("ru").filters["day"](None) == ""


def test_a_russian_page_shows_its_dates_the_russian_way(pages, client, factory, session):
    from datetime import date

    from tests.web.test_domain_pages import record

    account = factory.account("caseworker")
    contact = record(session, account.user)
    pages.signed_in(account)
    page = f"/contacts/{contact.id}"
    assert pages.post("/language", {"locale": "ru", "next": page}, from_page=page).status_code == 303
    html = client.get(page).text
    today = date.today()
    assert today.strftime("%d.%m.%Y") in html
    # The date a form sends stays ISO: an <input type="date"> reads nothing else.
    listing = client.get("/contacts", params={"received_from": today.isoformat()}).text
    assert f'value="{today.isoformat()}"' in listing and today.strftime("%d.%m.%Y") in listing
