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
from app.auth import passwords
from app.auth import service as auth_service
from app.auth.models import User, WebSession
from app.crypto import service as crypto
from app.errors import Invalid, NotAuthenticated

COOKIE_NAME = "helpline_session"
LOCALES = ("en", "ru")
# Stages: "full" may use the service; "enrol" may only finish TOTP set-up; "password" may only
# choose a new password (accounts made with a generated one-time password).
FULL, ENROL, PASSWORD = "full", "enrol", "password"


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


def start(session: Session, *, user: User, stage: str = FULL, locale: str = "en") -> Started:
    """A new session for ``user``; the returned token goes into the cookie and nowhere else."""
    settings = crypto.settings_of(session)
    token = secrets.token_urlsafe(32)
    moment = _now()
    # Sessions nobody came back to are swept here, so dead rows do not pile up between sign-ins.
    session.execute(
        delete(WebSession).where(
            (WebSession.expires_at <= moment)
            | (WebSession.last_seen_at <= moment - timedelta(minutes=settings.session_idle_minutes))
        )
    )
    web = WebSession(
        user_id=user.id,
        token_hash=auth_service.token_hash(token),
        stage=stage,
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
    if user is None or not user.active or _aware(web.created_at) < _aware(user.credentials_changed_at):
        session.delete(web)
        session.flush()
        raise SessionEnded("expired")
    web.last_seen_at = moment
    return web, user


def end(session: Session, *, web: WebSession, user: User) -> None:
    """End a session at once (sign-out and "lock now")."""
    session.execute(delete(WebSession).where(WebSession.id == web.id))
    audit.record(session, actor=user.username, action="session.end", target=user.username)


def sign_in(session: Session, *, username: str, password: str, otp: str, locale: str = "en") -> tuple[Started, User]:
    """Check credentials and open a session at the stage the account needs next.

    An account that has not enrolled TOTP yet may sign in with its password alone, into the
    "enrol" stage; everyone else needs password and a fresh code (lock-out and replay refusal
    come from ``auth_service.authenticate``, whose failures are committed).
    """
    user = session.scalar(select(User).where(User.username == username.strip()))
    if (
        user is not None
        and user.active
        and not user.totp_enrolled
        and not otp.strip()
        and (user.locked_until is None or _aware(user.locked_until) <= _now())
        and passwords.verify_password(user.password_hash, password)
    ):
        user.failed_logins = 0
        return start(session, user=user, stage=ENROL, locale=locale), user
    user = auth_service.authenticate(session, username=username, password=password, otp=otp)
    if not user.totp_enrolled:
        # The code came from the otpauth URI handed out when the account was made: enrolment is proven.
        user.totp_enrolled = True
        audit.record(session, actor=user.username, action="user.totp_enrolled", target=user.username)
    return start(session, user=user, stage=_stage_after_enrolment(user), locale=locale), user


def _stage_after_enrolment(user: User) -> str:
    return PASSWORD if user.must_change_password else FULL


def enrolment_secret(session: Session, *, user: User) -> str:
    """The TOTP secret to show during enrolment (refused once enrolment is complete)."""
    return auth_service.totp_secret_for_enrolment(session, user=user)


def confirm_enrolment(session: Session, *, web: WebSession, user: User, otp: str) -> None:
    """Finish TOTP enrolment with a code from the new authenticator; moves the session on."""
    secret = auth_service.totp_secret_for_enrolment(session, user=user)
    step = passwords.match_totp(secret, otp, last_step=user.totp_last_step)
    if step is None:
        audit.record(session, actor=user.username, action="user.totp_enrol_failed", target=user.username)
        raise Invalid.field("otp", "that code does not match; check the clock of your device and try again")
    user.totp_last_step = step
    user.totp_enrolled = True
    web.stage = _stage_after_enrolment(user)
    audit.record(session, actor=user.username, action="user.totp_enrolled", target=user.username)


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
