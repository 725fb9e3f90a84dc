"""placeholder"""

from typing import Any


def requires() -> str | None:
    return "not written yet"


def run(ctx: Any, outcome: Any) -> None:
    raise NotImplementedError
