"""Pages for partners and referrals: the partner list (admins edit it), a case's consents and referrals,
the referrals list, and a coordinator's import of a partner's package.

Same services as the API; every form is CSRF-checked and comes back with its mistake explained and what
was typed still in it. A package is downloaded by a POST, so a link cannot make a browser fetch one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select

from app.auth import service as auth_service
from app.auth.models import Role
from app.cases import service as case_service
from app.errors import Conflict, Forbidden, HelplineError, Invalid
from app.referrals import delivery, keys, package, receiving
from app.referrals import service as referral_service
from app.referrals import stats as referral_stats
from app.referrals.models import Partner
from app.referrals.schemas import ANSWERS, NEXT, ConsentIn, How, ReferralField, ReferralIn, ReferralStatus
from app.web import forms
from app.web.i18n import N_, NC_, filled, reason
from app.web.visit import CheckedForm, SignedIn, Visit, redirect
from app.web.visit import render as render_page

router = APIRouter(tags=["pages"], include_in_schema=False)

PARTNER_FIELDS = ("name", "age_recipient", "verify_key", "inbox_url")
FIELD_LABELS = {
    "full_name": N_("Full name"),
    "handle": N_("Phone number or handle (case)"),
    "location": N_("Location"),
    "family_situation": N_("Family situation"),
    "case_notes": N_("Case notes"),
    "alias": N_("Alias"),
    "contact_handle": N_("Phone number or handle (contact)"),
    "contact_notes": N_("Contact notes"),
    "region": N_("Region"),
    "language": N_("Language"),
    "risk": N_("Risk"),
    "needs": N_("Needs"),
}
HOW_LABELS = {
    "spoken": N_("Spoken on the phone"),
    "written": N_("Written"),
    "intermediary": N_("Through a trusted intermediary"),
}
# A referral («передача») is feminine in Russian: its statuses have a context of their own.
STATUS_CONTEXT = "referral status"
STATUS_LABELS = {
    "pending": NC_("referral status", "Awaiting approval"),
    "sent": NC_("referral status", "Sent"),
    "accepted": NC_("referral status", "Accepted"),
    "declined": NC_("referral status", "Declined"),
    "completed": NC_("referral status", "Completed"),
    "withdrawn": NC_("referral status", "Withdrawn"),
}


def status_label(visit: Visit, status: str) -> str:
    """A referral status by its label in the visitor's language (the code itself if it has none)."""
    label = STATUS_LABELS.get(status)
    return visit.pgettext(STATUS_CONTEXT, label) if label else status


def render(visit: Visit, name: str, context: dict[str, Any], *, status: int = 200) -> Response:
    """A page with this domain's labels in the visitor's language."""
    labels = {
        "field_labels": {k: visit._(v) for k, v in FIELD_LABELS.items()},
        "how_labels": {k: visit._(v) for k, v in HOW_LABELS.items()},
        "status_labels": {k: status_label(visit, k) for k in STATUS_LABELS},
    }
    return render_page(visit, name, {**labels, **context}, status=status)


# What the services may say to a form, marked here for the catalog (the services stay free of the web layer).
SERVICE_MESSAGES = (
    N_("use 1-64 letters, digits, dots, dashes or underscores"),
    N_("must be an https:// address"),
    N_("is this organisation's own key"),
    N_("the age recipient is not an age public key (age1...)"),
    N_("the verify key is not an Ed25519 public key (base64 of 32 bytes)"),
    N_("the identity file holds no age identity (a line starting AGE-SECRET-KEY-1)"),
    # Every reason a package or an answer is refused with (app.referrals.package.PackageError).
    N_("refused: far too large to be a referral package"),
    N_("refused: not encrypted to this organisation's identity, or damaged"),
    N_("refused: the content is not a referral document"),
    N_("refused: not a {format} document of version {version}"),
    N_("refused: the document has no {name}"),
    N_("refused: the document was signed for another organisation and re-encrypted"),
    N_("refused: the package's {where} is not a value Helpline accepts"),
    N_("refused: signed by an organisation that is not a partner here"),
    N_("refused: the signature does not match {partner}'s verify key (altered or forged)"),
    N_("refused: the package carries fields Helpline does not know"),
    N_("refused: the package's code is not a referral code"),
    N_("refused: the package carries no field"),
    N_("refused: referral {code} from {partner} was already imported on {on}"),
    N_("refused: a case field in the package is longer than Helpline accepts"),
    N_("refused: no referral with this code was made here"),
    N_("refused: the answer is not signed by the partner the referral went to"),
    N_("refused: the answer carries no status a partner may give"),
    N_("refused: the answer's date is not a date"),
    N_("this case was shredded"),
    N_("this consent was already withdrawn"),
    N_("no consent of this person for this partner with that id"),
    N_("this consent was withdrawn"),
    N_("the consent does not cover every field chosen"),
    N_("the case's contact no longer exists"),
    N_("the case or its contact was shredded; there is nothing left to send"),
    N_("this referral waits for a coordinator's approval"),
    N_("the case was shredded; there is nothing left to send"),
    N_("the person's consent was withdrawn; nothing may be sent"),
    N_("this partner was removed; nothing may be sent to it"),
    N_("partner {name} exists; replace its keys explicitly to change them"),
    N_("this referral is {status}; its package can no longer be downloaded"),
    N_("a referral cannot move from {status} to {target}"),
)


def _message(visit: Visit, exc: HelplineError) -> str:
    if isinstance(exc, ValidationError | Invalid):
        return "; ".join(forms.translated(visit, exc, shown=_shown(visit)).values())
    # The reason translated, then filled in: one naming a partner, a code or a status reads in the visitor's
    # language too (every reason the referral services give is in SERVICE_MESSAGES).
    if isinstance(exc, package.PackageError):
        return reason(visit._, exc)
    return filled(
        visit._, N_("That is not possible now: {reason}"), {"reason": reason(visit._, exc, shown=_shown(visit))}
    )


def _shown(visit: Visit) -> Callable[[str, object], str]:
    """How a referral refusal's values are shown: a status by its translated label, anything else as it is."""

    def shown(place: str, value: object) -> str:
        if place in ("status", "target"):
            return status_label(visit, str(value))
        return str(value)

    return shown


def timeline(visit: Visit, *, case_id: uuid.UUID) -> list[dict[str, Any]]:
    """A case's referral steps, oldest first, labelled in the visitor's language (for the case's page)."""
    assert visit.user is not None
    steps = [
        {"on": s.on, "status": status_label(visit, s.status), "code": r.code, "partner": r.partner, "actor": s.actor}
        for r in referral_service.list_referrals(session=visit.db, actor=visit.user, case_id=case_id)
        for s in r.steps
    ]
    return sorted(steps, key=lambda s: s["on"])


# --- partners --------------------------------------------------------------------------------


def _partners_page(  # type: ignore[no-untyped-def]
    visit: Visit,
    *,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
    confirm: str | None = None,
    removed: str | None = None,
    saved: str | None = None,
):
    visit.require(Role.caseworker, Role.coordinator, Role.admin)
    context = {
        "partners": referral_service.list_partners(session=visit.db),
        "own_key": keys.verify_key(visit.request.app.state.keyring),
        "values": values or dict.fromkeys(PARTNER_FIELDS, ""),
        "error": error,
        "confirm": confirm,
        "removed": removed,
        "saved": saved,
    }
    return render(visit, "partners.html", context, status=status)


@router.get("/partners")
def partners(visit: SignedIn, removed: str | None = None, saved: str | None = None) -> Response:
    # What the last press did, said only if it is so: a link someone sends cannot make the page claim it.
    listed = {p.name for p in referral_service.list_partners(session=visit.db)}
    return _partners_page(
        visit,
        removed=removed
        if removed and visit.db.scalar(select(Partner.removed_on).where(Partner.name == removed))
        else None,
        saved=saved if saved in listed else None,
    )


@router.post("/partners")
def add_partner(visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.admin)
    typed = forms.values(form, *PARTNER_FIELDS, "replace")
    try:
        with visit.db.begin_nested():
            referral_service.add_partner(
                session=visit.db,
                actor=user.username,
                name=typed["name"],
                age_recipient=typed["age_recipient"],
                verify_key=typed["verify_key"],
                replace=typed["replace"] == "yes",
                inbox_url=typed["inbox_url"] or None,
            )
    except (Invalid, Conflict, package.PackageError) as exc:
        return _partners_page(visit, values=typed, error=_message(visit, exc), status=exc.status_code)
    return redirect(visit, f"/partners?saved={quote(typed['name'][:64])}")


@router.post("/partners/{name}/remove")
def remove_partner(name: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.admin)
    if form.get("confirm") != "yes":
        # Nothing can be referred to a removed partner: asked again, and nothing changes until confirmed.
        return _partners_page(visit, confirm=referral_service.get_partner(session=visit.db, name=name[:64]).name)
    referral_service.remove_partner(session=visit.db, actor=user.username, name=name[:64])
    return redirect(visit, f"/partners?removed={quote(name[:64])}")


# --- a case's consents and referrals ---------------------------------------------------------


def _case_page(  # type: ignore[no-untyped-def]
    visit: Visit,
    case_id: str,
    *,
    error: str | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
    confirm: uuid.UUID | None = None,
    withdrawn: bool = False,
    confirm_move: dict[str, str] | None = None,
    moved: dict[str, str] | None = None,
):
    user = visit.require(Role.caseworker, Role.coordinator)
    ident = forms.parse_id(case_id)
    case = case_service.case_view(session=visit.db, actor=user, case_id=ident)
    consents = referral_service.list_consents(session=visit.db, actor=user, case_id=ident)
    context = {
        "case": case,
        "may_refer": user.role == Role.caseworker and case.assigned_to == user.username and not case.shredded,
        "consents": consents,
        "confirm": next((c for c in consents if c.id == confirm and not c.withdrawn_on), None),
        "referrals": referral_service.list_referrals(session=visit.db, actor=user, case_id=ident),
        "partners": referral_service.list_partners(session=visit.db),
        "inboxes": {p.name for p in referral_service.list_partners(session=visit.db) if p.inbox_url},
        "fields": [f.value for f in ReferralField],
        "hows": [h.value for h in How],
        # Only the moves a referral's status allows (never its own status), as the service checks them.
        "moves": {s: sorted(n - {"sent", "pending"}) for s, n in NEXT.items()},
        "confirm_move": confirm_move,
        "moved": moved,
        "values": values or {"given_on": visit.settings.today().isoformat(), "fields": []},
        "error": error,
        "withdrawn": withdrawn,
    }
    return render(visit, "case_referrals.html", context, status=status)


@router.get("/cases/{case_id}/referrals")
def case_referrals(
    case_id: str, visit: SignedIn, withdrawn: int = 0, moved: str | None = None, to: str | None = None
) -> Response:
    # Said only if it is so (the case has that referral in that status): a link cannot make the page claim it.
    user = visit.require(Role.caseworker, Role.coordinator)
    found = {
        r.code: r.status
        for r in referral_service.list_referrals(session=visit.db, actor=user, case_id=forms.parse_id(case_id))
    }
    done = {"code": moved, "status": status_label(visit, to)} if moved and to and found.get(moved) == to else None
    return _case_page(visit, case_id, withdrawn=bool(withdrawn), moved=done)


@router.post("/cases/{case_id}/consents")
def record_consent(case_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.caseworker)
    typed = forms.values(form, "partner", "given_on", "how", lists=("fields",))
    try:
        data = ConsentIn.model_validate(typed)
        with visit.db.begin_nested():
            referral_service.record_consent(session=visit.db, actor=user, case_id=forms.parse_id(case_id), data=data)
    except (ValidationError, Invalid, Conflict) as exc:
        status = exc.status_code if isinstance(exc, HelplineError) else 422
        return _case_page(visit, case_id, error=_message(visit, exc), values=typed, status=status)  # type: ignore[arg-type]
    return redirect(visit, f"/cases/{case_id}/referrals")


@router.post("/cases/{case_id}/consents/{consent_id}/withdraw")
def withdraw_consent(case_id: str, consent_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.caseworker, Role.coordinator)
    ident = forms.parse_id(consent_id)
    if form.get("confirm") != "yes":
        # A withdrawal ends the consent's open referrals and cannot be taken back: asked again first.
        return _case_page(visit, case_id, confirm=ident)
    try:
        with visit.db.begin_nested():
            referral_service.withdraw_consent(
                session=visit.db, actor=user, case_id=forms.parse_id(case_id), consent_id=ident
            )
    except Conflict as exc:
        return _case_page(visit, case_id, error=_message(visit, exc), status=409)
    return redirect(visit, f"/cases/{case_id}/referrals?withdrawn=1")


@router.post("/cases/{case_id}/referrals")
def create_referral(case_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.caseworker)
    typed = forms.values(form, "partner", "consent_id", lists=("fields",))
    try:
        data = ReferralIn.model_validate({**typed, "consent_id": typed["consent_id"] or None})
        with visit.db.begin_nested():
            referral_service.create_referral(session=visit.db, actor=user, case_id=forms.parse_id(case_id), data=data)
    except (ValidationError, Invalid, Conflict, Forbidden) as exc:
        status = exc.status_code if isinstance(exc, HelplineError) else 422
        return _case_page(visit, case_id, error=_message(visit, exc), values=typed, status=status)  # type: ignore[arg-type]
    return redirect(visit, f"/cases/{case_id}/referrals")


@router.post("/referrals/{referral_id}/package")
def download(referral_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.caseworker, Role.coordinator)
    code, data = referral_service.build_package(session=visit.db, actor=user, referral_id=forms.parse_id(referral_id))
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="referral-{code}.age"', "Cache-Control": "no-store"},
    )


@router.post("/referrals/{referral_id}/status")
def move(referral_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.caseworker, Role.coordinator)
    ident = forms.parse_id(referral_id)
    referral = referral_service.referral_view(session=visit.db, actor=user, referral_id=ident)
    try:
        to = ReferralStatus(str(form.get("to", ""))).value
        if not NEXT[to] and form.get("confirm") != "yes":
            # A move nothing comes back from (withdrawn, declined, completed): asked again first.
            ask = {"id": str(referral.id), "code": referral.code, "to": to}
            return _case_page(visit, str(referral.case_id), confirm_move=ask)
        with visit.db.begin_nested():
            referral_service.move(session=visit.db, actor=user, referral_id=ident, to=to)
    except ValueError:
        return _case_page(visit, str(referral.case_id), error=visit._("Choose one of the options."), status=422)
    except (Conflict, Invalid) as exc:
        return _case_page(visit, str(referral.case_id), error=_message(visit, exc), status=exc.status_code)
    return redirect(visit, f"/cases/{referral.case_id}/referrals?moved={quote(referral.code)}&to={to}")


# --- all referrals, and importing a partner's package -----------------------------------------


def _list_page(  # type: ignore[no-untyped-def]
    visit: Visit, *, error: str | None = None, done: str | None = None, status: int = 200, assign: str | None = None
):
    user = visit.require(Role.caseworker, Role.coordinator)
    coordinator = user.role == Role.coordinator
    context = {
        "referrals": referral_service.list_referrals(session=visit.db, actor=user),
        "received": receiving.list_received(session=visit.db) if coordinator else [],
        "inbox": delivery.waiting(session=visit.db) if coordinator else [],
        "stats": referral_stats.monthly(session=visit.db, actor=user) if coordinator else None,
        "caseworkers": [u.username for u in auth_service.list_users(visit.db) if u.role == Role.caseworker and u.active]
        if coordinator
        else [],
        "answers": list(ANSWERS),
        "error": error,
        "done": done,
        "assign": assign,  # the caseworker chosen for a refused import stays chosen (files cannot be kept)
    }
    return render(visit, "referrals.html", context, status=status)


@router.get("/referrals")
def referrals(visit: SignedIn) -> Response:
    return _list_page(visit)


# A package is a few kilobytes; an identity file one line. Anything larger is refused before reading on.
UPLOAD_LIMIT = package.MAX_BYTES


def _uploads(visit: Visit, form: Any) -> tuple[bytes, Any]:
    """(file bytes, age identity) of an upload form; PackageError if a file is missing or holds no identity."""
    upload, identity_file = form.get("package"), form.get("identity")
    if isinstance(upload, str) or upload is None or isinstance(identity_file, str) or identity_file is None:
        raise package.PackageError(visit._("Choose the package file and the identity file."))
    identity = package.identity_from_file(identity_file.file.read(10_000).decode("utf-8", "replace"))
    return upload.file.read(UPLOAD_LIMIT + 1), identity


@router.post("/referrals/import")
def import_package(visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.coordinator)
    assign = str(form.get("assign", ""))[:64] or None
    try:
        data, identity = _uploads(visit, form)
        with visit.db.begin_nested():
            done = receiving.import_referral(
                session=visit.db, actor=user.username, data=data, identity=identity, assign=assign
            )
    except (package.PackageError, Invalid) as exc:
        return _list_page(visit, error=_message(visit, exc), status=422, assign=assign)
    return _list_page(visit, done=visit._("Imported as case %(code)s.") % {"code": done.case_code})


@router.post("/referrals/answer-import")
def import_answer(visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.coordinator)
    try:
        data, identity = _uploads(visit, form)
        with visit.db.begin_nested():
            code, to = receiving.import_answer(session=visit.db, actor=user.username, data=data, identity=identity)
    except (package.PackageError, Conflict, Invalid) as exc:
        return _list_page(visit, error=_message(visit, exc), status=exc.status_code)
    return _list_page(
        visit,
        done=visit._("Referral %(code)s is now: %(status)s.") % {"code": code, "status": status_label(visit, to)},
    )


@router.post("/referrals/received/{code}/answer")
def answer(code: str, visit: SignedIn, form: CheckedForm) -> Response:
    """A signed, encrypted status answer for the partner a referral came from, as a file to send them."""
    user = visit.require(Role.coordinator)
    try:
        with visit.db.begin_nested():
            data = receiving.make_answer(
                session=visit.db,
                actor=user.username,
                code=code[:16],
                status=str(form.get("status", "")),
                partner=str(form.get("partner", ""))[:64] or None,
            )
    except Invalid as exc:
        return _list_page(visit, error=_message(visit, exc), status=422)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="answer-{code[:16]}.age"', "Cache-Control": "no-store"},
    )


@router.post("/referrals/{referral_id}/deliver")
def deliver(referral_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.caseworker, Role.coordinator)
    ident = forms.parse_id(referral_id)
    referral = referral_service.referral_view(session=visit.db, actor=user, referral_id=ident)
    try:
        # Not in a savepoint: the delivery commits the built package before it waits on the partner's server.
        # A refusal comes before anything is written; a failed post after it leaves only the download recorded.
        delivery.deliver(session=visit.db, actor=user, referral_id=ident)
    except (Conflict, delivery.DeliveryFailed) as exc:
        return _case_page(visit, str(referral.case_id), error=_message(visit, exc), status=exc.status_code)
    return redirect(visit, f"/cases/{referral.case_id}/referrals")


@router.post("/referrals/inbox/{inbox_id}/import")
def import_delivered(inbox_id: str, visit: SignedIn, form: CheckedForm) -> Response:
    user = visit.require(Role.coordinator)
    identity_file = form.get("identity")
    try:
        if isinstance(identity_file, str) or identity_file is None:
            raise package.PackageError(visit._("Choose the package file and the identity file."))
        identity = package.identity_from_file(identity_file.file.read(10_000).decode("utf-8", "replace"))
        with visit.db.begin_nested():
            done = delivery.import_delivered(
                session=visit.db,
                actor=user.username,
                inbox_id=forms.parse_id(inbox_id),
                identity=identity,
                assign=str(form.get("assign", ""))[:64] or None,
            )
    except (package.PackageError, Invalid) as exc:
        return _list_page(visit, error=_message(visit, exc), status=422)
    return _list_page(visit, done=visit._("Imported as case %(code)s.") % {"code": done.case_code})
