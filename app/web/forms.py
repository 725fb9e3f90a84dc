"""Turning form posts into service inputs, and validation failures into messages beside each field."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from app.errors import Invalid, NotFound
from app.web.i18n import N_, filled

# Messages the services and schemas may give beside a field, so the catalog has them (a test holds every
# ``Invalid.field`` of the services to this list); one with ``{name}`` places is filled in after translation.
KNOWN_MESSAGES = (
    N_("must not be in the future"),
    N_("must be a date written as YYYY-MM-DD"),
    N_("unknown region"),
    N_("use at least 12 characters"),
    N_("use at most 1024 characters"),
    N_("this password is on a list of common or breached passwords; choose another"),
    N_("this password repeats too few characters; choose another"),
    N_("the password must not contain the user name"),
    N_("the password must differ from the duress password"),
    N_("the duress password must differ from the password"),
    N_("choose a new password, not the one you have now"),
    N_("a phone number or handle needs at least one letter or digit"),
    N_("the current password or the code is wrong"),
    N_("the two passwords differ"),
    N_("use 2-32 characters: Latin letters, digits, '.', '-' or '_' (not '.' or '..')"),
    N_("must not be before the case was opened"),
    N_("must not be before the contact was received"),
    N_("must be the name of an active caseworker"),
    N_("must not be before the case's last status change"),
    N_("must be an https:// address"),
    N_("is this organisation's own key"),
    N_("use 1-64 letters, digits, dots, dashes or underscores"),
    N_("unknown region; use one of: {regions}"),
    N_("unknown language; choose one from the list"),
    N_("open a case from this contact instead"),
    N_("role must be one of: {roles}"),
    N_("invalid form token"),
    N_("must be csv or json"),
    N_("no released period in that range"),
    N_("must be base64"),
    N_("is far too large to be a referral package"),
    N_("{name} is not an active caseworker"),
    N_("name the caseworker who takes the case (there is not exactly one)"),
    N_("must be one of: {answers}"),
    N_("no referral {code} was received here"),
    N_("two partners used this code; name the partner"),
    N_("a referral that is {status} cannot be answered {target}"),
    N_("no partner named {name}"),
    N_("must not be before the first contact"),
    N_("must not be before the referral's last status change"),
    N_("must be a month written as YYYY-MM"),
    N_("only a month that has ended can be released"),
    N_("published statistics come by whole released month only"),
    N_("must not be after to"),
    N_("no released month in that range"),
    N_("must be day, week or month"),
    N_("must not be after to (today when to is not given)"),
    N_("at most {count} periods at a time"),
)
BY_TYPE = {
    "missing": N_("Required."),
    "date_from_datetime_parsing": N_("Enter a date as YYYY-MM-DD."),
    "date_parsing": N_("Enter a date as YYYY-MM-DD."),
    "date_type": N_("Enter a date as YYYY-MM-DD."),
    "date_from_datetime_inexact": N_("Enter a date as YYYY-MM-DD."),
    "enum": N_("Choose one of the options."),
    "literal_error": N_("Choose one of the options."),
    "string_pattern_mismatch": N_("Use a short code such as ru or ce."),
    "string_too_long": N_("This is too long."),
    "string_too_short": N_("Required."),
    "too_long": N_("Too many choices."),
    "too_short": N_("Choose at least one."),
    "uuid_parsing": N_("Choose one of the options."),
}


# A limit the schema states is named in its message (pydantic gives it in the error's ``ctx``).
WITH_LIMIT = {"string_too_long": (N_("Too long (at most {max_length} characters)."), "max_length")}
# A date field left empty is a missing date, not a badly written one.
DATE_TYPES = frozenset({"date_from_datetime_parsing", "date_parsing", "date_type", "date_from_datetime_inexact"})


def _messages(exc: ValidationError | Invalid) -> dict[str, tuple[str, dict[str, Any]]]:
    """The first message of each field as a fixed text and the values it names, keyed by field name."""
    if isinstance(exc, ValidationError):
        items: list[dict[str, Any]] = [dict(e) for e in exc.errors()]
    elif isinstance(exc.detail, list):
        items = list(exc.detail)
    else:
        items = [{"loc": ["_"], "msg": str(exc.detail), "type": "value_error"}]
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for err in items:
        loc = [str(part) for part in err.get("loc") or ["_"] if not isinstance(part, int)]
        name = loc[-1] if loc and loc[-1] != "body" else "_"
        if name in found:
            continue
        kind = str(err.get("type", ""))
        limit = WITH_LIMIT.get(kind)
        ctx = err.get("ctx") or {}
        if limit is not None and limit[1] in ctx:
            found[name] = (limit[0], {limit[1]: ctx[limit[1]]})
        elif kind in DATE_TYPES and err.get("input") == "":
            found[name] = (BY_TYPE["missing"], {})
        elif kind in BY_TYPE:
            found[name] = (BY_TYPE[kind], {})
        elif isinstance(exc, Invalid) and name in exc.fields:
            found[name] = exc.fields[name]
        else:
            found[name] = (str(err.get("msg", "")).removeprefix("Value error, "), {})
    return found


def field_errors(exc: ValidationError | Invalid) -> dict[str, str]:
    """The first message for each field, keyed by field name, in English with its values filled in."""
    return {name: text.format(**values) if values else text for name, (text, values) in _messages(exc).items()}


def translated(
    visit: Any, exc: ValidationError | Invalid, *, shown: Callable[[str, object], str] | None = None
) -> dict[str, str]:
    """``field_errors`` in the visitor's language (plain strings: the template escapes them).

    A message that names something (a length limit, or ``Invalid.field`` with values) is translated as its fixed
    text, then filled in; ``shown`` turns a value into its shown text, as for ``app.web.i18n.reason``.
    """
    return {name: filled(visit._, text, values, shown=shown) for name, (text, values) in _messages(exc).items()}


def values(form: FormData, *names: str, lists: tuple[str, ...] = ()) -> dict[str, Any]:
    """The named fields as typed (strings, or lists for checkboxes); absent text fields are ''."""
    out: dict[str, Any] = {name: str(form.get(name, "")) for name in names}
    for name in lists:
        out[name] = [str(v) for v in form.getlist(name)]
    return out


def parse(model: type[BaseModel], data: dict[str, Any]) -> Any:
    return model.model_validate(data)


def parse_id(value: str) -> uuid.UUID:
    """A record id from a URL; anything malformed is simply not found."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound() from None


def optional_day(value: str | None) -> date | None:
    """A filter date, or None when blank or malformed (filters never fail a page)."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None
