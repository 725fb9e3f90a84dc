"""Every message a service puts beside a form field reads in Russian too, the names in it filled in.

A coordinator on a Russian page whose answer to a referral names a code nobody sent, or a caseworker whose
intake names a region that is no longer offered, must be told why in Russian, with the code or the regions
in the sentence. So a field message is a fixed English text with ``{name}`` places and its values beside it
(``Invalid.field(field, text, **values)``), never an f-string: the catalog holds the text, the API gets it
filled in, and a page translates it, then fills it in (``app.web.forms.translated``). These tests read every
service for ``Invalid.field(...)`` and hold each message to that.
"""

from __future__ import annotations

import ast
import importlib
import re
import string
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app.auth import passwords
from app.contacts.models import Contact
from app.crypto import service as crypto
from app.errors import Invalid
from app.web import forms
from app.web.i18n import translations
from tests.web.test_domain_pages import intake

APP = Path(__file__).resolve().parents[2] / "app"
# The demo loader's checks are for the command line that builds synthetic data; no page shows them.
NOT_SHOWN = {"bulk.py"}
MUTANT = re.compile(r"__mutmut_\d+$")
RU = translations("ru").gettext


def _calls(node: ast.AST) -> list[ast.Call]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and MUTANT.search(node.name):
        return []  # mutation testing's copies of a function are not the code
    found = [node] if isinstance(node, ast.Call) else []
    for child in ast.iter_child_nodes(node):
        found.extend(_calls(child))
    return found


def _field_messages() -> list[tuple[str, str, ast.expr]]:
    """(file:line, module, message expression) of every ``Invalid.field`` in the services."""
    found = []
    for path in sorted(APP.rglob("*.py")):
        relative = path.relative_to(APP)
        if relative.name in NOT_SHOWN or "mutants" in path.parts:
            continue
        module = "app." + ".".join(relative.with_suffix("").parts)
        for call in _calls(ast.parse(path.read_text("utf-8"))):
            func = call.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "field"
                and getattr(func.value, "id", None) == "Invalid"
            ):
                found.append((f"{relative}:{call.lineno}", module, call.args[1]))
    return found


def _places(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _fixed_text(module: str, arg: ast.expr) -> str | None:
    """The message when it is a fixed text: a literal, or a module's constant (``USERNAME_RULE``)."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.Name):
        value = getattr(importlib.import_module(module), arg.id, None)
        return value if isinstance(value, str) else None
    return None


# A password's weakness is one of the fixed texts ``passwords.weakness`` returns (checked below).
PASSWORD_PROBLEM = "auth/service.py"


def test_the_scan_finds_the_field_messages() -> None:
    # The scan itself can fail: it must find the messages it is meant to hold (forty-four now).
    assert len(_field_messages()) >= 40


@pytest.mark.parametrize(("where", "module", "arg"), _field_messages(), ids=lambda v: v if "/" in str(v) else "")
def test_each_field_message_is_a_fixed_text_the_catalog_translates(where: str, module: str, arg: ast.expr) -> None:
    if where.startswith(PASSWORD_PROBLEM) and isinstance(arg, ast.Name) and arg.id == "problem":
        return
    text = _fixed_text(module, arg)
    assert text is not None, f"{where}: a field message must be a fixed text with {{name}} places, not built per call"
    assert text in forms.KNOWN_MESSAGES, f"{where}: mark {text!r} in app/web/forms.py KNOWN_MESSAGES"
    russian = RU(text)
    assert russian != text, f"{where}: no Russian for {text!r} (scripts/i18n all, then translate)"
    assert _places(russian) == _places(text), f"{where}: the Russian fills in other places than the English"


def test_a_password_is_refused_in_russian_for_each_weakness() -> None:
    # The texts passwords.weakness gives for the default length of 12, each one met by a password.
    problems = {
        passwords.weakness("short", username="amina", min_length=12),
        passwords.weakness("x" * 1025, username="amina", min_length=12),
        passwords.weakness("password1234", username="amina", min_length=12),
        passwords.weakness("abcabcabcabc", username="amina", min_length=12),
        passwords.weakness("river amina stone", username="amina", min_length=12),
    }
    assert None not in problems and len(problems) == 5
    for problem in problems:
        assert problem in forms.KNOWN_MESSAGES and RU(problem) != problem, problem


def test_a_field_message_is_filled_in_for_the_api_and_kept_apart_for_the_page() -> None:
    exc = Invalid.field("code", "no referral {code} was received here", code="R-7K3Q-9M")
    # The API's 422 is FastAPI's shape, the message filled in.
    assert exc.detail == [
        {"loc": ["body", "code"], "msg": "no referral R-7K3Q-9M was received here", "type": "value_error"}
    ]
    assert exc.fields == {"code": ("no referral {code} was received here", {"code": "R-7K3Q-9M"})}
    russian = SimpleNamespace(_=RU)
    assert forms.translated(russian, exc) == {"code": "передача R-7K3Q-9M сюда не поступала"}
    assert forms.translated(SimpleNamespace(_=lambda text: text), exc) == {
        "code": "no referral R-7K3Q-9M was received here"
    }
    # A value holding braces is written as it is, not read as a place.
    odd = Invalid.field("partner", "no partner named {name}", name="{code}")
    assert odd.detail[0]["msg"] == "no partner named {code}"
    assert forms.translated(russian, odd) == {"partner": "партнёра с именем {code} нет"}
    # ``shown`` turns a value into its shown text (a status into its label), the rest as they are.
    answered = Invalid.field(
        "status", "a referral that is {status} cannot be answered {target}", status="completed", target="declined"
    )
    labels = {"completed": "Завершено", "declined": "Отклонено"}
    assert forms.translated(russian, answered, shown=lambda _place, value: labels[str(value)]) == {
        "status": "на передачу в статусе «Завершено» нельзя ответить «Отклонено»"
    }
    # A message without values, and a schema's own, are translated whole as before.
    assert forms.translated(russian, Invalid.field("on", "must not be in the future")) == {
        "on": "дата не может быть в будущем"
    }
    assert forms.translated(russian, Invalid("the names do not match")) == {"_": "the names do not match"}


def test_an_intake_with_a_region_no_longer_offered_is_refused_in_russian_and_keeps_what_was_typed(
    pages, client, factory, session
):
    account = factory.account("caseworker")
    pages.signed_in(account)
    assert (
        pages.post("/language", {"locale": "ru", "next": "/contacts/new"}, from_page="/contacts/new").status_code == 303
    )
    typed = intake(
        region="atlantis", notes="called at night from a borrowed phone 4471", received_on=date.today().isoformat()
    )
    refused = pages.post("/contacts/new", typed)
    assert refused.status_code == 422
    regions = ", ".join(crypto.settings_of(session).regions)
    assert f"неизвестный регион; допустимые: {regions}" in refused.text
    assert "unknown region" not in refused.text
    assert "called at night from a borrowed phone 4471" in refused.text
    assert session.scalar(select(func.count()).select_from(Contact)) == 0


def test_a_length_limit_is_named_and_an_empty_date_is_missing_in_both_languages() -> None:
    from pydantic import BaseModel, Field, ValidationError

    class Form(BaseModel):
        alias: str = Field(max_length=5)
        on: date

    with pytest.raises(ValidationError) as long_and_empty:
        Form.model_validate({"alias": "x" * 9, "on": ""})
    assert forms.field_errors(long_and_empty.value) == {"alias": "Too long (at most 5 characters).", "on": "Required."}
    assert forms.translated(SimpleNamespace(_=RU), long_and_empty.value) == {
        "alias": "Слишком длинно (максимум знаков: 5).",
        "on": "Обязательное поле.",
    }
    # A date written wrong is still told how to write it.
    with pytest.raises(ValidationError) as badly_written:
        Form.model_validate({"alias": "x", "on": "2026-13-45"})
    assert forms.field_errors(badly_written.value) == {"on": "Enter a date as YYYY-MM-DD."}


def test_an_intake_too_long_says_the_limit_in_russian_and_keeps_the_text(pages, client, factory, session):
    from app.contacts.schemas import NAME_MAX

    account = factory.account("caseworker")
    pages.signed_in(account)
    assert (
        pages.post("/language", {"locale": "ru", "next": "/contacts/new"}, from_page="/contacts/new").status_code == 303
    )
    alias = "Зарема " * (NAME_MAX // 7 + 1)
    refused = pages.post("/contacts/new", intake(alias=alias))
    assert refused.status_code == 422
    assert f"Слишком длинно (максимум знаков: {NAME_MAX})." in refused.text
    assert alias.strip() in refused.text or alias in refused.text
    assert session.scalar(select(func.count()).select_from(Contact)) == 0
