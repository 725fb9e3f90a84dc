"""The receiving side: importing a partner's package as a new contact and case, and answering it.

An import trusts nothing it has not checked: the package must decrypt with this organisation's identity,
name this organisation's recipient inside what is signed, be signed by the key of a partner registered
here, carry only known field names, and not have been imported before. The new contact and case are
sealed under fresh keys of this installation; the only link back is the sender's referral code.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.models import Role, User
from app.cases import service as case_service
from app.cases.models import Case
from app.cases.schemas import CaseFields
from app.contacts import service as contact_service
from app.contacts.schemas import ContactIn
from app.crypto import service as crypto
from app.errors import Invalid
from app.referrals import keys, package
from app.referrals.models import Partner, ReceivedReferral, Referral
from app.referrals.package import PackageError
from app.referrals.schemas import ANSWERS, NEXT, ReceivedOut, ReferralField
from app.referrals.service import CASE_SEALED, CONTACT_SEALED, apply_status

# A field goes into the same sealed column it came from on the sender's side.
CASE_FIELDS = CASE_SEALED
CONTACT_FIELDS = CONTACT_SEALED
# Until the receiving caseworker assesses the person, an imported contact counts as high risk.
DEFAULT_RISK = "high"
# A referral code as Helpline makes them (``R-7K3Q-9M``), with room for a partner's longer scheme: it must fit
# the 16-character column and be answerable (``make_answer`` looks codes up upper-cased).
CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{0,15}")


@dataclass(frozen=True)
class Imported:
    code: str
    partner: str
    case_id: Any
    case_code: str
    contact_code: str
    fields: list[str]


def _partner_by_key(session: Session, verify_key: str) -> Partner | None:
    return session.scalar(select(Partner).where(Partner.verify_key == verify_key, Partner.removed_on.is_(None)))


def _owner(session: Session, assign: str | None) -> User:
    """The caseworker who takes the imported case: the one named, or the only active one."""
    query = select(User).where(User.role == Role.caseworker.value, User.active.is_(True))
    if assign is not None:
        owner = session.scalar(query.where(User.username == assign))
        if owner is None:
            raise Invalid.field("assign", "{name} is not an active caseworker", name=assign)
        return owner
    found = session.scalars(query.limit(2)).all()
    if len(found) != 1:
        raise Invalid.field("assign", "name the caseworker who takes the case (there is not exactly one)")
    return found[0]


def _text(values: dict[str, Any], name: str) -> str | None:
    value = values.get(name)
    return str(value) if value is not None else None


def _contact_in(session: Session, values: dict[str, Any], today: date) -> ContactIn:
    settings = crypto.settings_of(session)
    region = values.get("region")
    language = values.get("language")
    needs = values.get("needs")
    try:
        return ContactIn(
            received_on=today,
            channel="referral",  # type: ignore[arg-type]
            region=region if isinstance(region, str) and region in settings.regions else "unknown",
            language=language if isinstance(language, str) and language in settings.languages else "other",
            risk=_text(values, "risk") or DEFAULT_RISK,  # type: ignore[arg-type]
            needs=needs if isinstance(needs, list) else [],
            **{column: _text(values, name) for name, column in CONTACT_FIELDS.items()},
        )
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"])
        raise PackageError("refused: the package's {where} is not a value Helpline accepts", where=where) from None


def import_referral(*, session: Session, actor: str, data: bytes, identity: Any, assign: str | None = None) -> Imported:
    """Check a partner's package and create a contact and a case from it, sealed under new keys; audited."""
    doc = package.decrypt(data, identity=identity, expect=package.PACKAGE)
    partner = _partner_by_key(session, doc["from"])
    if partner is None:
        raise PackageError("refused: signed by an organisation that is not a partner here")
    if not package.signature_valid(doc, verify_key=partner.verify_key):
        raise PackageError(
            "refused: the signature does not match {partner}'s verify key (altered or forged)", partner=partner.name
        )
    values = doc.get("fields")
    known = {f.value for f in ReferralField}
    if not isinstance(values, dict) or not set(values) <= known:
        raise PackageError("refused: the package carries fields Helpline does not know")
    if not values:  # a sender always chooses at least one field: an empty package would make an empty record
        raise PackageError("refused: the package carries no field")
    code = doc["code"]
    if not CODE.fullmatch(code):
        raise PackageError("refused: the package's code is not a referral code")
    digest = hashlib.sha256(package.canonical(doc)).hexdigest()
    earlier = session.scalar(
        select(ReceivedReferral).where(
            (ReceivedReferral.digest == digest)
            | ((ReceivedReferral.partner_id == partner.id) & (ReceivedReferral.code == code))
        )
    )
    if earlier is not None:
        raise PackageError(
            "refused: referral {code} from {partner} was already imported on {on}",
            code=code,
            partner=partner.name,
            on=earlier.imported_on,
        )
    owner = _owner(session, assign)
    today = crypto.settings_of(session).today()
    contact = contact_service.record_contact(session=session, actor=owner, data=_contact_in(session, values, today))
    try:
        case_fields = CaseFields(**{column: _text(values, name) for name, column in CASE_FIELDS.items()})
    except ValidationError:
        raise PackageError("refused: a case field in the package is longer than Helpline accepts") from None
    case = case_service.open_case(session=session, actor=owner, contact_id=contact.id, data=case_fields, on=today)
    fields = sorted(values)
    session.add(
        ReceivedReferral(
            code=code,
            partner_id=partner.id,
            case_id=case.id,
            digest=digest,
            imported_on=today,
            imported_by=actor,
            status="sent",
            fields=",".join(fields),
        )
    )
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="referral.import",
        target=case.code,
        detail={"referral": code, "partner": partner.name, "fields": fields, "assigned_to": owner.username},
    )
    return Imported(code, partner.name, case.id, case.code, contact.code, fields)


def list_received(*, session: Session) -> list[ReceivedOut]:
    """Referrals received here, newest first (codes, partners, statuses; no field value)."""
    rows = session.execute(
        select(ReceivedReferral, Partner.name, Case.code)
        .join(Partner, Partner.id == ReceivedReferral.partner_id)
        .outerjoin(Case, Case.id == ReceivedReferral.case_id)
        .order_by(ReceivedReferral.imported_on.desc(), ReceivedReferral.code)
        .limit(500)
    )
    return [
        ReceivedOut(
            code=r.code,
            partner=name,
            case_id=r.case_id,
            case_code=case_code,
            imported_on=r.imported_on,
            status=r.status,
            fields=[f for f in r.fields.split(",") if f],
        )
        for r, name, case_code in rows
    ]


def make_answer(*, session: Session, actor: str, code: str, status: str, partner: str | None = None) -> bytes:
    """A signed status answer to the partner a referral came from, age-encrypted to it; audited."""
    if status not in ANSWERS:
        raise Invalid.field("status", "must be one of: {answers}", answers=", ".join(ANSWERS))
    query = select(ReceivedReferral, Partner).join(Partner, Partner.id == ReceivedReferral.partner_id)
    query = query.where(ReceivedReferral.code == code.strip().upper())
    if partner is not None:
        query = query.where(Partner.name == partner)
    # The received referral locked as committed now (stage 1): two coordinators answering it at once are
    # taken one after the other, so the partner never gets two answers the status did not allow.
    locked = query.limit(2).with_for_update(of=ReceivedReferral).execution_options(populate_existing=True)
    rows = session.execute(locked).all()
    if not rows:
        raise Invalid.field("code", "no referral {code} was received here", code=code)
    if len(rows) > 1:
        raise Invalid.field("partner", "two partners used this code; name the partner")
    received, sender = rows[0]
    if status not in NEXT[received.status]:
        raise Invalid.field(
            "status", "a referral that is {status} cannot be answered {target}", status=received.status, target=status
        )
    today = crypto.settings_of(session).today()
    keyring = crypto.keyring_of(session)
    body = {
        "format": package.STATUS,
        "version": package.VERSION,
        "code": received.code,
        "from": keys.verify_key(keyring),
        "to": sender.age_recipient,
        "status": status,
        "on": today.isoformat(),
    }
    data = package.encrypt(
        package.sign(body, key=keys.organisation_signing_key(keyring)), recipient=sender.age_recipient
    )
    old, received.status = received.status, status
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="referral.answer",
        target=received.code,
        detail={"partner": sender.name, "from": old, "to": status},
    )
    return data


def import_answer(*, session: Session, actor: str, data: bytes, identity: Any) -> tuple[str, str]:
    """Check a partner's signed status answer and move the referral it names; returns (code, status)."""
    doc = package.decrypt(data, identity=identity, expect=package.STATUS)
    # Locked as committed now (stage 1), as a move by hand locks it: an answer meeting a withdrawal waits and
    # is then refused, instead of reopening the referral the caseworker has just ended.
    referral = session.scalar(
        select(Referral).where(Referral.code == doc["code"]).with_for_update().execution_options(populate_existing=True)
    )
    if referral is None:
        raise PackageError("refused: no referral with this code was made here")
    partner = session.get(Partner, referral.partner_id)
    trusted = {referral.partner_verify_key} | ({partner.verify_key} if partner is not None else set())
    if doc["from"] not in trusted or not package.signature_valid(doc, verify_key=doc["from"]):
        raise PackageError("refused: the answer is not signed by the partner the referral went to")
    status = doc.get("status")
    if status not in ANSWERS:
        raise PackageError("refused: the answer carries no status a partner may give")
    try:
        on = date.fromisoformat(str(doc.get("on")))
    except ValueError:
        raise PackageError("refused: the answer's date is not a date") from None
    today = crypto.settings_of(session).today()
    case_code = session.scalar(select(Case.code).where(Case.id == referral.case_id)) or ""
    apply_status(
        session,
        referral,
        to=str(status),
        on=min(max(on, referral.status_on), today),
        source="answer",
        actor=actor,
        case_code=case_code,
    )
    return referral.code, str(status)
