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

Every decrypted read is audited (``contact.read``, ``case.read``, and ``contact.lookup`` for each
candidate a duplicate check or a search decrypts) and counted: more than ``decrypt_alarm_per_hour`` in an
hour by one user writes ``alarm.bulk_read`` and answers 429. Recording more than ``intake_per_hour``
contacts in an hour writes ``alarm.intake_rate`` and answers 429: probing handles by recording contacts
is bulk reading too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, bindparam, exists, false, func, select, true
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.models import AuditEntry
from app.auth.models import Role, User
from app.cases.models import Case
from app.contacts.models import Contact
from app.crypto import service as crypto
from app.errors import Forbidden, TooManyRequests

DECRYPTED_READS = ("contact.read", "case.read", "contact.lookup")

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


class Alarmed(TooManyRequests):
    """A 429 with its alarm entry, so a caller that rolls back a savepoint can write the entry again."""

    def __init__(self, message: str, *, actor: str, action: str, target: str | None, detail: dict[str, int]) -> None:
        self.alarm = {"actor": actor, "action": action, "target": target, "detail": detail}
        super().__init__(message)


def keep_alarm(session: Session, exc: Alarmed) -> None:
    """Write the alarm of a refusal again after the savepoint it was written in was rolled back."""
    audit.record(session, **exc.alarm)  # type: ignore[arg-type]


def _recent(session: Session, *, user: User, actions: tuple[str, ...], cap: int) -> int:
    """How many of ``actions`` ``user`` did in the last hour, counted up to ``cap`` (all a limit needs).

    One index range (actor, action, at); stopping at the cap keeps the count to the limit's size however
    many entries the hour holds.
    """
    audit.append_pending(session)  # this transaction's own entries count too
    params = {"actor": user.username, "actions": list(actions), "since": datetime.now(UTC) - timedelta(hours=1)}
    count = session.connection().execute(_RECENT, {**params, "cap": cap}).scalar()
    return count or 0


# Built once, run through Core: every intake and every decrypted read asks it.
_RECENT = select(func.count()).select_from(
    select(AuditEntry.seq)
    .where(
        AuditEntry.actor == bindparam("actor"),
        AuditEntry.action.in_(bindparam("actions", expanding=True)),
        AuditEntry.at >= bindparam("since"),
    )
    .limit(bindparam("cap"))
    .subquery()
)


def _alarm(session: Session, *, user: User, action: str, target: str | None, limit: int, message: str) -> Alarmed:
    detail = {"limit_per_hour": limit}
    audit.record(session, actor=user.username, action=action, target=target, detail=detail)
    return Alarmed(message, actor=user.username, action=action, target=target, detail=detail)


def record_decrypted_read(session: Session, *, user: User, action: str, target: str) -> None:
    """Audit a decrypted read, refusing (429, with an alarm entry kept) past the hourly limit."""
    record_decrypted_reads(session, user=user, action=action, targets=[target])


def record_decrypted_reads(session: Session, *, user: User, action: str, targets: list[str]) -> None:
    """Audit several decrypted reads at once (one entry each), refusing all of them past the hourly limit."""
    if not targets:
        return
    limit = crypto.settings_of(session).decrypt_alarm_per_hour
    if _recent(session, user=user, actions=DECRYPTED_READS, cap=limit + 1) + len(targets) > limit:
        raise _alarm(
            session,
            user=user,
            action="alarm.bulk_read",
            target=targets[0],
            limit=limit,
            message="too many decrypted reads in the last hour; this has been recorded and reported",
        )
    for target in targets:
        audit.record(session, actor=user.username, action=action, target=target)


def check_intake_rate(session: Session, *, user: User) -> None:
    """Refuse (429, alarm kept) a caseworker's contact past ``intake_per_hour`` in the last hour."""
    limit = crypto.settings_of(session).intake_per_hour
    if _recent(session, user=user, actions=("contact.record",), cap=limit) >= limit:
        raise _alarm(
            session,
            user=user,
            action="alarm.intake_rate",
            target=None,
            limit=limit,
            message="too many contacts recorded in the last hour; this has been recorded and reported",
        )
