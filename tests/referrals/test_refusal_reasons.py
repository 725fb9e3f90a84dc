"""Every reason a page can be refused with reads in Russian as well, the names in it filled in.

A caseworker or coordinator on a Russian page whose upload, move or download is refused must learn why in
their language, including the reasons that name a partner, a code, a date or a status. So a reason is a
fixed English text with ``{name}`` places and the values beside it, never an f-string: the catalog can hold
it, and a page translates it, then fills it in (``app.web.i18n.reason``). These tests read the referral and
case services for every ``PackageError(...)`` and ``Conflict(...)`` and hold them to that.
"""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from app.cases import pages as case_pages
from app.errors import Conflict
from app.referrals import pages as referral_pages
from app.referrals.package import PackageError
from app.web.i18n import reason, translations

APP = Path(__file__).resolve().parents[2] / "app"
# Where the refusals come from, what raises them, and the catalog list the page marks them in.
SOURCES = [
    (("referrals/package.py", "referrals/receiving.py", "referrals/service.py"), referral_pages.SERVICE_MESSAGES),
    (("cases/service.py",), case_pages.SERVICE_MESSAGES),
]
RAISED = {"PackageError", "Conflict"}
# Mutation testing rewrites a module with every mutant beside the original (``x_name__mutmut_12``); those copies
# are not the code, and other tests kill their changed reasons.
MUTANT = re.compile(r"__mutmut_\d+$")


def _calls(node: ast.AST) -> list[ast.Call]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and MUTANT.search(node.name):
        return []
    found = [node] if isinstance(node, ast.Call) else []
    for child in ast.iter_child_nodes(node):
        found.extend(_calls(child))
    return found


def _text(arg: ast.expr) -> ast.expr:
    """The reason's own expression: the argument, or the ``"message"`` of a dict detail."""
    if isinstance(arg, ast.Dict):
        for key, value in zip(arg.keys, arg.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == "message":
                return value
    return arg


def _raised() -> list[tuple[str, ast.expr, tuple[str, ...]]]:
    """(file:line, reason expression, the catalog list it belongs in) of every refusal raised."""
    found = []
    for files, messages in SOURCES:
        for name in files:
            for call in _calls(ast.parse((APP / name).read_text("utf-8"))):
                if getattr(call.func, "id", None) in RAISED and call.args:
                    found.append((f"{name}:{call.lineno}", _text(call.args[0]), messages))
    return found


def _places(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_the_scan_finds_the_refusals() -> None:
    # The scan itself can fail: it must find the reasons it is meant to hold (about forty).
    assert len(_raised()) >= 35


@pytest.mark.parametrize(("where", "arg", "messages"), _raised(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_refusal_is_a_fixed_text_the_catalog_translates(where: str, arg: ast.expr, messages: tuple) -> None:
    assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), (
        f"{where}: a refusal's reason must be a fixed text with {{name}} places, not built per call"
    )
    text = arg.value
    assert text in messages, f"{where}: mark {text!r} in the page's SERVICE_MESSAGES"
    russian = translations("ru").gettext(text)
    assert russian != text, f"{where}: no Russian for {text!r} (scripts/i18n all, then translate)"
    assert _places(russian) == _places(text), f"{where}: the Russian fills in other places than the English"


def test_a_reason_is_filled_in_for_the_api_and_kept_apart_for_the_page() -> None:
    exc = PackageError(
        "refused: referral {code} from {partner} was already imported on {on}", code="R-1", partner="P", on="2026-12-01"
    )
    assert exc.detail == "refused: referral R-1 from P was already imported on 2026-12-01" == str(exc)
    assert exc.template == "refused: referral {code} from {partner} was already imported on {on}"
    ru = translations("ru").gettext
    assert reason(ru, exc) == "отклонено: передача R-1 от P уже импортирована 2026-12-01"
    # A name holding braces is a value, not a place: it is written as it is.
    odd = PackageError(
        "refused: the signature does not match {partner}'s verify key (altered or forged)", partner="{x}"
    )
    assert odd.detail.startswith("refused: the signature does not match {x}'s verify key")
    # A text without values is left alone, braces and all (the pages pass translated text through).
    assert PackageError("a {literal} text").detail == "a {literal} text"


def test_a_dict_detail_keeps_its_shape_with_the_message_filled_in() -> None:
    exc = Conflict(
        {"message": "a case cannot move from {status} to {target}", "allowed": ["paused"]},
        status="new",
        target="evacuated",
    )
    # What the API answers: the same keys, the message filled in.
    assert exc.detail == {"message": "a case cannot move from new to evacuated", "allowed": ["paused"]}
    ru = translations("ru").gettext
    assert reason(ru, exc) == "случай нельзя перевести из статуса «new» в «evacuated»"
    labelled = reason(ru, exc, shown=lambda _place, value: {"new": "Новый", "evacuated": "Эвакуирован"}[str(value)])
    assert labelled == "случай нельзя перевести из статуса «Новый» в «Эвакуирован»"
    # A reason given without values is translated as a whole, as before.
    assert reason(ru, Conflict("this case was shredded")) == "этот случай уничтожен"
