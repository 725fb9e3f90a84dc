"""Partners, consents, referrals made and referrals received.

A referral row is the *fact* of a referral — partner, code, field names, consent, dates, the key it was
encrypted to — never its content: the package is built from the case when it is downloaded. A consent's
terms are sealed under its case's data key, so shredding the case makes them unreadable too.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import Date, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, new_id


class Partner(Base):
    """An organisation referrals go to (its age recipient) and come from (its verify key)."""

    __tablename__ = "partner"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    age_recipient: Mapped[str] = mapped_column(String(128))
    verify_key: Mapped[str] = mapped_column(String(64), index=True)
    # Where packages are delivered directly when the partner runs Helpline with its inbox on.
    inbox_url: Mapped[str | None] = mapped_column(String(256))
    added_on: Mapped[date] = mapped_column(Date)
    # Removal keeps the row: past referrals still name the partner they went to.
    removed_on: Mapped[date | None] = mapped_column(Date)


class Consent(Base):
    """The person's consent to share kinds of data with one partner; terms sealed with the case."""

    __tablename__ = "referral_consent"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("evacuation_case.id", ondelete="CASCADE"), index=True)
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partner.id"))
    # JSON {"given_on", "how", "fields"} sealed under the case's key (table referral_consent, column terms).
    terms_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    recorded_on: Mapped[date] = mapped_column(Date)
    recorded_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    withdrawn_on: Mapped[date | None] = mapped_column(Date)


class Referral(Base):
    """A referral made: who to, under which code, which field names, on whose consent, its status."""

    __tablename__ = "referral"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("evacuation_case.id", ondelete="CASCADE"), index=True)
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partner.id"), index=True)
    consent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referral_consent.id"))
    # The partner's keys when it was made: a later key change does not rewrite history.
    recipient: Mapped[str] = mapped_column(String(128))
    partner_verify_key: Mapped[str] = mapped_column(String(64))
    fields: Mapped[str] = mapped_column(String(256))  # comma-separated field names, never values
    status: Mapped[str] = mapped_column(String(16), index=True)
    sent_on: Mapped[date] = mapped_column(Date, index=True)
    status_on: Mapped[date] = mapped_column(Date)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))


class ReferralStep(Base):
    """One status of a referral, for the case's timeline: how it got there (made, answer, by hand)."""

    __tablename__ = "referral_step"
    # Invariant (migration 0015): one step per position; two steps decided on one read cannot both land.
    __table_args__ = (Index("uq_referral_step_referral_id_position", "referral_id", "position", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referral.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    on: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(16))  # "created", "answer", "by_hand", "consent"
    actor: Mapped[str] = mapped_column(String(64))


class ReceivedReferral(Base):
    """A partner's referral imported here: the link from their code to the case it became."""

    __tablename__ = "received_referral"
    __table_args__ = (UniqueConstraint("partner_id", "code", name="uq_received_referral_partner_code"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(16))
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partner.id"))
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("evacuation_case.id", ondelete="SET NULL"))
    # SHA-256 of the package as received: the same bytes are refused again even under a new code.
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    imported_on: Mapped[date] = mapped_column(Date)
    imported_by: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    fields: Mapped[str] = mapped_column(Text)


class InboxPackage(Base):
    """A package a partner delivered directly, kept as it came (age-encrypted) until a coordinator imports it."""

    __tablename__ = "referral_inbox"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partner.id"), index=True)
    # Emptied once imported: the case it became is sealed under this installation's own keys.
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    received_on: Mapped[date] = mapped_column(Date, index=True)
    imported_on: Mapped[date | None] = mapped_column(Date)
