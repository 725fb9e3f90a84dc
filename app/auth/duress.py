"""What a duress sign-in sets off, silently: every other session and token of the person ends, the
real account is held until an admin unlocks it, and coordinators and admins are alarmed.

The duress session itself is marked (``WebSession.duress``, ``ApiToken.duress``); what it may see is
decided where caseloads are read.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.models import User

ALARM_ACTION = "auth.duress"
# Held "until the end of time": a lock past this is a duress hold, not a timed lock-out.
_FAR = datetime(2200, 1, 1, tzinfo=UTC)


def mark(session: Session) -> None:
    """This unit of work acts for a duress session or token: caseloads read as empty."""
    session.info["duress"] = True


def active(session: Session) -> bool:
    """Whether this unit of work acts for a duress session or token."""
    return bool(session.info.get("duress"))


def triggered(session: Session, *, user: User) -> None:
    """End the person's other sessions and tokens, hold the real account, raise the alarm."""
    from app.auth import service as auth_service
    from app.auth import signin

    auth_service.end_credentials(session, user)
    user.locked_until = signin.HELD
    audit.record(session, actor=user.username, action=ALARM_ACTION, target=user.username)


def is_held(user: User) -> bool:
    """Held by a duress sign-in (until an admin unlocks), as opposed to a timed lock-out."""
    from app.auth import signin

    return user.locked_until is not None and signin._aware(user.locked_until) > _FAR


def open_alarms(session: Session) -> list[str]:
    """Names of accounts whose duress alarm is still standing (held, not yet unlocked by an admin)."""
    names = session.scalars(select(User.username).where(User.locked_until > _FAR).order_by(User.username))
    return list(names)
