"""Every table, imported in one place for Alembic and the test schema checks."""

from app.audit.models import AuditEntry
from app.auth.models import ApiToken, User, WebSession
from app.cases.models import Case, CaseTransition
from app.contacts.models import Contact, FlaggedHandle
from app.crypto.models import BlindIndexEntry, DataKey, IndexKey
from app.db import Base
from app.lifecycle.models import KeyRotation
from app.stats.counters import PeriodCount
from app.stats.release import DpRelease

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "BlindIndexEntry",
    "Case",
    "CaseTransition",
    "Contact",
    "DataKey",
    "DpRelease",
    "FlaggedHandle",
    "IndexKey",
    "KeyRotation",
    "PeriodCount",
    "User",
    "WebSession",
]
