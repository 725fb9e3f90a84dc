"""Every table, imported in one place for Alembic and the test schema checks."""

import app.audit.seals  # noqa: F401  (the seal hooks must be on before any account or case is touched)
from app.attention.models import AttentionItem
from app.audit.models import AuditEntry
from app.auth.models import ApiToken, User, WebSession
from app.cases.models import Case, CaseTransition
from app.contacts.models import Contact, FlaggedHandle
from app.crypto.models import BlindIndexEntry, DataKey, IndexKey
from app.db import Base
from app.lifecycle.models import KeyRotation
from app.notes.models import FieldCorrection, RecordNote
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
    "Contact",
    "DataKey",
    "FieldCorrection",
    "FlaggedHandle",
    "HeldForm",
    "IndexKey",
    "KeyRotation",
    "PeriodCount",
    "RecordNote",
    "StatsBudget",
    "StatsRelease",
    "User",
    "WebSession",
]
