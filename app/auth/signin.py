"""Sign-in: one path, the same work and the same answer for every name, known or not.

What a stranger can do to an account here, and why it cannot lock anyone out:

- **Wrong passwords slow, never lock.** They are counted per typed name — a keyed digest of it, so an
  unknown name has a counter just like a real one — and the next attempt at that name waits
  ``sign_in_delay_ms`` doubling per failure, capped at ``sign_in_delay_cap_ms``. The wait is served
  after the transaction ends (``Refused.delay`` / ``Admitted.delay``), holding no lock and no
  thread, and it applies to the right password too, so it tells nothing.
- **Wrong codes after a correct password lock.** Only someone who holds the password can make them;
  ``lockout_threshold`` of them lock the account for ``lockout_minutes`` (or until an admin unlocks).
- Both kinds of count are forgotten after ``failure_decay_minutes`` without a failure.
- The counters move by one atomic ``UPDATE … RETURNING`` (or upsert) and the lock is decided on the
  returned value, so failures sent at once from many workers are all counted.
- A code is spent once: a ``totp_spent`` row per (user, step), inserted in the transaction that
  issues the token or session; a second use of the step meets the primary key and is refused.

Every attempt does the same work: one user look-up, one throttle read, two argon2 verifications
(password and duress password, against a dummy hash when absent), one TOTP comparison (against a
dummy secret when the name is unknown or the password wrong) and, on failure, one counter update and
one sweep of decayed throttle rows.
No IP address is stored for any of it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth import passwords
from app.auth.models import SignInThrottle, TotpSpent, User
from app.config import Settings
from app.crypto import service as crypto
from app.errors import Invalid, SignInFailed

# One message for every failed sign-in, so nobody learns whether a name exists or is locked.
SIGN_IN_FAILED = "sign-in failed: wrong name, password or code, or the account is locked for a while"
# A duress sign-in locks the real account until an admin unlocks it: "until" the end of time.
HELD = datetime(9999, 12, 31, tzinfo=UTC)
# Compared against when there is no secret to open, so every path computes one TOTP comparison.
_DUMMY_TOTP = passwords.new_totp_secret()


class Refused(SignInFailed):
    """A failed sign-in; its counters are committed, and the answer waits ``delay`` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(SIGN_IN_FAILED)
        self.delay = delay


class NotConfirmed(Invalid):
    """The current password or code given with a credential change was wrong; the failure is kept."""

    keep_changes = True

    def __init__(self) -> None:
        super().__init__([{"loc": ["body", "current"], "msg": CONFIRM_FAILED, "type": "value_error"}])


CONFIRM_FAILED = "the current password or the code is wrong"


@dataclass(frozen=True)
class Admitted:
    user: User
    delay: float
    duress: bool


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def name_digest(session: Session, name: str) -> bytes:
    """A keyed digest of a typed name: the throttle table never holds names people typed."""
    _, _, key = crypto.active_index_key(session, column="sign_in_name")
    return hmac.new(key, name.casefold().encode("utf-8"), hashlib.sha256).digest()


def delay_for(settings: Settings, failures: int) -> float:
    """Seconds to wait before answering a name with ``failures`` recent wrong passwords."""
    if failures <= 0:
        return 0.0
    return min(settings.sign_in_delay_cap_ms, settings.sign_in_delay_ms * 2 ** min(failures - 1, 20)) / 1000


def is_locked(user: User, moment: datetime | None = None) -> bool:
    return user.locked_until is not None and _aware(user.locked_until) > (moment or _now())


def authenticate(session: Session, *, username: str, password: str, otp: str) -> Admitted:
    """The account if name, password (or duress password) and an unspent code match; Refused otherwise."""
    settings = crypto.settings_of(session)
    moment = _now()
    name = username.strip()
    # populate_existing: the counters are moved by UPDATE statements, never through this object.
    user = session.scalar(select(User).where(User.username == name).execution_options(populate_existing=True))
    digest = name_digest(session, name)
    recent = _recent_password_failures(session, digest, settings, moment)
    delay = delay_for(settings, recent)

    real_ok, duress_ok = passwords.verify_pair(
        user.password_hash if user else None, user.duress_hash if user else None, password
    )
    usable = user is not None and user.active
    # A duress sign-in must work while the real account is held: the person watching expects it to.
    if usable and duress_ok and not real_ok:
        admitted = _with_code(session, user, otp, digest, settings, moment, delay, duress=True)  # type: ignore[arg-type]
        if admitted is not None:
            return admitted
        raise Refused(delay)
    if usable and real_ok and not is_locked(user, moment):  # type: ignore[arg-type]
        admitted = _with_code(session, user, otp, digest, settings, moment, delay, duress=False)  # type: ignore[arg-type]
        if admitted is not None:
            return admitted
        raise Refused(delay)
    # Unknown, inactive, locked, or the wrong password: the same comparison, one counter, one answer.
    passwords.match_totp(_DUMMY_TOTP, otp, last_step=0)
    _count_password_failure(session, digest, settings, moment)
    raise Refused(delay)


def _with_code(
    session: Session,
    user: User,
    otp: str,
    digest: bytes,
    settings: Settings,
    moment: datetime,
    delay: float,
    *,
    duress: bool,
) -> Admitted | None:
    # Any step in the window first: a genuine code already used is a replay, not a wrong code.
    step = passwords.match_totp(_open_totp(session, user), otp, last_step=0)
    if step is None:
        _count_code_failure(session, user, settings, moment)
        return None
    if step <= user.totp_last_step or not _spend(session, user, step):
        # The code is genuine but already used (a double submit, or a watcher replaying it): refused,
        # not counted, so a double click never locks its owner out.
        audit.record(session, actor=user.username, action="auth.code_replayed", target=user.username)
        return None
    user.totp_last_step = max(user.totp_last_step, step)
    if user.failed_logins or user.last_failure_at is not None:
        session.execute(
            update(User)
            .where(User.id == user.id)
            .values(failed_logins=0, last_failure_at=None)
            .execution_options(synchronize_session=False)
        )
    session.execute(delete(SignInThrottle).where(SignInThrottle.name_digest == digest))
    if not user.totp_enrolled:
        # The code came from the otpauth URI handed over when the account was made: enrolment is proven.
        user.totp_enrolled = True
        audit.record(session, actor=user.username, action="user.totp_enrolled", target=user.username)
    return Admitted(user=user, delay=delay, duress=duress)


def confirm(session: Session, *, user: User, password: str, otp: str) -> bool:
    """Re-prove a signed-in person (password and an unspent code) before a change to their credentials.

    A wrong code counts towards the lock like one at sign-in; the code is spent.
    """
    settings = crypto.settings_of(session)
    real_ok = passwords.verify_password(user.password_hash, password)
    if not real_ok:
        return False
    step = passwords.match_totp(_open_totp(session, user), otp, last_step=user.totp_last_step)
    if step is None:
        _count_code_failure(session, user, settings, _now())
        return False
    if not _spend(session, user, step):
        return False
    user.totp_last_step = max(user.totp_last_step, step)
    return True


def _open_totp(session: Session, user: User) -> str:
    secret = crypto.open_field(
        session, user.totp_secret_ct, table="user_account", column="totp_secret", row_id=user.id, subject_id=user.id
    )
    assert secret is not None
    return secret


def _spend(session: Session, user: User, step: int) -> bool:
    """Insert the (user, step) row; False if another sign-in already spent it."""
    try:
        with session.begin_nested():
            session.add(TotpSpent(user_id=user.id, step=step))
            session.flush()
    except IntegrityError:
        return False
    # Steps this old can no longer be presented (one step of drift): their rows have done their job.
    session.execute(delete(TotpSpent).where(TotpSpent.user_id == user.id, TotpSpent.step < step - 4))
    return True


def _recent_password_failures(session: Session, digest: bytes, settings: Settings, moment: datetime) -> int:
    row = session.execute(
        select(SignInThrottle.failures, SignInThrottle.last_failure_at).where(SignInThrottle.name_digest == digest)
    ).first()
    if row is None or _aware(row[1]) < moment - timedelta(minutes=settings.failure_decay_minutes):
        return 0
    return int(row[0])


def _count_password_failure(session: Session, digest: bytes, settings: Settings, moment: datetime) -> None:
    cutoff = moment - timedelta(minutes=settings.failure_decay_minutes)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    table = SignInThrottle.__table__
    stmt = dialect.insert(table).values(name_digest=digest, failures=1, last_failure_at=moment)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.name_digest],
        set_={
            "failures": case((table.c.last_failure_at < cutoff, 1), else_=table.c.failures + 1),
            "last_failure_at": moment,
        },
    )
    session.execute(stmt)
    # Names tried once and never again (a spray of made-up names) are forgotten once they have decayed.
    session.execute(delete(SignInThrottle).where(SignInThrottle.last_failure_at < cutoff))


def _count_code_failure(session: Session, user: User, settings: Settings, moment: datetime) -> None:
    """One more wrong code after a correct password; the lock is decided on the count the database returns."""
    cutoff = moment - timedelta(minutes=settings.failure_decay_minutes)
    failures = session.execute(
        update(User)
        .where(User.id == user.id)
        .values(
            failed_logins=case(
                (or_(User.last_failure_at.is_(None), User.last_failure_at < cutoff), 1),
                else_=User.failed_logins + 1,
            ),
            last_failure_at=moment,
        )
        .returning(User.failed_logins)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    detail: dict[str, object] = {"failures": failures}
    if failures >= settings.lockout_threshold:
        until = moment + timedelta(minutes=settings.lockout_minutes)
        # Never shortens a longer hold (a duress lock waits for an admin).
        session.execute(
            update(User)
            .where(User.id == user.id, or_(User.locked_until.is_(None), User.locked_until < until))
            .values(locked_until=until)
            .execution_options(synchronize_session=False)
        )
        detail["locked_minutes"] = settings.lockout_minutes
    audit.record(session, actor=user.username, action="auth.failed", target=user.username, detail=detail)
