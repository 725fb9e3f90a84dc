"""The audit link's canonical bytes written out, and both link functions checked against them with
hashlib and hmac directly: the format of app.audit.link, byte for byte."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone

from app.audit import link

FIELDS = {
    "seq": 1,
    "at": datetime(2026, 12, 1, 10, 20, 30, tzinfo=UTC),
    "actor": "alice",
    "action": "case.read",
    "target": "C-7K3Q-9M",
    "detail": '{"rows":2}',
    "prev": "0" * 64,
}
UNKEYED = (
    b'{"action":"case.read","actor":"alice","at":"2026-12-01T10:20:30","detail":"{\\"rows\\":2}",'
    b'"prev":"' + b"0" * 64 + b'","seq":1,"target":"C-7K3Q-9M"}'
)
KEYED = (
    b'{"action":"case.read","actor":"alice","at":"2026-12-01T10:20:30","detail":"{\\"rows\\":2}",'
    b'"kid":7,"prev":"' + b"0" * 64 + b'","seq":1,"target":"C-7K3Q-9M"}'
)


def test_the_canonical_bytes_with_and_without_the_key_id() -> None:
    assert link.canonical(**FIELDS) == UNKEYED
    assert link.canonical(**FIELDS, kid=7) == KEYED
    assert link.canonical(**{**FIELDS, "target": None}).endswith(b'"seq":1,"target":null}')


def test_the_keyed_link_is_hmac_sha256_over_the_prefix_and_the_canonical_bytes() -> None:
    key = bytes(range(32))
    expected = hmac.new(key, b"helpline-audit-v2\n" + KEYED, hashlib.sha256).hexdigest()
    assert link.keyed_link(key, kid=7, **FIELDS) == expected


def test_the_legacy_link_is_plain_sha256_of_the_canonical_bytes_without_a_key_id() -> None:
    assert link.legacy_hash(**FIELDS) == hashlib.sha256(UNKEYED).hexdigest()


def test_times_are_written_in_utc_to_the_second(tokyo_clock: None) -> None:
    moscow = FIELDS["at"].astimezone(timezone(timedelta(hours=3)))  # type: ignore[union-attr]
    naive = datetime(2026, 12, 1, 10, 20, 30, 999_999)  # as SQLite hands it back: UTC without a zone
    assert link.canonical(**{**FIELDS, "at": moscow}) == UNKEYED
    assert link.canonical(**{**FIELDS, "at": naive}) == UNKEYED


def test_text_in_other_scripts_is_escaped_to_ascii() -> None:
    body = link.canonical(**{**FIELDS, "actor": "Амина"})
    assert b'"actor":"\\u0410\\u043c\\u0438\\u043d\\u0430"' in body


def test_links_compare_equal_only_when_equal() -> None:
    assert link.same("ab" * 32, "ab" * 32) is True
    assert link.same("ab" * 32, "ab" * 31 + "ac") is False
    assert link.same("ab" * 32, "ab" * 31) is False
    assert link.same("ab" * 32, "аb" * 32) is False  # a Cyrillic "а" neither raises nor matches
    assert link.same("аb" * 32, "ab" * 32) is False
