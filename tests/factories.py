"""Small factories for tests: users with known credentials and tokens, through the real services."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyotp
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.auth.models import User

_seq = itertools.count(1)
PASSWORD = "amber lantern folds quietly"


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

    def contact(self, user: User, **fields: Any) -> Any:
        """A contact recorded by caseworker ``user`` through the service (ContactSummary); fields override defaults."""
        from app.contacts import service as contact_service
        from app.contacts.schemas import ContactIn

        values: dict[str, Any] = {
            "received_on": date.today(),
            "channel": "phone",
            "region": "chechnya",
            "language": "ru",
            "risk": "high",
            "needs": ["evacuation"],
        }
        values.update(fields)
        return contact_service.record_contact(session=self.session, actor=user, data=ContactIn(**values))

    def case(
        self,
        user: User,
        *,
        contact_id: uuid.UUID | None = None,
        status: str = "new",
        opened_on: date | None = None,
        on: date | None = None,
        verifier: User | None = None,
        region: str = "chechnya",
        **fields: Any,
    ) -> Any:
        """A case opened by caseworker ``user`` (from a new contact unless ``contact_id``), moved along a legal
        path to ``status``: opened on ``opened_on`` (default today), each later step on ``on`` (default
        ``opened_on``). A coordinator (or ``verifier``) verifies when the path needs it. Returns CaseSummary."""
        from app.cases import service as case_service
        from app.cases import workflow
        from app.cases.schemas import CaseFields

        opened = opened_on or date.today()
        if contact_id is None:
            contact_id = self.contact(user, received_on=opened, region=region).id
        summary = case_service.open_case(
            session=self.session, actor=user, contact_id=contact_id, data=CaseFields(**fields), on=opened
        )
        step_on = on or opened
        for step in workflow.path_to(status):
            if step in workflow.NEEDS_VERIFICATION and not summary.verified:
                summary = case_service.verify(
                    session=self.session, actor=verifier or self.user("coordinator"), case_id=summary.id, on=opened
                )
            summary = case_service.transition(
                session=self.session, actor=user, case_id=summary.id, to=step.value, on=step_on
            )
        return summary
