"""Page text through gettext: English is the source language, Russian comes from the Babel catalog."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from babel.support import NullTranslations, Translations

from app.errors import HelplineError

TRANSLATIONS_DIR = Path(__file__).parent / "translations"
LOCALES = ("en", "ru")
DEFAULT_LOCALE = "en"
DOMAIN = "messages"


@functools.lru_cache(maxsize=len(LOCALES))
def translations(locale: str) -> NullTranslations:
    """The compiled catalog for ``locale`` (English needs none: the msgids are the English text)."""
    if locale == DEFAULT_LOCALE or locale not in LOCALES:
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS_DIR), [locale], domain=DOMAIN)


def pick_locale(*candidates: str | None, accept_language: str | None = None) -> str:
    """The first supported locale among explicit choices, then the browser's Accept-Language."""
    for value in candidates:
        if value in LOCALES:
            return str(value)
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LOCALES:
            return tag
    return DEFAULT_LOCALE


def NC_(context: str, message: str) -> str:  # noqa: N802 - as N_, with a context
    """Mark a string for the catalog under ``context``: a word whose Russian agrees with what it describes (a
    referral's status is feminine, a case's masculine), translated with ``pgettext(context, message)``."""
    return message


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark for extraction only"
    """Mark a string for the catalog without translating it here (translated when shown)."""
    return message


def reason(
    gettext: Callable[[str], str], exc: HelplineError, *, shown: Callable[[str, object], str] | None = None
) -> str:
    """A service's refusal in the visitor's language: its fixed text translated, then filled in.

    ``shown(place, value)`` turns a value into the text shown for it (a status code into its translated
    label); without it the values go in as they are (a partner's name, a referral code, a date).
    """
    if exc.template is None:
        return gettext(str(exc.detail))
    return filled(gettext, exc.template, exc.values, shown=shown)


def filled(
    gettext: Callable[[str], str],
    template: str,
    values: dict[str, object],
    *,
    shown: Callable[[str, object], str] | None = None,
) -> str:
    """A fixed text with ``{name}`` places translated, then filled in (a text without values is left as it is)."""
    text = gettext(template)
    if not values:
        return text
    return text.format(**{place: shown(place, value) if shown else value for place, value in values.items()})
