"""Accounts, sign-in with password and TOTP, lock-out, bearer tokens."""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth import duress, passwords, signin
from app.auth.models import ApiToken, Role, SignInThrottle, TotpSpent, User, WebSession
from app.crypto import service as crypto
from app.errors import Conflict, Forbidden, Invalid, NotAuthenticated, NotFound


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


USERNAME_CHARS = frozenset(string.ascii_letters + string.digits + ".-_")
USERNAME_RULE = "use 2-32 characters: Latin letters, digits, '.', '-' or '_' (not '.' or '..')"


def validate_username(username: str) -> str:
    """A new account's name: plain ASCII, so no look-alike (Cyrillic 'а', 'Á') can pose as another.

    Names made before this rule keep working; they are only refused for new accounts.
    """
    name = username.strip()
    if not (2 <= len(name) <= 32) or not set(name) <= USERNAME_CHARS or name in (".", ".."):
        raise Invalid.field("username", USERNAME_RULE)
    return name


def check_new_password(session: Session, *, password: str, username: str) -> None:
    """Refuse a password that is too short or on the shipped list of common and breached ones."""
    problem = passwords.weakness(
        password, username=username, min_length=crypto.settings_of(session).password_min_length
    )
    if problem is not None:
        raise Invalid.field("password", problem)


def create_user(session: Session, *, actor: str, username: str, role: str, password: str | None = None) -> NewAccount:
    """A new account with a fresh TOTP secret; generates a one-time password unless one is given."""
    name = validate_username(username)
    if role not in Role.__members__:
        raise Invalid.field("role", "role must be one of: {roles}", roles=", ".join(Role))
    if password is not None:
        check_new_password(session, password=password, username=name)
    # Unique after case-folding (ASCII only, so lower() is the case-fold on both databases).
    if session.scalar(select(User.id).where(func.lower(User.username) == name.lower())) is not None:
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
    """Staff accounts (the duress shadow accounts, which nobody signs in to, left out)."""
    users = session.scalars(select(User).order_by(User.username))
    return [u for u in users if not duress.is_shadow(u.username)]


def issue_token(session: Session, *, user: User, duress: bool = False) -> tuple[str, int]:
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
            duress=duress,
        )
    )
    audit.record(session, actor=user.username, action="auth.token", target=user.username)
    return token, ttl


_TOKEN_OWNER = (
    select(ApiToken.created_at, ApiToken.expires_at, ApiToken.duress, User)
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)


def user_for_token(session: Session, *, token: str) -> User:
    """The owner of a live token; expired, unknown or pre-reset tokens are refused alike."""
    # One round trip: the token and its owner together (every API request starts here), from a
    # statement built once. The owner is loaded as an object, so its seal is checked (app.audit.seals).
    row = session.execute(_TOKEN_OWNER, {"token_hash": token_hash(token)}).first()
    if row is None:
        raise NotAuthenticated("invalid or expired token")
    created_at, expires_at, under_duress, user = row
    if _aware(expires_at) <= now():
        raise NotAuthenticated("invalid or expired token")
    if not user.active or _aware(created_at) < _aware(user.credentials_changed_at):
        raise NotAuthenticated("invalid or expired token")
    if user.must_change_password and not under_duress:
        raise NotAuthenticated("invalid or expired token")
    duress.mark(session, under_duress)
    if under_duress:
        return duress.stand_in(user)
    return user


def require_role(user: User, *roles: Role) -> None:
    if user.role not in roles:
        raise Forbidden()


def set_password(session: Session, *, actor: str, user: User, password: str) -> None:
    """Change a password; every token and session of the user ends.

    The new one must not be the one the account has: at a first sign-in that is the one-time password the
    admin handed over, which someone else has seen. Checked only here, after the person proved who they are
    (a one-time password's sign-in, or the current password and a code): before that it would tell whoever
    holds an open page whether a guess is the current password.
    """
    check_new_password(session, password=password, username=user.username)
    if user.password_hash is not None and passwords.verify_password(user.password_hash, password):
        raise Invalid.field("password", "choose a new password, not the one you have now")
    if user.duress_hash is not None and passwords.verify_password(user.duress_hash, password):
        raise Invalid.field("password", "the password must differ from the duress password")
    user.password_hash = passwords.hash_password(password)
    user.must_change_password = False
    end_credentials(session, user)
    audit.record(session, actor=actor, action="user.password", target=user.username)


def reset_totp(session: Session, *, actor: str, user: User) -> str:
    """A new TOTP secret (returned as an otpauth URI, once); sign-in needs a code from it from then on."""
    secret = passwords.new_totp_secret()
    user.totp_secret_ct = _seal_totp(session, user, secret)
    user.totp_enrolled = False
    user.totp_last_step = 0
    # Steps spent under the old secret would refuse the new secret's codes in those steps as replays.
    session.execute(delete(TotpSpent).where(TotpSpent.user_id == user.id))
    end_credentials(session, user)
    audit.record(session, actor=actor, action="user.totp_reset", target=user.username)
    return passwords.totp_uri(secret, user.username)


def reset_password(session: Session, *, actor: str, user: User) -> str:
    """A new one-time password (returned once); its holder must choose their own at next sign-in."""
    password = passwords.new_password()
    user.password_hash = passwords.hash_password(password)
    user.must_change_password = True
    end_credentials(session, user)
    audit.record(session, actor=actor, action="user.password_reset", target=user.username)
    return password


def unlock(session: Session, *, actor: str, user: User) -> None:
    """Lift a lock (wrong codes or a duress sign-in) and forget the account's recent failures."""
    user.failed_logins = 0
    user.last_failure_at = None
    user.locked_until = None
    session.execute(
        delete(SignInThrottle).where(SignInThrottle.name_digest == signin.name_digest(session, user.username))
    )
    audit.record(session, actor=actor, action="user.unlock", target=user.username)


def change_own_password(session: Session, *, user: User, current: str, otp: str, password: str, repeat: str) -> None:
    """The signed-in person's new password, proven by the current one and a fresh code."""
    if password != repeat:
        raise Invalid.field("repeat", "the two passwords differ")
    # Checked before the code is spent, so a refused choice does not cost the person a code.
    check_new_password(session, password=password, username=user.username)
    if not signin.confirm(session, user=user, password=current, otp=otp):
        raise signin.NotConfirmed()
    set_password(session, actor=user.username, user=user, password=password)


def set_duress(
    session: Session, *, actor: str, user: User, password: str, current: str | None = None, otp: str | None = None
) -> None:
    """Set (or, with an empty password, remove) the duress password; refused if it is the real one.

    From the account page ``current`` and ``otp`` prove it is the person; an admin's CLI passes neither.
    """
    if password:
        check_new_password(session, password=password, username=user.username)
    if current is not None and not signin.confirm(session, user=user, password=current, otp=otp or ""):
        raise signin.NotConfirmed()
    if not password:
        user.duress_hash = None
        audit.record(session, actor=actor, action="user.duress_removed", target=user.username)
        return
    if passwords.verify_password(user.password_hash, password):
        raise Invalid.field("duress", "the duress password must differ from the password")
    user.duress_hash = passwords.hash_password(password)
    audit.record(session, actor=actor, action="user.duress_set", target=user.username)


def end_sessions(session: Session, *, actor: str, user: User) -> None:
    """End every web session and API token of one person now (a lost phone or laptop)."""
    end_credentials(session, user)
    audit.record(session, actor=actor, action="sessions.end", target=user.username)


def end_all_sessions(session: Session, *, actor: str, keep: User | None = None, keep_role: str | None = None) -> int:
    """End every session and token at once (a seizure in progress), but ``keep``'s or ``keep_role``'s.

    Returns how many accounts were signed out.
    """
    ended = 0
    for user in session.scalars(select(User).order_by(User.username)):
        if (keep is not None and user.id == keep.id) or (keep_role is not None and user.role == keep_role):
            continue
        end_credentials(session, user)
        ended += 1
    audit.record(session, actor=actor, action="sessions.end_all", target="*", detail={"accounts": ended})
    return ended


def deactivate(session: Session, *, actor: str, user: User) -> None:
    user.active = False
    end_credentials(session, user)
    audit.record(session, actor=actor, action="user.deactivate", target=user.username)


def end_credentials(session: Session, user: User) -> None:
    user.credentials_changed_at = now()
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
