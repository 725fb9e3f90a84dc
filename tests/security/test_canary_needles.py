"""The canary search itself: each encoding of each canary is found wherever it sits in a blob."""

from __future__ import annotations

import base64
import json

import pytest

from tests.security import canaries

PADDING = (b"", b"x", b"xy", b"\x00\xff\x10")


@pytest.mark.parametrize("value", canaries.ALL_CANARIES)
def test_every_encoding_of_every_canary_is_found_at_every_offset(value: str) -> None:
    utf8 = value.encode()
    forms = {
        "utf-8": utf8,
        "utf-16-le": value.encode("utf-16-le"),
        "utf-16-be": value.encode("utf-16-be"),
        "hex": utf8.hex().encode(),
        "HEX": utf8.hex().upper().encode(),
        "json": json.dumps({"v": value}).encode(),
    }
    for pad in PADDING:
        forms[f"base64+{len(pad)}"] = base64.b64encode(pad + utf8 + b"tail")
        forms[f"base64url+{len(pad)}"] = base64.urlsafe_b64encode(pad + utf8)
    own = canaries.needles([value])
    for label, form in forms.items():
        for pad in PADDING:
            blob = b"header-bytes " + pad + form + b" trailer"
            hits = canaries.scan(blob, label, patterns=own, record=False)
            assert hits, f"{value!r} not found as {label} after {pad!r}"


def test_unrelated_bytes_do_not_match() -> None:
    blob = bytes(range(256)) * 64 + "Иван Петров +7 900 000-00-00 @someone".encode()
    assert canaries.scan(blob, "noise", record=False) == []


def test_a_normalised_phone_or_bare_handle_is_still_caught() -> None:
    assert canaries.scan(b'{"handle":"qorvatsky_kestrel_47"}', "bare handle", record=False)
    assert canaries.scan(b"tel:79285550147", "bare digits", record=False)
