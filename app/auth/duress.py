"""What a duress sign-in sets off, silently: every other session and token of the person ends, the
real account is held until an admin unlocks it, and coordinators and admins are alarmed.

The duress session itself is marked (``WebSession.duress``, ``ApiToken.duress``) and acts through a
*stand-in*: an object with the person's name and role but the id of a shadow account that owns
nothing. Every caseload query filters by the actor's id, so every list is empty and every record of
theirs is a 404, through the same pages, menus and code paths as a real session. What the intake
form takes under duress is kept under the shadow account: in no one's caseload, for a coordinator
to review. The shadow account can never sign in (inactive, no usable password or key).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.models import User

ALARM_ACTION = "auth.duress"
# Held "until the end of time": a lock past this is a duress hold, not a timed lock-out.
_FAR = datetime(2200, 1, 1, tzinfo=UTC)


def mark(session: Session, under_duress: bool = True) -> None:
    """Whether this unit of work acts for a duress session or token (its caseload reads as empty)."""
    session.info["duress"] = under_duress


def active(session: Session) -> bool:
    """Whether this unit of work acts for a duress session or token."""
    return bool(session.info.get("duress"))


SHADOW_PREFIX = "~duress-"


def shadow_id(user: User) -> uuid.UUID:
    return uuid.uuid5(user.id, "helpline-duress-shadow")


def is_shadow(username: str) -> bool:
    return username.startswith(SHADOW_PREFIX)


def _account(user: User, *, username: str, active: bool) -> User:
    # No usable password ("!" is no argon2 hash) and no key: nothing can sign in as it.
    return User(
        id=shadow_id(user),
        username=username,
        role=user.role,
        password_hash="!",  # noqa: S106 - not a hash at all, so nothing ever verifies against it
        totp_secret_ct=b"",
        totp_enrolled=True,
        totp_last_step=0,
        failed_logins=0,
        active=active,
        must_change_password=False,
        credentials_changed_at=user.credentials_changed_at if active else datetime.now(UTC),
        created_on=user.created_on if active else date.today(),
    )


def _ensure_shadow(session: Session, user: User) -> None:
    if session.get(User, shadow_id(user)) is None:
        session.add(_account(user, username=SHADOW_PREFIX + user.id.hex, active=False))
        session.flush()


def stand_in(user: User) -> User:
    """The person as a duress session shows them: their name and role, the shadow account's id.

    Transient (never added to the session), so nothing about it is ever written back.
    """
    return _account(user, username=user.username, active=True)


def triggered(session: Session, *, user: User) -> None:
    """End the person's other sessions and tokens, hold the real account, raise the alarm."""
    from app.auth import service as auth_service
    from app.auth import signin

    _ensure_shadow(session, user)
    auth_service.end_credentials(session, user)
    user.locked_until = signin.HELD
    audit.record(session, actor=user.username, action=ALARM_ACTION, target=user.username)
    # The coordinators' queue too; "raised by" names the person (there is no record code).
    from app.attention import service as attention

    attention.raise_item(session, kind="duress", raised_by=user.username)


def is_held(user: User) -> bool:
    """Held by a duress sign-in (until an admin unlocks), as opposed to a timed lock-out."""
    from app.auth import signin

    return user.locked_until is not None and signin._aware(user.locked_until) > _FAR


def open_alarms(session: Session) -> list[str]:
    """Names of accounts whose duress alarm is still standing (held, not yet unlocked by an admin).

    Shown as a banner on coordinators' and admins' pages (the queue holds a "duress" entry as well).
    """
    names = session.scalars(select(User.username).where(User.locked_until > _FAR).order_by(User.username))
    return list(names)
