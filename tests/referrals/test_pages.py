"""The partner and referral pages, as a browser uses them, in English and Russian."""

from __future__ import annotations

import base64
import json
import re

import pyrage
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.referrals.models import Partner, Referral
from tests.referrals.conftest import referral_of_region
from tests.web.conftest import Pages


@pytest.fixture
def pages(client, session) -> Pages:
    return Pages(client, session)


def _keys() -> tuple[pyrage.x25519.Identity, str]:
    verify = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    return pyrage.x25519.Identity.generate(), verify


def test_an_admin_adds_a_partner_and_a_mistake_keeps_what_was_typed(pages, factory, session) -> None:
    admin = factory.account("admin")
    pages.signed_in(admin)
    identity, verify = _keys()
    bad = pages.post("/partners", {"name": "Rainbow", "age_recipient": "age1notakey", "verify_key": verify})
    assert bad.status_code == 422
    assert "not an age public key" in bad.text and verify in bad.text and 'value="Rainbow"' in bad.text
    assert session.scalar(select(Partner).where(Partner.name == "Rainbow")) is None
    spaced = pages.post(
        "/partners", {"name": "Rainbow Railroad", "age_recipient": str(identity.to_public()), "verify_key": verify}
    )
    assert spaced.status_code == 422 and "use 1-64 letters" in spaced.text and 'value="Rainbow Railroad"' in spaced.text
    good = pages.post(
        "/partners", {"name": "Rainbow", "age_recipient": str(identity.to_public()), "verify_key": verify}
    )
    assert good.status_code == 303
    listed = pages.client.get("/partners")
    assert "Rainbow" in listed.text and str(identity.to_public()) in listed.text
    # Removing a partner is asked first; nothing changes until confirmed.
    asked = pages.post("/partners/Rainbow/remove", from_page="/partners")
    assert (
        asked.status_code == 200
        and "Remove partner Rainbow?" in asked.text
        and 'name="confirm" value="yes"' in asked.text
    )
    session.expire_all()
    assert session.scalar(select(Partner.removed_on).where(Partner.name == "Rainbow")) is None
    removed = pages.post("/partners/Rainbow/remove", {"confirm": "yes"}, from_page="/partners")
    assert removed.status_code == 303
    assert "Partner Rainbow removed." in pages.client.get(removed.headers["location"]).text
    # The notices are said only when they are so: a link someone sends cannot make the page claim them.
    assert "saved." not in pages.client.get("/partners", params={"saved": "Nobody"}).text
    assert "removed." not in pages.client.get("/partners", params={"removed": "Nobody"}).text
    session.expire_all()
    assert session.scalar(select(Partner.removed_on).where(Partner.name == "Rainbow")) is not None


def test_a_caseworker_records_consent_refers_and_downloads_in_russian(pages, factory, session) -> None:
    from app.referrals import service as referral_service

    identity, verify = _keys()
    referral_service.add_partner(
        session=session, actor="test", name="Shelter", age_recipient=str(identity.to_public()), verify_key=verify
    )
    worker = factory.account("caseworker")
    case = factory.case(worker.user, full_name="CANARY-PAGE-NAME", notes="CANARY-PAGE-NOTE")
    pages.signed_in(worker)
    assert pages.post("/language", {"locale": "ru", "next": "/referrals"}, from_page="/referrals").status_code == 303
    page = pages.client.get(f"/cases/{case.id}/referrals")
    assert page.status_code == 200 and "Записать согласие" in page.text and "Согласий не записано." in page.text
    # No consent yet: no referral form, and the page says what comes first.
    assert "Чтобы передать случай, сначала запишите согласие человека (выше)." in page.text
    assert f'action="/cases/{case.id}/referrals"' not in page.text
    url = f"/cases/{case.id}/consents"
    # No field ticked: the mistake is explained and the typed date stays.
    missing = pages.post(
        url, {"partner": "Shelter", "given_on": "2026-01-02", "how": "written"}, from_page=f"/cases/{case.id}/referrals"
    )
    assert missing.status_code == 422 and 'value="2026-01-02"' in missing.text
    assert "Отметьте хотя бы один пункт." in missing.text and "List should have" not in missing.text
    done = pages.post(
        url,
        {"partner": "Shelter", "given_on": case.opened_on.isoformat(), "how": "written", "fields": ["full_name"]},
        from_page=f"/cases/{case.id}/referrals",
    )
    assert done.status_code == 303, done.text
    page = pages.client.get(f"/cases/{case.id}/referrals")
    consent_id = page.text.split('name="consent_id"')[1].split('value="')[1].split('"')[0]
    refused = pages.post(
        f"/cases/{case.id}/referrals",
        {"partner": "Shelter", "consent_id": consent_id, "fields": ["full_name", "case_notes"]},
        from_page=f"/cases/{case.id}/referrals",
    )
    assert refused.status_code == 409 and "case_notes" in refused.text
    # The service's reason comes in the caseworker's language too, not only the lead.
    assert "Сейчас это невозможно: согласие охватывает не все выбранные поля" in refused.text
    assert session.scalar(select(Referral).where(Referral.case_id == case.id)) is None
    made = pages.post(
        f"/cases/{case.id}/referrals",
        {"partner": "Shelter", "consent_id": consent_id, "fields": ["full_name"]},
        from_page=f"/cases/{case.id}/referrals",
    )
    assert made.status_code == 303
    referral = session.scalar(select(Referral).where(Referral.case_id == case.id))
    assert referral is not None
    case_page = pages.client.get(f"/cases/{case.id}")
    # On the case's timeline, the status agreeing with «передача» (feminine), not the neuter «Отправлено».
    assert referral.code in case_page.text and "Отправлена" in case_page.text and "Отправлено" not in case_page.text
    download = pages.post(f"/referrals/{referral.id}/package", from_page=f"/cases/{case.id}/referrals")
    assert download.status_code == 200 and b"CANARY" not in download.content
    plain = bytes(pyrage.decrypt(download.content, [identity])).decode()
    assert "CANARY-PAGE-NAME" in plain and "CANARY-PAGE-NOTE" not in plain
    assert session.scalar(select(AuditEntry.actor).where(AuditEntry.action == "referral.package")) == worker.username
    listing = pages.client.get("/referrals")
    assert listing.status_code == 200 and referral.code in listing.text and "Переданные случаи" in listing.text
    # A sent referral may become accepted, declined or withdrawn, never "sent" again: only those are offered.
    referrals_page = pages.client.get(f"/cases/{case.id}/referrals").text
    offered = referrals_page.split(f'id="move-{referral.id}"', 1)[1].split("</select>", 1)[0]
    assert re.findall(r'value="(\w+)"', offered) == ["accepted", "declined", "withdrawn"]
    # A move that ends it is asked first; nothing changes until confirmed.
    status = f"/referrals/{referral.id}/status"
    asked = pages.post(status, {"to": "declined"}, from_page=f"/cases/{case.id}/referrals")
    assert asked.status_code == 200 and f"Перевести передачу {referral.code} в статус «Отклонена»?" in asked.text
    assert 'type="hidden" name="to" value="declined"' in asked.text
    session.expire_all()
    assert session.get(Referral, referral.id).status == "sent"
    accepted = pages.post(status, {"to": "accepted"}, from_page=f"/cases/{case.id}/referrals")
    assert accepted.status_code == 303
    assert f"Передача {referral.code} теперь: Принята." in pages.client.get(accepted.headers["location"]).text
    claimed = pages.client.get(accepted.headers["location"].replace("to=accepted", "to=withdrawn")).text
    assert "теперь: Отозвана" not in claimed
    session.expire_all()
    assert session.get(Referral, referral.id).status == "accepted"
    # Withdrawing the consent ends its referral: asked first (in Russian), nothing changes until confirmed.
    withdraw = f"/cases/{case.id}/consents/{consent_id}/withdraw"
    asked = pages.post(withdraw, from_page=f"/cases/{case.id}/referrals")
    assert asked.status_code == 200 and "Отозвать согласие на передачу партнёру Shelter?" in asked.text
    session.expire_all()
    assert session.get(Referral, referral.id).status == "accepted"
    done = pages.post(withdraw, {"confirm": "yes"}, from_page=f"/cases/{case.id}/referrals")
    assert done.status_code == 303
    assert (
        "Согласие отозвано; ни одна передача по нему не остаётся открытой."
        in pages.client.get(done.headers["location"]).text
    )
    session.expire_all()
    assert session.get(Referral, referral.id).status == "withdrawn"
    assert "Отправлена" in listing.text and "Дата отправки" in listing.text
    referrals_page = pages.client.get(f"/cases/{case.id}/referrals").text
    assert "Чтобы передать случай" not in referrals_page and "Передать этот случай" in referrals_page


# A refusal that names the partner or the code is translated, then filled in: in Russian too it says whose
# signature failed and which referral came twice.
REFUSALS = {
    "en": ("signature does not match Sender", "referral R-ABCD-EF from Sender was already imported on"),
    "ru": (
        "отклонено: подпись не совпадает с ключом проверки партнёра Sender",
        "отклонено: передача R-ABCD-EF от Sender уже импортирована",
    ),
}


@pytest.mark.parametrize("locale", ["en", "ru"])
def test_a_coordinator_imports_a_package_through_the_upload_page(pages, factory, session, tmp_path, locale) -> None:
    """The upload page runs the same checks as the command line: a forged package is refused, a real one lands."""
    from app.crypto import service as crypto
    from app.referrals import keys, package
    from app.referrals import service as referral_service

    ours, sender_identity = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    sender = Ed25519PrivateKey.generate()
    sender_key = base64.b64encode(sender.public_key().public_bytes_raw()).decode()
    referral_service.add_partner(
        session=session,
        actor="test",
        name="Sender",
        age_recipient=str(sender_identity.to_public()),
        verify_key=sender_key,
    )
    assert sender_key != keys.verify_key(crypto.keyring_of(session))
    worker = factory.account("caseworker")
    coordinator = factory.account("coordinator")
    body = {
        "format": package.PACKAGE,
        "version": 1,
        "code": "R-ABCD-EF",
        "from": sender_key,
        "to": str(ours.to_public()),
        "sent_on": "2026-11-30",
        "fields": {"full_name": "CANARY-UPLOADED", "risk": "medium"},
    }
    genuine = package.encrypt(package.sign(body, key=sender), recipient=str(ours.to_public()))
    forged = package.encrypt(package.sign(body, key=Ed25519PrivateKey.generate()), recipient=str(ours.to_public()))
    pages.signed_in(coordinator)
    if locale != "en":
        assert (
            pages.post("/language", {"locale": locale, "next": "/referrals"}, from_page="/referrals").status_code == 303
        )
    identity = ("identity.txt", f"{ours}\n".encode(), "text/plain")

    def upload(data: bytes):  # type: ignore[no-untyped-def]
        return pages.client.post(
            "/referrals/import",
            data={"csrf_token": pages.token("/referrals"), "assign": worker.username},
            files={"package": ("p.age", data, "application/octet-stream"), "identity": identity},
        )

    forged_reason, twice_reason = REFUSALS[locale]
    refused = upload(forged)
    assert refused.status_code == 422 and forged_reason in refused.text
    done = upload(genuine)
    assert done.status_code == 200 and "C-" in done.text
    again = upload(genuine)
    assert again.status_code == 422 and twice_reason in again.text
    from app.referrals.models import ReceivedReferral

    (row,) = session.scalars(select(ReceivedReferral)).all()
    assert row.code == "R-ABCD-EF" and row.imported_by == coordinator.username
    assert "CANARY-UPLOADED" not in done.text  # a coordinator never sees a protected field

    # The coordinator answers; the file is signed by this installation and readable only by the sender.
    answer = pages.post(
        "/referrals/received/R-ABCD-EF/answer", {"status": "accepted", "partner": "Sender"}, from_page="/referrals"
    )
    assert answer.status_code == 200
    doc = json.loads(bytes(pyrage.decrypt(answer.content, [sender_identity])))
    assert doc["status"] == "accepted" and doc["code"] == "R-ABCD-EF"
    assert package.signature_valid(doc, verify_key=keys.verify_key(crypto.keyring_of(session)))
    assert session.scalar(select(ReceivedReferral.status)) == "accepted"


def test_a_coordinator_imports_a_partners_answer_through_the_upload_page(pages, factory, session, client) -> None:
    from app.referrals import package
    from app.referrals import service as referral_service

    ours, partner_identity = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    partner_key = Ed25519PrivateKey.generate()
    verify = base64.b64encode(partner_key.public_key().public_bytes_raw()).decode()
    referral_service.add_partner(
        session=session,
        actor="test",
        name="Partner",
        age_recipient=str(partner_identity.to_public()),
        verify_key=verify,
    )
    made, case = referral_of_region(session, factory, partner="Partner")
    pages.signed_in(factory.account("coordinator"))
    body = {
        "format": package.STATUS,
        "version": 1,
        "code": made.code,
        "from": verify,
        "to": str(ours.to_public()),
        "status": "accepted",
        "on": case.opened_on.isoformat(),
    }

    def upload(key: Ed25519PrivateKey):  # type: ignore[no-untyped-def]
        data = package.encrypt(package.sign(body, key=key), recipient=str(ours.to_public()))
        return pages.client.post(
            "/referrals/answer-import",
            data={"csrf_token": pages.token("/referrals")},
            files={
                "package": ("a.age", data, "application/octet-stream"),
                "identity": ("i", f"{ours}\n".encode(), "text/plain"),
            },
        )

    forged = upload(Ed25519PrivateKey.generate())
    assert forged.status_code == 422 and "not signed by the partner" in forged.text
    assert session.get(Referral, made.id).status == "sent"  # type: ignore[union-attr]
    done = upload(partner_key)
    assert done.status_code == 200 and made.code in done.text
    session.expire_all()
    assert session.get(Referral, made.id).status == "accepted"  # type: ignore[union-attr]
