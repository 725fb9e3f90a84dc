"""Helpers for page tests: read CSRF tokens out of forms and sign in through /login like a browser."""

from __future__ import annotations

import re

import pytest

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


class Pages:
    def __init__(self, client, session) -> None:
        self.client = client
        self.session = session

    def sign_in(self, account, *, otp: str | None = None):
        """Password + TOTP through the real login form; returns the POST response (303 on success)."""
        self.session.commit()  # factory rows must survive a rollback inside the request
        page = self.client.get("/login")
        assert page.status_code == 200
        return self.client.post(
            "/login",
            data={
                "csrf_token": csrf_of(page.text),
                "username": account.username,
                "password": account.password,
                "otp": otp if otp is not None else account.totp().now(),
            },
            follow_redirects=False,
        )

    def enrolled(self, account) -> None:
        account.user.totp_enrolled = True
        self.session.flush()

    def signed_in(self, account):
        self.enrolled(account)
        response = self.sign_in(account)
        assert response.status_code == 303, response.text
        return response

    def token(self, path: str = "/") -> str:
        page = self.client.get(path)
        assert page.status_code == 200, (path, page.status_code)
        return csrf_of(page.text)

    def post(self, path: str, data: dict | None = None, *, from_page: str | None = None, **kwargs):
        body = dict(data or {})
        body.setdefault("csrf_token", self.token(from_page or path))
        kwargs.setdefault("follow_redirects", False)
        return self.client.post(path, data=body, **kwargs)


@pytest.fixture
def pages(client, session) -> Pages:
    return Pages(client, session)
