"""Turning form posts into service inputs, and validation failures into messages beside each field."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from app.errors import Invalid, NotFound
from app.web.i18n import N_

# Messages the services and schemas may give, so the catalog has them; anything else shows as given.
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
    N_("the current password or the code is wrong"),
    N_("the two passwords differ"),
    N_("use 2-32 characters: Latin letters, digits, '.', '-' or '_' (not '.' or '..')"),
    N_("must not be before the case was opened"),
    N_("must not be before the contact was received"),
    N_("must be the name of an active caseworker"),
    N_("must not be before the case's last status change"),
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
    "uuid_parsing": N_("Choose one of the options."),
}


def field_errors(exc: ValidationError | Invalid) -> dict[str, str]:
    """The first message for each field, keyed by field name (untranslated; templates translate)."""
    errors: dict[str, str] = {}
    if isinstance(exc, ValidationError):
        items: list[dict[str, Any]] = [dict(e) for e in exc.errors()]
    elif isinstance(exc.detail, list):
        items = list(exc.detail)
    else:
        items = [{"loc": ["_"], "msg": str(exc.detail), "type": "value_error"}]
    for err in items:
        loc = [str(part) for part in err.get("loc") or ["_"] if not isinstance(part, int)]
        name = loc[-1] if loc and loc[-1] != "body" else "_"
        kind = str(err.get("type", ""))
        message = BY_TYPE.get(kind) or str(err.get("msg", "")).removeprefix("Value error, ")
        errors.setdefault(name, message)
    return errors


def translated(visit: Any, errors: dict[str, str]) -> dict[str, str]:
    """The messages in the visitor's language (plain strings: the template escapes them)."""
    return {name: visit._(message) for name, message in errors.items()}


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
