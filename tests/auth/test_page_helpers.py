"""The sign-in pages' own helpers, with their answers written out: errors by field, each role's home, the QR code."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import segno

from app.auth import pages
from app.errors import Invalid
from app.web import forms
from app.web.visit import LoginRequired


def test_field_errors_keep_the_first_message_of_each_field_and_put_the_rest_under_the_form() -> None:
    exc = Invalid(
        [
            {"loc": ["body", "password"], "msg": "at least 12 characters"},
            {"loc": ["body", "password"], "msg": "a second complaint, not shown"},
            {"loc": ["body", "username"], "msg": "no spaces"},
            {"loc": [], "msg": "the form as a whole"},
            {"loc": ["body", "otp"]},
        ]
    )
    assert forms.field_errors(exc) == {
        "password": "at least 12 characters",
        "username": "no spaces",
        "_": "the form as a whole",
        "otp": "",
    }
    assert forms.field_errors(Invalid.field("role", "unknown role")) == {"role": "unknown role"}
    assert forms.field_errors(Invalid("the names do not match")) == {"_": "the names do not match"}


def test_each_role_starts_on_its_own_page() -> None:
    homes = {
        role: pages.home_for(SimpleNamespace(role=role)) for role in ("caseworker", "coordinator", "analyst", "admin")
    }
    assert homes == {
        "caseworker": "/contacts/new",
        "coordinator": "/dashboard",
        "analyst": "/exports",
        "admin": "/admin/users",
    }


def test_the_qr_code_is_drawn_here_at_medium_error_correction_four_pixels_a_module_with_its_name() -> None:
    uri = "otpauth://totp/Helpline:night-shift?secret=JBSWY3DPEHPK3PXP&issuer=Helpline"
    svg = str(pages.qr_svg(uri, "QR code for the authenticator app"))
    assert svg.startswith("<svg") and 'class="qr"' in svg
    assert "<title>QR code for the authenticator app</title>" in svg
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from anywhere
    # Medium error correction (the phone camera reads it through glare or a crease); 4 pixels a module,
    # the 4-module quiet zone on each side.
    version = segno.make(uri, error="m").version
    side = (17 + 4 * version + 2 * 4) * 4
    assert re.search(rf'width="{side}" height="{side}"', svg)


def _staged_answer(web: object, user: object, stage: str) -> str | None:
    """Where ``_staged`` sends the browser (LoginRequired.to), or None when it lets the visit in."""
    try:
        pages._staged(SimpleNamespace(web=web, user=user), stage)  # type: ignore[arg-type]
    except LoginRequired as refused:
        return refused.to
    return None


def test_each_stage_check_lets_in_its_own_stage_only_and_sends_the_rest_on() -> None:
    analyst = SimpleNamespace(role="analyst")
    full, password = SimpleNamespace(stage="full"), SimpleNamespace(stage="password")
    assert pages._staged(SimpleNamespace(web=password, user=analyst), "password") is analyst  # type: ignore[arg-type]
    assert pages._staged(SimpleNamespace(web=full, user=analyst), "full") is analyst  # type: ignore[arg-type]
    # A full session at the password page goes home; a password-stage one anywhere else, to its page.
    assert _staged_answer(full, analyst, "password") == "/exports"
    assert _staged_answer(password, analyst, "full") == "/login/password"
    # No session, or a session without its person: sign in.
    assert _staged_answer(None, None, "password") == "/login"
    assert _staged_answer(None, analyst, "password") == "/login"
    assert _staged_answer(password, None, "password") == "/login"


@pytest.mark.parametrize(
    ("stage", "role", "to"),
    [
        ("password", "admin", "/login/password"),
        ("full", "admin", "/admin/users"),
        ("full", "coordinator", "/dashboard"),
    ],
)
def test_after_a_stage_comes_the_password_page_or_the_home_of_the_role(stage: str, role: str, to: str) -> None:
    assert pages._after_stage(stage, SimpleNamespace(role=role)) == to  # type: ignore[arg-type]
