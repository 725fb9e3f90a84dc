"""A page reached through an account whose security columns were forged by SQL says why, in each language."""

from __future__ import annotations

from sqlalchemy import text


def test_a_forged_account_gets_the_integrity_page_not_the_page(pages, factory, session) -> None:
    account = factory.account("caseworker")
    name = account.username
    pages.signed_in(account)
    assert pages.client.get("/contacts").status_code == 200
    session.execute(text("UPDATE user_account SET role = 'admin' WHERE username = :n"), {"n": name})
    session.expire_all()
    english = pages.client.get("/admin/users")
    assert english.status_code == 403
    assert "failed its integrity check" in english.text and name not in english.text
    pages.client.cookies.set("helpline_lang", "ru")
    russian = pages.client.get("/contacts")
    assert russian.status_code == 403 and "не прошла проверку целостности" in russian.text
