"""One Jinja2 environment per language (so a request never sees another's translations)."""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from app.idempotency import service as idempotency
from app.web import i18n, labels

TEMPLATES_DIR = Path(__file__).parent / "templates"


@functools.lru_cache(maxsize=len(i18n.LOCALES))
def environment(locale: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=select_autoescape(["html", "svg"], default=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    catalog = i18n.translations(locale)
    env.install_gettext_translations(catalog, newstyle=True)  # type: ignore[attr-defined]
    env.globals["locale"] = locale
    env.globals["label"] = lambda kind, code: catalog.gettext(labels.label(kind, code)) if code else ""
    env.globals["labels"] = labels.ALL
    env.globals["form_once"] = idempotency.new_form_token  # one-time token of each rendered form
    env.filters["day"] = _DAY_FORMATS.get(locale, _day)
    return env


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""


def _day_ru(value: date | None) -> str:
    # As dates are written in Russian: 02.12.2026. Form fields keep ISO (an <input type="date"> needs it).
    return value.strftime("%d.%m.%Y") if value else ""


_DAY_FORMATS = {"ru": _day_ru}


def render_string(locale: str, name: str, context: dict[str, Any]) -> str:
    return environment(locale).get_template(name).render(**context)


def markup(svg: str) -> Markup:
    """Trust an SVG string drawn by our own code (every text node in it was escaped when drawn)."""
    return Markup(svg)  # noqa: S704 - produced by app.web.charts / segno, never from input
