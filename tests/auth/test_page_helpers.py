"""The sign-in pages' own helpers, with their answers written out: errors by field, each role's home, the QR code."""

from __future__ import annotations

import re
from types import SimpleNamespace

import segno

from app.auth import pages
from app.errors import Invalid


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
    assert pages.field_errors(exc) == {
        "password": "at least 12 characters",
        "username": "no spaces",
        "_": "the form as a whole",
        "otp": "",
    }
    assert pages.field_errors(Invalid.field("role", "unknown role")) == {"role": "unknown role"}
    assert pages.field_errors(Invalid("the names do not match")) == {"_": "the names do not match"}


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
