"""Browser sessions kept server-side: sign-in, TOTP enrolment, idle and absolute expiry, CSRF tokens.

The cookie holds a random token; only its SHA-256 is stored, so a copy of the database cannot be
replayed as a session. CSRF tokens are an HMAC of the session's own secret, so they die with it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth import duress, signin
from app.auth import service as auth_service
from app.auth.models import User, WebSession
from app.crypto import service as crypto
from app.errors import Invalid, NotAuthenticated

COOKIE_NAME = "helpline_session"
# With Secure cookies the name carries the __Host- prefix: the browser then refuses it from a sibling
# host or with a Domain attribute, so nobody on another subdomain can plant a session (login CSRF).
HOST_COOKIE_NAME = "__Host-helpline_session"


def cookie_name(secure: bool) -> str:
    return HOST_COOKIE_NAME if secure else COOKIE_NAME


LOCALES = ("en", "ru")
# Stages: "full" may use the service; "password" may only choose a new password (accounts given a
# generated one-time password). Each step up starts a new session with a new id.
FULL, PASSWORD = "full", "password"


class SessionEnded(NotAuthenticated):
    """No live session: absent, unknown, idle too long, or past its absolute lifetime.

    Changes are kept (an expired row is deleted on the way out). ``user_id`` names whose session ran
    out (idle or absolute limit), so a form posted into it can be held for that person (app/web/held.py).
    """

    keep_changes = True

    def __init__(self, reason: str = "absent", *, user_id: uuid.UUID | None = None) -> None:
        self.reason = reason
        self.user_id = user_id
        super().__init__("session ended")


@dataclass(frozen=True)
class Started:
    web: WebSession
    token: str


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def start(session: Session, *, user: User, stage: str = FULL, locale: str = "en", duress: bool = False) -> Started:
    """A new session for ``user``; the returned token goes into the cookie and nowhere else."""
    settings = crypto.settings_of(session)
    token = secrets.token_urlsafe(32)
    moment = _now()
    # Sessions nobody came back to are swept here, so dead rows do not pile up between sign-ins.
    # "fetch": the database picks the rows and the session drops those; the default would re-compare the
    # loaded sessions in Python, where SQLite's zone-less times cannot be compared with the clock.
    session.execute(
        delete(WebSession)
        .where(
            (WebSession.expires_at <= moment)
            | (WebSession.last_seen_at <= moment - timedelta(minutes=settings.session_idle_minutes))
        )
        .execution_options(synchronize_session="fetch")
    )
    web = WebSession(
        user_id=user.id,
        token_hash=auth_service.token_hash(token),
        stage=stage,
        duress=duress,
        csrf_secret=secrets.token_bytes(32),
        locale=locale if locale in LOCALES else "en",
        created_at=moment,
        last_seen_at=moment,
        expires_at=moment + timedelta(hours=settings.session_absolute_hours),
    )
    session.add(web)
    session.flush()
    audit.record(session, actor=user.username, action="session.start", target=user.username, detail={"stage": stage})
    return Started(web=web, token=token)


def resume(session: Session, *, token: str | None) -> tuple[WebSession, User]:
    """The live session behind a cookie token, its idle clock reset; SessionEnded otherwise."""
    if not token:
        raise SessionEnded("absent")
    web = session.scalar(select(WebSession).where(WebSession.token_hash == auth_service.token_hash(token)))
    if web is None:
        raise SessionEnded("unknown")
    settings = crypto.settings_of(session)
    moment = _now()
    idle_limit = _aware(web.last_seen_at) + timedelta(minutes=settings.session_idle_minutes)
    if moment >= idle_limit or moment >= _aware(web.expires_at):
        session.delete(web)
        session.flush()
        raise SessionEnded("expired", user_id=web.user_id)
    user = session.get(User, web.user_id)
    if (
        user is None
        or not user.active
        or _aware(web.created_at) < _aware(user.credentials_changed_at)
        or web.stage not in (FULL, PASSWORD)  # e.g. an "enrol" session from before enrolment needed a code
    ):
        session.delete(web)
        session.flush()
        raise SessionEnded("expired")
    web.last_seen_at = moment
    duress.mark(session, web.duress)
    if web.duress:
        return web, duress.stand_in(user)
    return web, user


def end(session: Session, *, web: WebSession, user: User) -> None:
    """End a session at once (sign-out and "lock now")."""
    session.execute(delete(WebSession).where(WebSession.id == web.id))
    audit.record(session, actor=user.username, action="session.end", target=user.username)


def sign_in(
    session: Session, *, username: str, password: str, otp: str, locale: str = "en"
) -> tuple[Started, signin.Admitted]:
    """Check name, password and code (``signin.authenticate``) and open a new session.

    There is no password-only stage: the TOTP secret handed over at creation or reset is the only
    way in, so a code is needed from the very first sign-in and no page ever shows the secret.
    A session opened with the duress password is marked so (its pages show an empty caseload).
    """
    admitted = signin.authenticate(session, username=username, password=password, otp=otp)
    user = admitted.user
    if admitted.duress:
        duress.triggered(session, user=user)
    stage = PASSWORD if user.must_change_password and not admitted.duress else FULL
    return start(session, user=user, stage=stage, locale=locale, duress=admitted.duress), admitted


def change_password(session: Session, *, user: User, password: str, repeat: str, locale: str) -> Started:
    """Set the user's own new password; every other session ends and a fresh full one starts."""
    if password != repeat:
        raise Invalid.field("repeat", "the two passwords differ")
    auth_service.set_password(session, actor=user.username, user=user, password=password)
    session.flush()
    return start(session, user=user, stage=FULL, locale=locale)


def set_locale(web: WebSession, locale: str) -> None:
    if locale in LOCALES:
        web.locale = locale


def csrf_token(web: WebSession) -> str:
    """The form token for this session: an HMAC of its secret, useless once the session ends."""
    return hmac.new(web.csrf_secret, b"helpline-form", hashlib.sha256).hexdigest()


def csrf_ok(web: WebSession, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(csrf_token(web), str(token))
