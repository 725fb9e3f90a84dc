"""One error base that carries its HTTP status; one handler renders it as JSON ``{"detail": ...}``."""

from __future__ import annotations

from typing import Any


class HelplineError(Exception):
    """A failure the caller can act on; ``detail`` is safe to show and never holds a protected value.

    A reason that names something (a status, a code, a partner) is a fixed text with ``{name}`` places, and
    the values come as keywords: ``Conflict("a {status} case cannot be verified", status=case.status)``. The
    detail is the text filled in (what the API and the command line show); ``template`` and ``values`` are kept
    apart, so a page translates the fixed text and then fills it in (``app.web.i18n.reason``). A detail that is
    a dict carries its text under ``"message"``.
    """

    status_code = 400
    # A few failures must still be recorded (a failed sign-in counts towards lock-out): the unit
    # of work commits instead of rolling back when this is set.
    keep_changes = False

    def __init__(self, detail: Any = None, **values: Any) -> None:
        detail = detail if detail is not None else self.default_detail()
        text = detail.get("message") if isinstance(detail, dict) else detail
        self.template: str | None = text if isinstance(text, str) else None
        self.values = values
        if values and self.template is not None:
            filled = self.template.format(**values)
            detail = {**detail, "message": filled} if isinstance(detail, dict) else filled
        self.detail = detail
        # Each field's message as a fixed text and its values, for a page to translate (``Invalid.field``).
        self.fields: dict[str, tuple[str, dict[str, Any]]] = {}
        super().__init__(str(self.detail))

    @classmethod
    def default_detail(cls) -> str:
        return "bad request"


class NotAuthenticated(HelplineError):
    status_code = 401

    @classmethod
    def default_detail(cls) -> str:
        return "not authenticated"


class SignInFailed(NotAuthenticated):
    keep_changes = True


class Forbidden(HelplineError):
    status_code = 403

    @classmethod
    def default_detail(cls) -> str:
        return "not allowed for your role"


class NotFound(HelplineError):
    """Unknown, or not yours: the two are never told apart."""

    status_code = 404

    @classmethod
    def default_detail(cls) -> str:
        return "not found"


class Conflict(HelplineError):
    status_code = 409

    @classmethod
    def default_detail(cls) -> str:
        return "conflict"


class Invalid(HelplineError):
    status_code = 422

    @classmethod
    def default_detail(cls) -> str:
        return "invalid input"

    @classmethod
    def field(cls, name: str, message: str, /, **values: Any) -> Invalid:
        """A 422 shaped like FastAPI's own validation errors, naming the field, never its value.

        As with a refusal, a message that names something is a fixed text with ``{name}`` places and the values
        as keywords: the API gets it filled in, and ``fields`` keeps the text and the values apart for a page.
        """
        text = message.format(**values) if values else message
        made = cls([{"loc": ["body", name], "msg": text, "type": "value_error"}])
        made.fields = {name: (message, values)}
        return made


class TooManyRequests(HelplineError):
    """Refused because of volume (bulk reading); the alarm entry that goes with it is kept."""

    status_code = 429
    keep_changes = True

    @classmethod
    def default_detail(cls) -> str:
        return "too many requests; this has been recorded"
