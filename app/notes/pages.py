"""The note and correction forms on a contact's and a case's page: one way to save them and to hold them.

A mistake sends the page back with the mistake explained and everything typed still in the form; nothing is
written. ``save`` writes through the record's own service, ``again`` renders the record's page with ``extra``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from app.errors import Invalid
from app.notes.schemas import NoteIn
from app.web import forms
from app.web.visit import Visit, redirect

Again = Callable[[dict[str, Any]], Response]


def submit_note(visit: Visit, form: FormData, *, save: Callable[[str], object], again: Again, done: str) -> Response:
    """Add the form's note through ``save``, then go to ``done``; on a mistake, the page with the note kept."""
    typed = forms.values(form, "text")
    try:
        data = NoteIn.model_validate(typed)
        with visit.db.begin_nested():
            save(data.text)
    except (ValidationError, Invalid) as exc:
        message = "; ".join(forms.translated(visit, exc).values())
        return again({"note_error": message, "note_text": typed["text"]})
    return redirect(visit, done)


def submit_correction(
    visit: Visit,
    form: FormData,
    *,
    fields: tuple[str, ...],
    model: type[BaseModel],
    save: Callable[[Any], object],
    again: Again,
    done: str,
) -> Response:
    """Correct the record through ``save`` with the form's ``fields`` read as ``model``; mistakes keep them."""
    typed = forms.values(form, *fields)
    try:
        data = model.model_validate(typed)
        with visit.db.begin_nested():
            save(data)
    except (ValidationError, Invalid) as exc:
        errors = forms.translated(visit, exc)
        return again({"edit_errors": errors, "edit_values": typed})
    return redirect(visit, done)
