"""Partners, consents and referrals made: the sending side. Services check, seal, audit and never commit.

Who may do what:

| action                              | who                                                       |
| ----------------------------------- | --------------------------------------------------------- |
| add, replace, remove a partner      | admin (and the command line)                              |
| list partners                       | caseworker, coordinator, admin                            |
| record a consent, make a referral   | the case's assigned caseworker                            |
| withdraw a consent, move a referral | the case's assigned caseworker, a coordinator             |
| approve a referral (pending → sent) | a coordinator, when HELPLINE_REFERRAL_APPROVAL is on      |
| download a package                  | the assigned caseworker, a coordinator (it is encrypted   |
|                                     | to the partner: neither can read it; both are audited)    |
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.models import Role, User
from app.cases import permissions
from app.cases import service as case_service
from app.cases.models import Case
from app.contacts import service as contact_service
from app.contacts.models import Contact
from app.crypto import service as crypto
from app.crypto.errors import CryptoError, ShreddedError
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.referrals import keys, package
from app.referrals.models import Consent, Partner, Referral, ReferralStep
from app.referrals.schemas import (
    DELIVERABLE,
    NEXT,
    OPEN,
    PARTNER_NAME,
    ConsentIn,
    ConsentOut,
    PartnerOut,
    ReferralField,
    ReferralIn,
    ReferralOut,
    ReferralStatus,
    StepOut,
)

CONSENT_TABLE = "referral_consent"
# Where each shareable field lives: (record, sealed column or None for a plain one).
CASE_SEALED = {"full_name": "full_name", "handle": "handle", "location": "location"}
CASE_SEALED |= {"family_situation": "family_situation", "case_notes": "notes"}
CONTACT_SEALED = {"alias": "alias", "contact_handle": "handle", "contact_notes": "notes"}


# --- partners --------------------------------------------------------------------------------


def _partner_out(p: Partner) -> PartnerOut:
    return PartnerOut(
        name=p.name, age_recipient=p.age_recipient, verify_key=p.verify_key, inbox_url=p.inbox_url, added_on=p.added_on
    )


def require_admin(actor: User) -> None:
    if actor.role != Role.admin:
        raise Forbidden()


def add_partner(
    *,
    session: Session,
    actor: str,
    name: str,
    age_recipient: str,
    verify_key: str,
    replace: bool = False,
    inbox_url: str | None = None,
) -> PartnerOut:
    """Add a partner, or replace its keys (``replace``); earlier referrals keep the keys they used."""
    from app.referrals.delivery import valid_inbox_url

    if not re.fullmatch(PARTNER_NAME, name):
        raise Invalid.field("name", "use 1-64 letters, digits, dots, dashes or underscores")
    inbox = valid_inbox_url(inbox_url) if inbox_url else None
    recipient = package.valid_recipient(age_recipient)
    verify = package.valid_verify_key(verify_key)
    try:
        own = keys.verify_key(crypto.keyring_of(session))
    except CryptoError:  # a provider that cannot sign here cannot be confused with a partner either
        own = None
    if verify == own:
        raise Invalid.field("verify_key", "is this organisation's own key")
    today = crypto.settings_of(session).today()
    partner = session.scalar(select(Partner).where(Partner.name == name))
    if partner is not None and partner.removed_on is None and not replace:
        raise Conflict("partner {name} exists; replace its keys explicitly to change them", name=name)
    if partner is None:
        partner = Partner(name=name, age_recipient=recipient, verify_key=verify, inbox_url=inbox, added_on=today)
        session.add(partner)
        action = "partner.add"
    else:
        partner.age_recipient, partner.verify_key, partner.removed_on = recipient, verify, None
        partner.inbox_url = inbox
        action = "partner.replace_keys"
    session.flush()
    audit.record(session, actor=actor, action=action, target=name, detail={"age_recipient": recipient})
    return _partner_out(partner)


def list_partners(*, session: Session) -> list[PartnerOut]:
    """Active partners by name."""
    rows = session.scalars(select(Partner).where(Partner.removed_on.is_(None)).order_by(Partner.name))
    return [_partner_out(p) for p in rows]


def get_partner(*, session: Session, name: str) -> Partner:
    partner = session.scalar(select(Partner).where(Partner.name == name, Partner.removed_on.is_(None)))
    if partner is None:
        raise Invalid.field("partner", "no partner named {name}", name=name)
    return partner


def remove_partner(*, session: Session, actor: str, name: str) -> None:
    """Stop referring to a partner; its past referrals and consents keep naming it."""
    partner = get_partner(session=session, name=name)
    partner.removed_on = crypto.settings_of(session).today()
    session.flush()
    audit.record(session, actor=actor, action="partner.remove", target=name)


# --- consents --------------------------------------------------------------------------------


def _assigned_case(session: Session, actor: User, case_id: uuid.UUID) -> Case:
    """A case the actor may read sealed fields of (its assigned caseworker); others 403/404."""
    case = case_service.get_case_for(session=session, actor=actor, case_id=case_id)
    if not permissions.may_decrypt_case(actor, case):
        raise Forbidden("only the case's assigned caseworker may do this")
    if case.shredded_on is not None:
        raise Conflict("this case was shredded")
    return case


def record_consent(*, session: Session, actor: User, case_id: uuid.UUID, data: ConsentIn) -> ConsentOut:
    """Record the person's consent to share kinds of data with one partner, sealed with the case."""
    case = _assigned_case(session, actor, case_id)
    partner = get_partner(session=session, name=data.partner)
    if data.given_on < case.first_contact_on:
        raise Invalid.field("given_on", "must not be before the first contact")
    fields = sorted({f.value for f in data.fields})
    consent_id = crypto.new_subject_id()
    terms = json.dumps({"given_on": data.given_on.isoformat(), "how": data.how.value, "fields": fields})
    key = crypto.current_subject_key(session, subject_id=case.id)
    today = crypto.settings_of(session).today()
    session.add(
        Consent(
            id=consent_id,
            case_id=case.id,
            partner_id=partner.id,
            terms_ct=crypto.seal_field(session, terms, key=key, table=CONSENT_TABLE, column="terms", row_id=consent_id),
            recorded_on=today,
            recorded_by_id=actor.id,
        )
    )
    session.flush()
    audit.record(
        session, actor=actor.username, action="referral.consent", target=case.code, detail={"partner": partner.name}
    )
    return ConsentOut(
        id=consent_id, partner=partner.name, given_on=data.given_on, how=data.how, fields=fields, recorded_on=today
    )


def _terms(session: Session, consent: Consent) -> dict:
    text = crypto.open_field(
        session, consent.terms_ct, table=CONSENT_TABLE, column="terms", row_id=consent.id, subject_id=consent.case_id
    )
    return json.loads(text) if text else {}


def list_consents(*, session: Session, actor: User, case_id: uuid.UUID) -> list[ConsentOut]:
    """A case's consents; their terms only for the assigned caseworker."""
    case = case_service.get_case_for(session=session, actor=actor, case_id=case_id)
    readable = permissions.may_decrypt_case(actor, case) and case.shredded_on is None
    out = []
    rows = session.execute(
        select(Consent, Partner.name)
        .join(Partner, Partner.id == Consent.partner_id)
        .where(Consent.case_id == case.id)
        .order_by(Consent.recorded_on, Consent.id)
    )
    for consent, name in rows:
        terms = _terms(session, consent) if readable else {}
        out.append(
            ConsentOut(
                id=consent.id,
                partner=name,
                given_on=terms.get("given_on"),
                how=terms.get("how"),
                fields=terms.get("fields", []),
                recorded_on=consent.recorded_on,
                withdrawn_on=consent.withdrawn_on,
            )
        )
    return out


def _consent_locked(session: Session, consent_id: uuid.UUID) -> Consent | None:
    """The consent as committed now, locked to the end of the transaction (stage 1 of the lock order).

    A referral is made on a consent and a withdrawal ends the referrals made on it; both hold the consent
    row, so the second of two that meet waits for the first and then sees it: a withdrawal waiting on a
    referral being made ends that referral too, and a referral waiting on a withdrawal is refused.
    """
    return session.get(Consent, consent_id, with_for_update=True, populate_existing=True)


def withdraw_consent(
    *, session: Session, actor: User, case_id: uuid.UUID, consent_id: uuid.UUID, on: date | None = None
) -> list[str]:
    """Withdraw a consent; every open referral made on it is withdrawn too. Returns their codes."""
    case = case_service.get_case_for(session=session, actor=actor, case_id=case_id)
    if not permissions.may_transition(actor, case):
        raise Forbidden()
    consent = _consent_locked(session, consent_id)
    if consent is None or consent.case_id != case.id:
        raise NotFound()
    if consent.withdrawn_on is not None:
        raise Conflict("this consent was already withdrawn")
    day = on or crypto.settings_of(session).today()
    consent.withdrawn_on = day
    ended = []
    # Each open referral locked after its consent (stage 1): a move, an answer or a download of one of them
    # under way is waited for, and what it left is what is ended (nothing, if it ended the referral itself).
    open_referrals = (
        select(Referral)
        .where(Referral.consent_id == consent.id, Referral.status.in_(OPEN))
        .order_by(Referral.code)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    for referral in session.scalars(open_referrals):
        _step(session, referral, to="withdrawn", on=day, source="consent", actor=actor.username)
        ended.append(referral.code)
    session.flush()
    audit.record(
        session,
        actor=actor.username,
        action="referral.consent_withdraw",
        target=case.code,
        detail={"consent": str(consent.id), "ended": ended},
    )
    return ended


# --- referrals -------------------------------------------------------------------------------


def _step(session: Session, referral: Referral, *, to: str, on: date, source: str, actor: str) -> None:
    last = session.scalar(select(func.max(ReferralStep.position)).where(ReferralStep.referral_id == referral.id))
    session.add(
        ReferralStep(
            referral_id=referral.id,
            position=(last if last is not None else -1) + 1,
            status=to,
            on=on,
            source=source,
            actor=actor,
        )
    )
    referral.status = to
    referral.status_on = on


def create_referral(*, session: Session, actor: User, case_id: uuid.UUID, data: ReferralIn) -> ReferralOut:
    """Record a referral of chosen fields to a partner under a fresh code; 409 unless a consent covers them."""
    case = _assigned_case(session, actor, case_id)
    partner = get_partner(session=session, name=data.partner)
    fields = sorted({f.value for f in data.fields})
    consent = _consent_locked(session, data.consent_id)
    if consent is None or consent.case_id != case.id or consent.partner_id != partner.id:
        raise Conflict("no consent of this person for this partner with that id")
    if consent.withdrawn_on is not None:
        raise Conflict("this consent was withdrawn")
    missing = sorted(set(fields) - set(_terms(session, consent).get("fields", [])))
    if missing:
        raise Conflict({"message": "the consent does not cover every field chosen", "not_covered": missing})
    settings = crypto.settings_of(session)
    today = settings.today()
    first = "pending" if settings.referral_approval else "sent"
    referral = Referral(
        case_id=case.id,
        partner_id=partner.id,
        consent_id=consent.id,
        recipient=partner.age_recipient,
        partner_verify_key=partner.verify_key,
        fields=",".join(fields),
        status=first,
        sent_on=today,
        status_on=today,
        created_by_id=actor.id,
    )
    # The code is random and drawn for this referral alone: nothing about the case can be read from it.
    contact_service.insert_with_code(session, referral, prefix="R")
    _step(session, referral, to=first, on=today, source="created", actor=actor.username)
    session.flush()
    audit.record(
        session,
        actor=actor.username,
        action="referral.create",
        target=case.code,
        detail={"referral": referral.code, "partner": partner.name, "fields": fields},
    )
    return _out(session, referral, partner_name=partner.name, case_code=case.code)


def _out(session: Session, referral: Referral, *, partner_name: str, case_code: str) -> ReferralOut:
    steps = session.scalars(
        select(ReferralStep).where(ReferralStep.referral_id == referral.id).order_by(ReferralStep.position)
    )
    return ReferralOut(
        id=referral.id,
        code=referral.code,
        status=ReferralStatus(referral.status),
        partner=partner_name,
        case_id=referral.case_id,
        case_code=case_code,
        fields=[ReferralField(f) for f in referral.fields.split(",") if f],
        consent_id=referral.consent_id,
        sent_on=referral.sent_on,
        status_on=referral.status_on,
        recipient=referral.recipient,
        steps=[StepOut(status=ReferralStatus(s.status), on=s.on, source=s.source, actor=s.actor) for s in steps],
    )


def get_referral_for(
    *, session: Session, actor: User, referral_id: uuid.UUID, for_update: bool = False
) -> tuple[Referral, Case]:
    """A referral whose case the actor may see (assigned caseworker, coordinator); 404 otherwise.

    ``for_update`` locks the referral row, as committed now, to the end of the transaction (stage 1 of the
    lock order): two status moves of one referral run one after the other, the second checked against the
    status the first left, so two steps never share a position and an ended referral is never reopened.
    """
    permissions.require_case_access(actor)
    referral = session.get(Referral, referral_id, with_for_update=for_update or None, populate_existing=for_update)
    if referral is None:
        raise NotFound()
    case = session.get(Case, referral.case_id)
    if case is None or not permissions.can_see_case(actor, case):
        raise NotFound()
    return referral, case


def referral_view(*, session: Session, actor: User, referral_id: uuid.UUID) -> ReferralOut:
    referral, case = get_referral_for(session=session, actor=actor, referral_id=referral_id)
    name = session.scalar(select(Partner.name).where(Partner.id == referral.partner_id)) or ""
    return _out(session, referral, partner_name=name, case_code=case.code)


def list_referrals(*, session: Session, actor: User, case_id: uuid.UUID | None = None) -> list[ReferralOut]:
    """Referrals of the cases the actor may see, newest first (no field values)."""
    permissions.require_case_access(actor)
    stmt = (
        select(Referral, Partner.name, Case.code)
        .join(Partner, Partner.id == Referral.partner_id)
        .join(Case, Case.id == Referral.case_id)
        .where(permissions.cases_visible_to(actor))
        .order_by(Referral.sent_on.desc(), Referral.code)
        .limit(500)
    )
    if case_id is not None:
        stmt = stmt.where(Referral.case_id == case_id)
    return [_out(session, r, partner_name=name, case_code=code) for r, name, code in session.execute(stmt)]


def _field_values(session: Session, case: Case, names: Iterable[str]) -> dict[str, object]:
    contact = session.get(Contact, case.contact_id)
    if contact is None:
        raise Conflict("the case's contact no longer exists")
    values: dict[str, object] = {}
    try:
        for name in names:
            if name in CASE_SEALED:
                values[name] = crypto.open_field(
                    session,
                    getattr(case, f"{CASE_SEALED[name]}_ct"),
                    table=case_service.TABLE,
                    column=CASE_SEALED[name],
                    row_id=case.id,
                    subject_id=case.id,
                )
            elif name in CONTACT_SEALED:
                values[name] = crypto.open_field(
                    session,
                    getattr(contact, f"{CONTACT_SEALED[name]}_ct"),
                    table="contact",
                    column=CONTACT_SEALED[name],
                    row_id=contact.id,
                    subject_id=contact.id,
                )
            elif name == "region":
                values[name] = case.region
            elif name == "needs":
                values[name] = [n for n in contact.needs.split(",") if n]
            else:
                values[name] = getattr(contact, name)
    except ShreddedError:
        raise Conflict("the case or its contact was shredded; there is nothing left to send") from None
    return values


def build_package(*, session: Session, actor: User, referral_id: uuid.UUID) -> tuple[str, bytes]:
    """(code, age-encrypted signed package) of an open referral, built now from the case; audited."""
    referral, case = get_referral_for(session=session, actor=actor, referral_id=referral_id)
    if not permissions.may_transition(actor, case):
        raise Forbidden()
    # The case, then the referral, held shared and read as committed now (stage 1, the case before what hangs
    # off it): a shred of the case, a move, or a withdrawal of its consent (which locks every open referral on
    # it) under way is waited for and then refuses this package; one that comes after waits until the package
    # is recorded, so the audit log shows them in the order they ran.
    session.refresh(case, with_for_update={"read": True})
    session.refresh(referral, with_for_update={"read": True})
    if referral.status == "pending":
        raise Conflict("this referral waits for a coordinator's approval")
    if referral.status not in DELIVERABLE:
        raise Conflict("this referral is {status}; its package can no longer be downloaded", status=referral.status)
    if case.shredded_on is not None:
        raise Conflict("the case was shredded; there is nothing left to send")
    # A withdrawal ends its open referrals under their locks, so this holds already; kept as the last word.
    consent = session.get(Consent, referral.consent_id)
    if consent is None or consent.withdrawn_on is not None:
        raise Conflict("the person's consent was withdrawn; nothing may be sent")
    # A partner is removed when it must no longer be trusted (its keys lost, or not who it said it was): no
    # package goes to it, even for a referral made before.
    partner = session.get(Partner, referral.partner_id)
    if partner is None or partner.removed_on is not None:
        raise Conflict("this partner was removed; nothing may be sent to it")
    keyring = crypto.keyring_of(session)
    signing = keys.organisation_signing_key(keyring)
    body = {
        "format": package.PACKAGE,
        "version": package.VERSION,
        "code": referral.code,
        "from": keys.verify_key(keyring),
        "to": referral.recipient,
        "sent_on": referral.sent_on.isoformat(),
        "fields": _field_values(session, case, referral.fields.split(",")),
    }
    data = package.encrypt(package.sign(body, key=signing), recipient=referral.recipient)
    audit.record(
        session,
        actor=actor.username,
        action="referral.package",
        target=case.code,
        detail={"referral": referral.code, "recipient": referral.recipient},
    )
    return referral.code, data


def move(*, session: Session, actor: User, referral_id: uuid.UUID, to: str, on: date | None = None) -> ReferralOut:
    """Move a referral by hand (the partner said so by phone, or the caseworker withdraws it); 409 if illegal."""
    referral, case = get_referral_for(session=session, actor=actor, referral_id=referral_id, for_update=True)
    if not permissions.may_transition(actor, case):
        raise Forbidden()
    if referral.status == "pending" and to == "sent" and actor.role != Role.coordinator:
        raise Forbidden("a coordinator approves a referral")
    day = on or crypto.settings_of(session).today()
    apply_status(session, referral, to=to, on=day, source="by_hand", actor=actor.username, case_code=case.code)
    name = session.scalar(select(Partner.name).where(Partner.id == referral.partner_id)) or ""
    return _out(session, referral, partner_name=name, case_code=case.code)


def apply_status(
    session: Session, referral: Referral, *, to: str, on: date, source: str, actor: str, case_code: str
) -> None:
    """One legal status move of a referral, stepped and audited; 409 naming the allowed moves otherwise."""
    if to not in NEXT[referral.status]:
        raise Conflict(
            {"message": "a referral cannot move from {status} to {target}", "allowed": sorted(NEXT[referral.status])},
            status=referral.status,
            target=to,
        )
    if on < referral.status_on:
        raise Invalid.field("on", "must not be before the referral's last status change")
    old = referral.status
    _step(session, referral, to=to, on=on, source=source, actor=actor)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="referral.status",
        target=case_code,
        detail={"referral": referral.code, "from": old, "to": to, "source": source},
    )
