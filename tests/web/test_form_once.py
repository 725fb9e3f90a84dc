"""A web form sent twice (a double click, a resent POST) counts once: its one-time token is spent in
the database, in the same transaction as what the form does, so every worker sees it."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from app.contacts.models import Contact
from app.idempotency.models import FormToken
from tests.web.conftest import csrf_of
from tests.web.test_domain_pages import intake

ONCE_RE = re.compile(r'name="form_once" value="([^"]+)"')


def _form(client, path: str) -> dict[str, str]:
    page = client.get(path)
    found = ONCE_RE.search(page.text)
    assert found, "the form carries no one-time token"
    return {"csrf_token": csrf_of(page.text), "form_once": found.group(1)}


def test_the_intake_form_sent_twice_records_one_contact(pages, client, factory, session) -> None:
    pages.signed_in(factory.account("caseworker"))
    tokens = _form(client, "/contacts/new")
    body = {**intake(), "needs": ["evacuation"], **tokens}
    first = client.post("/contacts/new", data=body, follow_redirects=False)
    again = client.post("/contacts/new", data=body, follow_redirects=False)
    assert first.status_code == 303
    assert again.status_code == 409 and "already sent" in again.text
    assert session.scalar(select(func.count()).select_from(Contact)) == 1
    # The token is kept only as a hash; a fresh page gives a fresh token that works.
    assert session.scalar(select(FormToken.token_hash).where(FormToken.token_hash == tokens["form_once"])) is None
    fresh = {**intake(), "needs": ["evacuation"], **_form(client, "/contacts/new")}
    assert client.post("/contacts/new", data=fresh, follow_redirects=False).status_code == 303
    assert session.scalar(select(func.count()).select_from(Contact)) == 2


def test_each_rendering_of_a_form_has_its_own_token(pages, client, factory) -> None:
    pages.signed_in(factory.account("caseworker"))
    assert _form(client, "/contacts/new")["form_once"] != _form(client, "/contacts/new")["form_once"]
