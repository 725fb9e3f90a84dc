"""Evacuation cases: opening, the status workflow, assignment, two-person verification, need-to-know reads."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.attention import service as attention
from app.attention.models import AttentionItem
from app.audit import service as audit
from app.auth.models import Role, User
from app.cases import permissions, workflow
from app.cases.models import Case, CaseTransition
from app.cases.schemas import CaseDetail, CaseFields, CasePage, CaseSummary, TransitionOut
from app.cases.workflow import CaseStatus
from app.contacts import service as contact_service
from app.contacts.models import Contact
from app.contacts.schemas import Outcome
from app.crypto import service as crypto
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.notes import service as notes_service
from app.notes.schemas import CaseCorrectionIn, NoteOut
from app.stats import counters

TABLE = "evacuation_case"
SEALED = ("full_name", "handle", "location", "family_situation", "notes")
INDEX_COLUMN = "case.handle"


# --- loading ---------------------------------------------------------------------------------


def get_case_for(*, session: Session, actor: User, case_id: uuid.UUID, for_update: bool = False) -> Case:
    """The case if ``actor`` may see it; 403 for roles without cases, 404 for the rest.

    ``for_update`` locks the row for the rest of the transaction (stage 1 of the lock order in
    ``app/db.py``): services that change a case load it so, before their first audit entry, and two
    changes of one case run one after the other, the second seeing the first.
    """
    permissions.require_case_access(actor)
    # By primary key, so a case already in the session costs no query (the workflow touches it often).
    case = session.get(Case, case_id, with_for_update=True if for_update else None)
    if case is None or not permissions.can_see_case(actor, case):
        raise NotFound()
    return case


def get_case_by_code(*, session: Session, code: str) -> Case:
    """A case by its record code, without permission checks (command line only)."""
    case = session.scalar(select(Case).where(Case.code == code.strip().upper()))
    if case is None:
        raise NotFound(f"no case {code}")
    return case


# --- workflow --------------------------------------------------------------------------------


def is_verified(case: Case) -> bool:
    """Whether someone other than the opener has verified the case."""
    return case.verified_by_id is not None and case.verified_by_id != case.opened_by_id


def allowed_transitions(case: Case) -> list[str]:
    """The statuses this case can move to now: the workflow table, less what still needs verification."""
    return [s for s in workflow.next_statuses(case.status) if is_verified(case) or s not in workflow.NEEDS_VERIFICATION]


def _check_day(session: Session, case: Case, on: date, *, field: str = "on") -> None:
    if on > crypto.settings_of(session).today():
        raise Invalid.field(field, "must not be in the future")
    if on < case.opened_on:
        raise Invalid.field(field, "must not be before the case was opened")
    if on < case.status_on:
        raise Invalid.field(field, "must not be before the case's last status change")


def _move(session: Session, *, actor: User, case: Case, to: str, on: date, note: str | None, position: int) -> None:
    """Write one step of the history and the dates it implies; the caller has checked it is allowed."""
    transition_id = crypto.new_subject_id()
    note_ct = None
    if note is not None:
        key = crypto.current_subject_key(session, subject_id=case.id)
        note_ct = crypto.seal_field(
            session, note, key=key, table="case_transition", column="note", row_id=transition_id
        )
    old = case.status if position > 0 else None
    if old is not None:
        # Compare-and-set on the status the move was checked against: a move decided on a stale
        # read changes nothing and answers 409 (the unique (case, position) is the schema's guard).
        moved = session.execute(
            update(Case)
            .where(Case.id == case.id, Case.status == old)
            .values(status=to)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict("the case moved meanwhile; reload it")
        set_committed_value(case, "status", to)
    session.add(
        CaseTransition(
            id=transition_id,
            case_id=case.id,
            position=position,
            from_status=old,
            to_status=to,
            on=on,
            actor_id=actor.id,
            note_ct=note_ct,
        )
    )
    workflow.stamp(case, to, on)
    counters.case_moved(session, case=case, from_status=old, to_status=to, on=on)


def open_case(
    *,
    session: Session,
    actor: User,
    contact_id: uuid.UUID,
    data: CaseFields | None = None,
    on: date | None = None,
) -> CaseSummary:
    """Open a case from a contact the caseworker can see; it starts ``new`` and assigned to them."""
    if actor.role != Role.caseworker:
        raise Forbidden()
    data = data or CaseFields()
    contact = contact_service.get_contact_for(session=session, actor=actor, contact_id=contact_id)
    # Stage 1 of the lock order: the contact this changes (its outcome) is locked before the audit
    # chain; two opens from one contact queue here, and the second sees the first's case below.
    session.execute(select(Contact.id).where(Contact.id == contact.id).with_for_update())
    if contact.shredded_on is not None:
        raise Conflict("this contact was shredded")
    if session.scalar(select(Case.id).where(Case.contact_id == contact.id)) is not None:
        raise Conflict("a case is already open from this contact")
    opened_on = on or crypto.settings_of(session).today()
    if opened_on > crypto.settings_of(session).today():
        raise Invalid.field("opened_on", "must not be in the future")
    if opened_on < contact.received_on:
        raise Invalid.field("opened_on", "must not be before the contact was received")
    case_id = crypto.new_subject_id()
    key = crypto.create_subject_key(session, subject_id=case_id)
    sealed = {
        f"{name}_ct": crypto.seal_field(session, getattr(data, name), key=key, table=TABLE, column=name, row_id=case_id)
        for name in SEALED
    }
    case = Case(
        id=case_id,
        contact_id=contact.id,
        status=CaseStatus.new.value,
        region=contact.region,
        opened_on=opened_on,
        opened_by_id=actor.id,
        assigned_to_id=actor.id,
        first_contact_on=contact.received_on,
        status_on=opened_on,
        **sealed,
    )
    contact_service.insert_with_code(session, case, prefix="C")
    crypto.add_index_entry(session, subject_id=case_id, column=INDEX_COLUMN, value=data.handle)
    audit.record(
        session,
        actor=actor.username,
        action="case.open",
        target=case.code,
        detail={"contact": contact.code, "on": opened_on.isoformat()},
    )
    counters.case_opened(session, case=case)
    _move(session, actor=actor, case=case, to=CaseStatus.new.value, on=opened_on, note=None, position=0)
    contact_service.change_outcome(session, actor=actor, contact=contact, outcome=Outcome.case_opened, on=opened_on)
    return _summary(case, assigned_to=actor.username)


def transition(
    *, session: Session, actor: User, case_id: uuid.UUID, to: str, on: date, note: str | None = None
) -> CaseSummary:
    """Move a case along the workflow table; 409 listing the allowed moves if this one is not."""
    case = get_case_for(session=session, actor=actor, case_id=case_id, for_update=True)
    if not permissions.may_transition(actor, case):
        raise Forbidden()
    target = CaseStatus(to).value
    _check_day(session, case, on)
    if not workflow.can_move(case.status, target):
        raise Conflict(
            {"message": "a case cannot move from {status} to {target}", "allowed": allowed_transitions(case)},
            status=case.status,
            target=target,
        )
    if target in workflow.NEEDS_VERIFICATION and not is_verified(case):
        raise Conflict(
            {
                "message": "moving to {target} needs a verification by someone other than the case's opener",
                "allowed": allowed_transitions(case),
            },
            target=target,
        )
    last = session.scalar(select(func.max(CaseTransition.position)).where(CaseTransition.case_id == case.id))
    old = case.status
    _move(session, actor=actor, case=case, to=target, on=on, note=note, position=(last or 0) + 1)
    audit.record(
        session,
        actor=actor.username,
        action="case.transition",
        target=case.code,
        detail={"from": old, "to": target, "on": on.isoformat()},
    )
    return _summary(case, assigned_to=_assignee_name(session, case, actor))


def assign(*, session: Session, actor: User, case_id: uuid.UUID, username: str) -> CaseSummary:
    """Hand a case to an active caseworker (coordinators only); 422 if the name is not one."""
    case = get_case_for(session=session, actor=actor, case_id=case_id, for_update=True)
    if actor.role != Role.coordinator:
        raise Forbidden()
    assignee = session.scalar(
        select(User).where(User.username == username, User.role == Role.caseworker.value, User.active.is_(True))
    )
    if assignee is None:
        raise Invalid.field("user", "must be the name of an active caseworker")
    case.assigned_to_id = assignee.id
    session.flush()
    audit.record(
        session, actor=actor.username, action="case.assign", target=case.code, detail={"to": assignee.username}
    )
    return _summary(case, assigned_to=assignee.username)


def verify(*, session: Session, actor: User, case_id: uuid.UUID, on: date | None = None) -> CaseSummary:
    """Record the second person's verification: a coordinator, or an assigned caseworker who did not open it."""
    case = get_case_for(session=session, actor=actor, case_id=case_id, for_update=True)
    if not permissions.may_verify(actor, case):
        raise Forbidden("the caseworker who opened a case cannot verify it; a second person must")
    if case.status in workflow.TERMINAL:
        raise Conflict("a {status} case cannot be verified", status=case.status)
    if is_verified(case):
        raise Conflict("this case is already verified")
    day = on or crypto.settings_of(session).today()
    if day > crypto.settings_of(session).today():
        raise Invalid.field("on", "must not be in the future")
    if day < case.opened_on:
        raise Invalid.field("on", "must not be before the case was opened")
    case.verified_by_id = actor.id
    case.verified_on = day
    attention.resolve_for_case(session, case_id=case.id, kind="verification_request", by=actor.username)
    session.flush()
    audit.record(session, actor=actor.username, action="case.verify", target=case.code, detail={"on": day.isoformat()})
    return _summary(case, assigned_to=_assignee_name(session, case, actor))


def request_verification(*, session: Session, actor: User, case_id: uuid.UUID) -> CaseSummary:
    """Ask for the second person's verification: the case joins the coordinators' queue (once)."""
    case = get_case_for(session=session, actor=actor, case_id=case_id)
    if not permissions.may_decrypt_case(actor, case):
        raise Forbidden("only the caseworker assigned to this case asks for its verification")
    if case.status in workflow.TERMINAL:
        raise Conflict("a {status} case cannot be verified", status=case.status)
    if is_verified(case):
        raise Conflict("this case is already verified")
    attention.raise_item(
        session, kind="verification_request", raised_by=actor.username, record_code=case.code, case_id=case.id
    )
    return _summary(case, assigned_to=actor.username)


# --- notes and corrections -----------------------------------------------------------------


def _for_amending(session: Session, actor: User, case_id: uuid.UUID) -> Case:
    case = get_case_for(session=session, actor=actor, case_id=case_id)
    if not permissions.may_decrypt_case(actor, case):
        raise Forbidden("only the caseworker assigned to this case can add to it")
    if case.shredded_on is not None:
        raise Conflict("this case was shredded")
    return case


def add_note(*, session: Session, actor: User, case_id: uuid.UUID, text: str) -> NoteOut:
    """Append a note to a case its assigned caseworker reads: sealed under the case's key, dated, audited."""
    case = _for_amending(session, actor, case_id)
    return notes_service.add_note(session, actor=actor, kind="case", record=case, text=text)


def correct_case(*, session: Session, actor: User, case_id: uuid.UUID, data: CaseCorrectionIn) -> CaseDetail:
    """Correct a case's sealed fields (those sent); each previous value stays sealed in its history."""
    case = _for_amending(session, actor, case_id)
    changes = {name: getattr(data, name) for name in data.model_fields_set if name in SEALED}
    notes_service.correct(
        session, actor=actor, kind="case", record=case, table=TABLE, changes=changes, index_column=INDEX_COLUMN
    )
    session.flush()
    return read_case(session=session, actor=actor, case_id=case_id)


# --- reading ---------------------------------------------------------------------------------


def _assignee_name(session: Session, case: Case, actor: User) -> str | None:
    if case.assigned_to_id is None:
        return None
    if case.assigned_to_id == actor.id:  # the usual case: no query
        return actor.username
    return session.scalar(select(User.username).where(User.id == case.assigned_to_id))


def _summary(case: Case, *, assigned_to: str | None) -> CaseSummary:
    return CaseSummary(
        id=case.id,
        code=case.code,
        status=CaseStatus(case.status),
        region=case.region,
        contact_id=case.contact_id,
        first_contact_on=case.first_contact_on,
        opened_on=case.opened_on,
        status_on=case.status_on,
        evacuated_on=case.evacuated_on,
        resettled_on=case.resettled_on,
        closed_on=case.closed_on,
        assigned_to=assigned_to,
        verified=is_verified(case),
        shredded=case.shredded_on is not None,
    )


def _detail(session: Session, case: Case, *, decrypt: bool) -> CaseDetail:
    steps = session.scalars(
        select(CaseTransition).where(CaseTransition.case_id == case.id).order_by(CaseTransition.position)
    ).all()
    ids = {case.opened_by_id, case.assigned_to_id, case.verified_by_id, *(s.actor_id for s in steps)} - {None}
    names: dict[uuid.UUID | None, str] = {
        user_id: name for user_id, name in session.execute(select(User.id, User.username).where(User.id.in_(ids)))
    }
    contact_code = session.scalar(select(Contact.code).where(Contact.id == case.contact_id)) or ""

    def note(step: CaseTransition) -> str | None:
        if not decrypt:
            return None
        return crypto.open_field(
            session, step.note_ct, table="case_transition", column="note", row_id=step.id, subject_id=case.id
        )

    history = [
        TransitionOut(
            position=s.position,
            from_status=CaseStatus(s.from_status) if s.from_status else None,
            to_status=CaseStatus(s.to_status),
            on=s.on,
            actor=names.get(s.actor_id),
            note=note(s),
        )
        for s in steps
    ]
    opened: dict[str, Any] = {}
    if decrypt:
        opened = {
            name: crypto.open_field(
                session, getattr(case, f"{name}_ct"), table=TABLE, column=name, row_id=case.id, subject_id=case.id
            )
            for name in SEALED
        }
    base = _summary(case, assigned_to=names.get(case.assigned_to_id) if case.assigned_to_id else None)
    requested = session.scalar(
        select(AttentionItem.id).where(
            AttentionItem.case_id == case.id,
            AttentionItem.kind == "verification_request",
            AttentionItem.resolved_on.is_(None),
        )
    )
    return CaseDetail(
        **base.model_dump(),
        redacted=not decrypt,
        contact_code=contact_code,
        opened_by=names.get(case.opened_by_id),
        verified_by=names.get(case.verified_by_id) if case.verified_by_id else None,
        verified_on=case.verified_on,
        allowed_transitions=[CaseStatus(s) for s in allowed_transitions(case)],
        history=history,
        added_notes=notes_service.notes_of(session, subject_id=case.id, decrypt=decrypt),
        corrections=notes_service.corrections_of(session, subject_id=case.id, decrypt=decrypt),
        verification_requested=requested is not None,
        **opened,
    )


def case_view(*, session: Session, actor: User, case_id: uuid.UUID) -> CaseDetail:
    """A visible case with codes, statuses, dates and history, and no decrypted field."""
    case = get_case_for(session=session, actor=actor, case_id=case_id)
    return _detail(session, case, decrypt=False)


def read_case(*, session: Session, actor: User, case_id: uuid.UUID) -> CaseDetail:
    """The assigned caseworker's view with sealed fields opened (audited, throttled); others get ``case_view``."""
    case = get_case_for(session=session, actor=actor, case_id=case_id)
    if not permissions.may_decrypt_case(actor, case) or case.shredded_on is not None:
        return _detail(session, case, decrypt=False)
    permissions.record_decrypted_read(session, user=actor, action="case.read", target=case.code)
    return _detail(session, case, decrypt=True)


def list_cases(
    *,
    session: Session,
    actor: User,
    status: str | None = None,
    region: str | None = None,
    opened_from: date | None = None,
    opened_to: date | None = None,
    limit: int = 50,
    offset: int = 0,
) -> CasePage:
    """A page of the cases ``actor`` may see, most recently moved first, without any decrypted field."""
    permissions.require_case_access(actor)
    conditions = [permissions.cases_visible_to(actor)]
    if status is not None:
        conditions.append(Case.status == status)
    if region is not None:
        conditions.append(Case.region == region)
    if opened_from is not None:
        conditions.append(Case.opened_on >= opened_from)
    if opened_to is not None:
        conditions.append(Case.opened_on <= opened_to)
    total = session.scalar(select(func.count()).select_from(Case).where(*conditions)) or 0
    stmt = (
        select(Case, User.username)
        .outerjoin(User, User.id == Case.assigned_to_id)
        .where(*conditions)
        .order_by(Case.status_on.desc(), Case.code)
        .limit(limit)
        .offset(offset)
    )
    items = [_summary(case, assigned_to=name) for case, name in session.execute(stmt)]
    return CasePage(items=items, total=total, limit=limit, offset=offset)
