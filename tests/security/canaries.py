"""Distinctive protected values, and a search for them in every encoding they could leak in.

A canary is a value a person would type into an encrypted field (a name, a phone number, a
handle, a note in Russian). ``needles(canaries)`` turns each into the byte patterns it would
leave behind if it were stored or printed in the clear: UTF-8, UTF-16 LE/BE, hex (both cases),
percent-encoding, JSON ``\\u`` escapes, and base64 (standard and URL-safe) of the UTF-8 at all
three alignments. ``scan`` searches bytes for all of them and says what matched where.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.security import figures

# Values chosen so that none of them can occur by chance in a database page, a log or a response.
CANARY_NAME = "Zelimkhan Qorvatsky-Canary"
CANARY_NAME_RU = "Зелимхан Кырватский"
CANARY_ALIAS = "Tumbleweed-Kestrel-9Q"
CANARY_PHONE_INTL = "+7 928 555-01-47"
CANARY_PHONE_NATIONAL = "89285550147"
CANARY_PHONE_E164 = "+79285550147"
CANARY_HANDLE = "@qorvatsky_kestrel_47"
CANARY_LOCATION = "улица Шалинская 47, квартира 9"
CANARY_FAMILY = "брат Руслан задержан, отец знает адрес"
CANARY_NOTES = "Hidden at Kestrelmoor farmhouse; signal word: PERIWINKLE-LANTERN"
CANARY_NOTES_RU = "Прячется у тёти в Гудермесе, пароль «ночной жаворонок»"
CANARY_TRANSITION_NOTE = "Crossing at Verkhny-Lars on the 3rd, driver Magomed-Kestrel"
CANARY_REASON = "Known entrapment account, posed as Kestrel volunteer"

ALL_CANARIES = (
    CANARY_NAME,
    CANARY_NAME_RU,
    CANARY_ALIAS,
    CANARY_PHONE_INTL,
    CANARY_PHONE_NATIONAL,
    CANARY_PHONE_E164,
    CANARY_HANDLE,
    CANARY_LOCATION,
    CANARY_FAMILY,
    CANARY_NOTES,
    CANARY_NOTES_RU,
    CANARY_TRANSITION_NOTE,
    CANARY_REASON,
)

# Fragments that must not appear even when a value is cut, normalised or re-formatted: the bare
# digits of the phone (E.164 without "+"), the handle without "@", each word of the Russian name.
FRAGMENTS = (
    "9285550147",
    "qorvatsky_kestrel_47",
    "Зелимхан",
    "Кырватский",
    "Qorvatsky",
    "PERIWINKLE-LANTERN",
    "Kestrelmoor",
    "Шалинская",
    "Гудермесе",
)

MIN_NEEDLE = 6  # shorter base64 middles would match by chance


@dataclass(frozen=True)
class Needle:
    canary: str
    encoding: str
    pattern: bytes


@dataclass(frozen=True)
class Hit:
    where: str
    canary: str
    encoding: str
    offset: int

    def __str__(self) -> str:
        return f"{self.where}: {self.canary!r} as {self.encoding} at byte {self.offset}"


def _b64_middles(data: bytes, *, urlsafe: bool) -> list[bytes]:
    """The part of base64(data) that is the same wherever ``data`` starts in the encoded stream."""
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    out = []
    for shift in range(3):
        encoded = encode(b"\0" * shift + data)
        start = 4 if shift else 0  # the first quad mixes in the bytes before
        tail = (shift + len(data)) % 3
        end = len(encoded) - (4 if tail else 0)  # the last quad mixes in the bytes after
        middle = encoded[start:end]
        if len(middle) >= MIN_NEEDLE:
            out.append(middle)
    return out


def encodings(value: str) -> dict[str, bytes | list[bytes]]:
    utf8 = value.encode("utf-8")
    return {
        "utf-8": utf8,
        "utf-16-le": value.encode("utf-16-le"),
        "utf-16-be": value.encode("utf-16-be"),
        "hex": utf8.hex().encode(),
        "HEX": utf8.hex().upper().encode(),
        "percent": urllib.parse.quote(value, safe="").encode(),
        "percent-plus": urllib.parse.quote_plus(value, safe="").encode(),
        "json-escaped": json.dumps(value, ensure_ascii=True)[1:-1].encode(),
        "base64": _b64_middles(utf8, urlsafe=False),
        "base64url": _b64_middles(utf8, urlsafe=True),
    }


def needles(values: Iterable[str] = ALL_CANARIES + FRAGMENTS) -> list[Needle]:
    """Every byte pattern each value would leave if it were kept or printed in the clear."""
    found: dict[bytes, Needle] = {}
    for value in values:
        variants = {value, value.casefold(), value.upper()}
        for variant in variants:
            for name, encoded in encodings(variant).items():
                for pattern in encoded if isinstance(encoded, list) else [encoded]:
                    if len(pattern) >= MIN_NEEDLE and pattern not in found:
                        found[pattern] = Needle(value, name, pattern)
    return list(found.values())


NEEDLES = needles()


def scan(data: bytes, where: str, *, patterns: list[Needle] | None = None, record: bool = True) -> list[Hit]:
    """Every needle found in ``data``; counts the search into the run's figures unless ``record`` is off."""
    hits = []
    for needle in NEEDLES if patterns is None else patterns:
        offset = data.find(needle.pattern)
        if offset >= 0:
            hits.append(Hit(where, needle.canary, needle.encoding, offset))
    if record:
        figures.count("artefacts_scanned")
        figures.count("bytes_scanned", len(data))
        figures.count("canary_hits", len(hits))
    return hits


def scan_file(path: Path) -> list[Hit]:
    return scan(path.read_bytes(), str(path)) if path.exists() else []


def scan_text(text: str, where: str) -> list[Hit]:
    return scan(text.encode("utf-8"), where)
