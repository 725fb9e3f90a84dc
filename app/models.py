"""Every table, imported in one place for Alembic and the test schema checks."""

from app.audit.models import AuditEntry
from app.auth.models import ApiToken, User, WebSession
from app.cases.models import Case, CaseTransition
from app.contacts.models import Contact, FlaggedHandle
from app.crypto.models import BlindIndexEntry, DataKey, IndexKey
from app.db import Base

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "BlindIndexEntry",
    "Case",
    "CaseTransition",
    "Contact",
    "DataKey",
    "FlaggedHandle",
    "IndexKey",
    "User",
    "WebSession",
]
