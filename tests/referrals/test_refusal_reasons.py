"""Every reason a package or an answer is refused with reads in Russian as well, the names filled in.

A caseworker or coordinator on a Russian page who uploads a package that is refused must learn why in their
language, including the reasons that name the partner, the code or the date. So a reason is a fixed English
text with ``{name}`` places, never an f-string: the catalog can hold it, and a page translates it, then fills
it in. These tests read the referral code for every ``PackageError(...)`` and hold it to that.
"""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest

from app.referrals import pages
from app.referrals.package import PackageError
from app.web.i18n import translations

REFERRALS = Path(__file__).resolve().parents[2] / "app" / "referrals"


def _raised_reasons() -> list[tuple[str, ast.expr]]:
    """(file:line, first argument) of every PackageError(...) in the referral code outside the web pages."""
    found = []
    for path in sorted(REFERRALS.glob("*.py")):
        if path.name == "pages.py":  # the pages raise text they have translated already
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "PackageError" and node.args:
                found.append((f"{path.name}:{node.lineno}", node.args[0]))
    return found


def _places(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_the_referral_code_raises_refusals_at_all() -> None:
    # The scan itself can fail: it must find the reasons it is meant to hold (about twenty).
    assert len(_raised_reasons()) >= 15


@pytest.mark.parametrize("where, arg", _raised_reasons(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_refusal_is_a_fixed_text_the_catalog_translates(where: str, arg: ast.expr) -> None:
    assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), (
        f"{where}: a refusal's reason must be a fixed text with {{name}} places, not built per call"
    )
    reason = arg.value
    assert reason in pages.SERVICE_MESSAGES, f"{where}: mark {reason!r} in SERVICE_MESSAGES"
    russian = translations("ru").gettext(reason)
    assert russian != reason, f"{where}: no Russian for {reason!r} (scripts/i18n all, then translate)"
    assert _places(russian) == _places(reason), f"{where}: the Russian fills in other places than the English"


def test_a_reason_is_filled_in_for_the_api_and_kept_apart_for_the_page() -> None:
    exc = PackageError(
        "refused: referral {code} from {partner} was already imported on {on}", code="R-1", partner="P", on="2026-12-01"
    )
    assert exc.detail == "refused: referral R-1 from P was already imported on 2026-12-01" == str(exc)
    assert exc.reason == "refused: referral {code} from {partner} was already imported on {on}"
    russian = translations("ru").gettext(exc.reason).format(**exc.values)
    assert russian == "отклонено: направление R-1 от P уже импортировано 2026-12-01"
    # A name holding braces is a value, not a place: it is written as it is.
    odd = PackageError(
        "refused: the signature does not match {partner}'s verify key (altered or forged)", partner="{x}"
    )
    assert odd.detail.startswith("refused: the signature does not match {x}'s verify key")
    # A text without values is left alone, braces and all (the pages pass translated text through).
    assert PackageError("a {literal} text").detail == "a {literal} text"
