"""Need-to-know, written down once. Services ask here; list queries put these filters in their SQL.

| role        | contacts                                             | cases                                      |
| ----------- | ---------------------------------------------------- | ------------------------------------------ |
| caseworker  | list, read decrypted: those they recorded, and the   | list, read decrypted, transition: those    |
|             | contacts of cases assigned to them; others are 404   | assigned to them; others are 404. Verify:  |
|             | Set outcome: those they recorded (else 403 or 404)   | assigned and not the opener (opener: 403)  |
| coordinator | 403 (manages the known-bad list instead)             | list all; redacted view (no decrypted      |
|             |                                                      | field, ever); assign, transition, verify   |
| admin       | list and summary without any decrypted field         | 403                                        |
| analyst     | 403                                                  | 403                                        |

Every decrypted read is audited (``contact.read``, ``case.read``) and counted: more than
``decrypt_alarm_per_hour`` in an hour by one user writes ``alarm.bulk_read`` and answers 429.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, exists, false, func, select, true
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.models import AuditEntry
from app.auth.models import Role, User
from app.cases.models import Case
from app.contacts.models import Contact
from app.crypto import service as crypto
from app.errors import Forbidden, TooManyRequests

DECRYPTED_READS = ("contact.read", "case.read")

CONTACT_ROLES = (Role.caseworker, Role.admin)
CASE_ROLES = (Role.caseworker, Role.coordinator)


def require_contact_access(user: User) -> None:
    """403 for roles that never touch contacts."""
    if user.role not in CONTACT_ROLES:
        raise Forbidden()


def require_case_access(user: User) -> None:
    """403 for roles that never touch cases."""
    if user.role not in CASE_ROLES:
        raise Forbidden()


def contacts_visible_to(user: User) -> ColumnElement[bool]:
    """The SQL condition for contacts ``user`` may see (in any form)."""
    if user.role == Role.admin:
        return true()
    if user.role == Role.caseworker:
        assigned = exists().where(Case.contact_id == Contact.id, Case.assigned_to_id == user.id)
        return (Contact.recorded_by_id == user.id) | assigned
    return false()


def may_decrypt_contact(user: User) -> bool:
    """Only caseworkers ever open a contact's sealed fields (of contacts visible to them)."""
    return user.role == Role.caseworker


def cases_visible_to(user: User) -> ColumnElement[bool]:
    """The SQL condition for cases ``user`` may see (coordinators: redacted only)."""
    if user.role == Role.coordinator:
        return true()
    if user.role == Role.caseworker:
        return Case.assigned_to_id == user.id
    return false()


def can_see_case(user: User, case: Case) -> bool:
    """The same rule as ``cases_visible_to``, for one loaded case (no query)."""
    if user.role == Role.coordinator:
        return True
    return user.role == Role.caseworker and case.assigned_to_id == user.id


def may_decrypt_case(user: User, case: Case) -> bool:
    """Only the assigned caseworker opens a case's sealed fields."""
    return user.role == Role.caseworker and case.assigned_to_id == user.id


def may_transition(user: User, case: Case) -> bool:
    return user.role == Role.coordinator or (user.role == Role.caseworker and case.assigned_to_id == user.id)


def may_verify(user: User, case: Case) -> bool:
    """Two-person rule: a coordinator, or an assigned caseworker who did not open the case."""
    if user.role == Role.coordinator:
        return True
    return user.role == Role.caseworker and case.assigned_to_id == user.id and case.opened_by_id != user.id


def record_decrypted_read(session: Session, *, user: User, action: str, target: str) -> None:
    """Audit a decrypted read, refusing (429, with an alarm entry kept) past the hourly limit."""
    limit = crypto.settings_of(session).decrypt_alarm_per_hour
    since = datetime.now(UTC) - timedelta(hours=1)
    # One query on the indexed action column; reads are few per user, so the scan stays small.
    count = session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action.in_(DECRYPTED_READS), AuditEntry.actor == user.username, AuditEntry.at >= since)
    )
    if (count or 0) >= limit:
        audit.record(
            session, actor=user.username, action="alarm.bulk_read", target=target, detail={"limit_per_hour": limit}
        )
        raise TooManyRequests("too many decrypted reads in the last hour; this has been recorded and reported")
    audit.record(session, actor=user.username, action=action, target=target)
