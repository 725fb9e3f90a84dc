"""Accounts, sign-in with password and TOTP, lock-out, bearer tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth import passwords
from app.auth.models import ApiToken, Role, User, WebSession
from app.crypto import service as crypto
from app.errors import Conflict, Forbidden, Invalid, NotAuthenticated, NotFound, SignInFailed

# One message for every failed sign-in, so nobody learns whether a name exists or is locked.
SIGN_IN_FAILED = "sign-in failed: wrong name, password or code, or the account is locked for a while"


def now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class NewAccount:
    user: User
    password: str
    otpauth_uri: str


def _seal_totp(session: Session, user: User, secret: str) -> bytes:
    try:
        key = crypto.current_subject_key(session, subject_id=user.id)
    except crypto.ShreddedError:
        key = crypto.create_subject_key(session, subject_id=user.id)
    sealed = crypto.seal_field(session, secret, key=key, table="user_account", column="totp_secret", row_id=user.id)
    assert sealed is not None
    return sealed


def _open_totp(session: Session, user: User) -> str:
    secret = crypto.open_field(
        session,
        user.totp_secret_ct,
        table="user_account",
        column="totp_secret",
        row_id=user.id,
        subject_id=user.id,
    )
    assert secret is not None
    return secret


def validate_username(username: str) -> str:
    name = username.strip()
    if not (1 <= len(name) <= 64) or not all(ch.isalnum() or ch in "._-" for ch in name):
        raise Invalid.field("username", "use 1-64 letters, digits, '.', '_' or '-'")
    return name


def create_user(session: Session, *, actor: str, username: str, role: str, password: str | None = None) -> NewAccount:
    """A new account with a fresh TOTP secret; generates a one-time password unless one is given."""
    name = validate_username(username)
    if role not in Role.__members__:
        raise Invalid.field("role", f"role must be one of: {', '.join(Role)}")
    if password is not None and len(password) < 12:
        raise Invalid.field("password", "password must be at least 12 characters")
    if session.scalar(select(User.id).where(User.username == name)) is not None:
        raise Conflict(f"a user named {name!r} already exists")
    generated = password is None
    password = password or passwords.new_password()
    user = User(
        id=crypto.new_subject_id(),
        username=name,
        role=role,
        password_hash=passwords.hash_password(password),
        totp_secret_ct=b"",
        totp_enrolled=False,
        totp_last_step=0,
        failed_logins=0,
        active=True,
        must_change_password=generated,
        credentials_changed_at=now(),
        created_on=date.today(),
    )
    secret = passwords.new_totp_secret()
    user.totp_secret_ct = _seal_totp(session, user, secret)
    session.add(user)
    session.flush()
    audit.record(session, actor=actor, action="user.create", target=name, detail={"role": role})
    return NewAccount(user=user, password=password, otpauth_uri=passwords.totp_uri(secret, name))


def get_user(session: Session, *, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound("no such user")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def authenticate(session: Session, *, username: str, password: str, otp: str) -> User:
    """The user if name, password and a fresh TOTP code all match and the account is not locked."""
    settings = crypto.settings_of(session)
    user = session.scalar(select(User).where(User.username == username.strip()))
    password_ok = passwords.verify_password(user.password_hash if user else None, password)
    if user is None or not user.active:
        raise SignInFailed(SIGN_IN_FAILED)
    moment = now()
    if user.locked_until is not None and _aware(user.locked_until) > moment:
        audit.record(session, actor=user.username, action="auth.refused_locked", target=user.username)
        raise SignInFailed(SIGN_IN_FAILED)
    step = passwords.match_totp(_open_totp(session, user), otp, last_step=user.totp_last_step) if password_ok else None
    if step is None:
        user.failed_logins += 1
        detail: dict[str, object] = {"failures": user.failed_logins}
        if user.failed_logins >= settings.lockout_threshold:
            user.locked_until = moment + timedelta(minutes=settings.lockout_minutes)
            user.failed_logins = 0
            detail["locked_minutes"] = settings.lockout_minutes
        audit.record(session, actor=user.username, action="auth.failed", target=user.username, detail=detail)
        raise SignInFailed(SIGN_IN_FAILED)
    user.totp_last_step = step
    user.failed_logins = 0
    user.locked_until = None
    return user


def issue_token(session: Session, *, user: User) -> tuple[str, int]:
    """A new bearer token (returned once, stored hashed) and its lifetime in seconds."""
    ttl = crypto.settings_of(session).token_ttl_minutes * 60
    token = secrets.token_urlsafe(32)
    moment = now()
    session.add(
        ApiToken(
            user_id=user.id,
            token_hash=token_hash(token),
            created_at=moment,
            expires_at=moment + timedelta(seconds=ttl),
        )
    )
    audit.record(session, actor=user.username, action="auth.token", target=user.username)
    return token, ttl


def user_for_token(session: Session, *, token: str) -> User:
    """The owner of a live token; expired, unknown or pre-reset tokens are refused alike."""
    # One round trip: the token and its owner together (every API request starts here).
    row = session.execute(
        select(ApiToken.created_at, ApiToken.expires_at, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == token_hash(token))
    ).first()
    if row is None:
        raise NotAuthenticated("invalid or expired token")
    created_at, expires_at, user = row
    if _aware(expires_at) <= now():
        raise NotAuthenticated("invalid or expired token")
    if not user.active or _aware(created_at) < _aware(user.credentials_changed_at):
        raise NotAuthenticated("invalid or expired token")
    return user


def require_role(user: User, *roles: Role) -> None:
    if user.role not in roles:
        raise Forbidden()


def set_password(session: Session, *, actor: str, user: User, password: str) -> None:
    """Change a password; every token and session of the user ends."""
    if len(password) < 12:
        raise Invalid.field("password", "password must be at least 12 characters")
    user.password_hash = passwords.hash_password(password)
    user.must_change_password = False
    _end_credentials(session, user)
    audit.record(session, actor=actor, action="user.password", target=user.username)


def reset_totp(session: Session, *, actor: str, user: User) -> str:
    """A new TOTP secret (returned as an otpauth URI); the user enrols again at next sign-in."""
    secret = passwords.new_totp_secret()
    user.totp_secret_ct = _seal_totp(session, user, secret)
    user.totp_enrolled = False
    user.totp_last_step = 0
    _end_credentials(session, user)
    audit.record(session, actor=actor, action="user.totp_reset", target=user.username)
    return passwords.totp_uri(secret, user.username)


def totp_secret_for_enrolment(session: Session, *, user: User) -> str:
    """The TOTP secret, only while the account has not finished enrolling."""
    if user.totp_enrolled:
        raise Forbidden("two-factor enrolment is already complete")
    return _open_totp(session, user)


def deactivate(session: Session, *, actor: str, user: User) -> None:
    user.active = False
    _end_credentials(session, user)
    audit.record(session, actor=actor, action="user.deactivate", target=user.username)


def _end_credentials(session: Session, user: User) -> None:
    user.credentials_changed_at = now()
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
