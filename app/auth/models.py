"""Staff accounts, API tokens and web sessions. Secrets are stored hashed or sealed."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, DateTime, ForeignKey, Integer, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, new_id


class Role(enum.StrEnum):
    caseworker = "caseworker"
    coordinator = "coordinator"
    analyst = "analyst"
    admin = "admin"


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    # The TOTP secret is sealed under the user's own data key: a seized database cannot mint codes.
    totp_secret_ct: Mapped[bytes] = mapped_column(LargeBinary)
    totp_enrolled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    # Wrong codes after a correct password (the only failures that lock); they decay after a quiet period.
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A second password (argon2, like the first) that opens an empty caseload and raises the alarm.
    duress_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    credentials_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_on: Mapped[date] = mapped_column(Date)
    # MAC over the security columns from the key provider; computed and checked by app.audit.seals.
    seal: Mapped[str | None] = mapped_column(String(80))


class ApiToken(Base):
    """A bearer token, stored as SHA-256 of the token so a database copy cannot be replayed."""

    __tablename__ = "api_token"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duress: Mapped[bool] = mapped_column(Boolean, default=False)


class WebSession(Base):
    """A browser session kept server-side; the cookie holds only a random id whose hash is stored."""

    __tablename__ = "web_session"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    # "full" once password and TOTP are done; "password" while a one-time password must be replaced.
    stage: Mapped[str] = mapped_column(String(16), default="full")
    csrf_secret: Mapped[bytes] = mapped_column(LargeBinary(32))
    locale: Mapped[str] = mapped_column(String(8), default="en")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duress: Mapped[bool] = mapped_column(Boolean, default=False)


class SignInThrottle(Base):
    """Wrong passwords per typed name (a keyed digest, known names or not): they slow, never lock."""

    __tablename__ = "sign_in_throttle"

    name_digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class TotpSpent(Base):
    """A TOTP time step used by a user; the primary key makes each code good for one sign-in."""

    __tablename__ = "totp_spent"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
