"""Small factories for tests: users with known credentials and tokens, through the real services."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pyotp
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.auth.models import User

_seq = itertools.count(1)
PASSWORD = "correct horse battery staple"


@dataclass
class Account:
    user: User
    password: str
    totp_secret: str

    @property
    def username(self) -> str:
        return self.user.username

    def totp(self) -> pyotp.TOTP:
        return pyotp.TOTP(self.totp_secret)


class Factory:
    def __init__(self, session: Session) -> None:
        self.session = session

    def account(self, role: str, username: str | None = None) -> Account:
        """A user of ``role`` with password PASSWORD; its TOTP secret is returned for sign-in tests."""
        name = username or f"{role}{next(_seq)}"
        new = auth_service.create_user(self.session, actor="test", username=name, role=role, password=PASSWORD)
        secret = pyotp.parse_uri(new.otpauth_uri).secret
        self.session.flush()
        return Account(user=new.user, password=PASSWORD, totp_secret=secret)

    def user(self, role: str, username: str | None = None) -> User:
        return self.account(role, username).user

    def token(self, user: User) -> str:
        token, _ = auth_service.issue_token(self.session, user=user)
        self.session.flush()
        return token

    def headers(self, user: User) -> dict[str, str]:
        """Bearer headers for ``user`` without going through TOTP (sign-in has its own tests)."""
        return {"Authorization": f"Bearer {self.token(user)}"}
