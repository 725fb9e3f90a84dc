"""Every table, imported in one place for Alembic and the test schema checks."""

import app.audit.seals  # noqa: F401  (the seal hooks must be on before any account or case is touched)
from app.attention.models import AttentionItem
from app.audit.models import AuditEntry
from app.auth.models import ApiToken, User, WebSession
from app.cases.models import Case, CaseTransition
from app.contacts.models import Contact, FlaggedHandle
from app.crypto.models import BlindIndexEntry, DataKey, IndexKey
from app.db import Base
from app.idempotency.models import FormToken, IdempotencyKey
from app.lifecycle.models import KeyRotation
from app.notes.models import FieldCorrection, RecordNote
from app.referrals.models import Consent, InboxPackage, Partner, ReceivedReferral, Referral, ReferralStep
from app.stats.counters import PeriodCount
from app.stats.models import StatsBudget, StatsRelease
from app.web.models import HeldForm

__all__ = [
    "ApiToken",
    "AttentionItem",
    "AuditEntry",
    "Base",
    "BlindIndexEntry",
    "Case",
    "CaseTransition",
    "Consent",
    "Contact",
    "DataKey",
    "FieldCorrection",
    "FlaggedHandle",
    "FormToken",
    "HeldForm",
    "IdempotencyKey",
    "InboxPackage",
    "IndexKey",
    "KeyRotation",
    "Partner",
    "PeriodCount",
    "RecordNote",
    "ReceivedReferral",
    "Referral",
    "ReferralStep",
    "StatsBudget",
    "StatsRelease",
    "User",
    "WebSession",
]
