"""Intake, lists and case pages through the browser-facing routes (no browser: the test client)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.cases import service as case_service
from app.contacts import service as contact_service
from app.contacts.models import Contact
from app.contacts.schemas import ContactIn
from app.errors import Conflict

SECRET_NOTE = "met at the bus station, brother detained"


def intake(**changes):
    body = {
        "received_on": date.today().isoformat(),
        "channel": "signal",
        "region": "ingushetia",
        "language": "inh",
        "risk": "high",
        "alias": "Zarema",
        "handle": "+7 928 000 11 22",
        "notes": SECRET_NOTE,
    }
    body.update(changes)
    return body


def record(session, user, **changes):
    data = ContactIn.model_validate({k: v for k, v in intake(**changes).items()})
    return contact_service.record_contact(session=session, actor=user, data=data)


def test_intake_saves_and_shows_the_contact_with_its_code(pages, client, factory, session):
    account = factory.account("caseworker")
    pages.signed_in(account)
    form = client.get("/contacts/new")
    assert f'value="{date.today().isoformat()}"' in form.text
    assert "autofocus" in form.text
    body = intake()
    response = pages.post("/contacts/new", {**body, "needs": ["evacuation", "medical"]})
    assert response.status_code == 303, response.text
    shown = client.get(response.headers["location"])
    assert shown.status_code == 200
    contact = session.scalar(select(Contact).where(Contact.recorded_by_id == account.user.id))
    assert contact is not None and contact.code in shown.text
    assert contact.needs == "evacuation,medical"
    assert SECRET_NOTE in shown.text  # the recorder reads it back, decrypted
    assert contact.notes_ct is not None and SECRET_NOTE.encode() not in contact.notes_ct


def test_a_mistake_comes_back_422_with_the_message_and_everything_typed(pages, factory, session):
    pages.signed_in(factory.account("caseworker"))
    future = (date.today() + timedelta(days=2)).isoformat()
    response = pages.post(
        "/contacts/new", {**intake(received_on=future), "needs": ["shelter"]}, from_page="/contacts/new"
    )
    assert response.status_code == 422
    assert 'id="received_on-error"' in response.text
    assert "must not be in the future" in response.text
    for value in (future, "Zarema", "+7 928 000 11 22", SECRET_NOTE, 'value="inh"'):
        assert value in response.text
    assert '<option value="ingushetia" selected>' in response.text
    assert '<option value="high" selected>' in response.text
    assert 'value="shelter" checked' in response.text
    assert session.scalar(select(func.count()).select_from(Contact)) == 0


def test_a_malformed_date_and_a_missing_choice_are_each_named(pages, factory):
    pages.signed_in(factory.account("caseworker"))
    response = pages.post("/contacts/new", intake(received_on="2026-02-30", risk=""), from_page="/contacts/new")
    assert response.status_code == 422
    assert 'id="received_on-error"' in response.text
    assert 'id="risk-error"' in response.text
    assert 'id="alias-error"' not in response.text


def test_flagged_and_repeat_handles_are_warned_about_right_after_saving(pages, client, factory, session):
    account = factory.account("caseworker")
    earlier = record(session, account.user, handle="@same_person")
    pages.signed_in(account)
    response = pages.post("/contacts/new", intake(handle="@Same_Person"), from_page="/contacts/new")
    page = client.get(response.headers["location"])
    assert "This handle called before" in page.text
    assert f'<a href="/contacts/{earlier.id}">{earlier.code}</a>' in page.text


def test_contacts_list_shows_own_contacts_and_filters(pages, client, factory, session):
    account = factory.account("caseworker")
    mine = record(session, account.user, region="moscow")
    other = record(session, account.user, region="dagestan")
    stranger = record(session, factory.user("caseworker"), region="moscow")
    pages.signed_in(account)
    listing = client.get("/contacts")
    assert mine.code in listing.text and other.code in listing.text
    assert stranger.code not in listing.text
    filtered = client.get("/contacts", params={"region": "moscow"})
    assert mine.code in filtered.text and other.code not in filtered.text


def test_another_caseworkers_case_page_is_404(pages, client, factory, session):
    owner = factory.account("caseworker")
    contact = record(session, owner.user)
    case = case_service.open_case(session=session, actor=owner.user, contact_id=contact.id)
    pages.signed_in(factory.account("caseworker"))
    assert client.get(f"/cases/{case.id}").status_code == 404
    assert client.get(f"/contacts/{contact.id}").status_code == 404
    assert client.get("/cases/not-a-uuid").status_code == 404
    page = client.get(f"/cases/{case.id}")
    assert case.code not in page.text and "<html" in page.text


def test_case_page_offers_only_allowed_moves_and_a_coordinator_sees_nothing_decrypted(pages, client, factory, session):
    owner = factory.account("caseworker")
    contact = record(session, owner.user)
    case_service.open_case(session=session, actor=owner.user, contact_id=contact.id)
    pages.signed_in(owner)
    # Opening from the page (a second case from the same contact is refused by the service).
    case_id = case_service.list_cases(session=session, actor=owner.user).items[0].id
    page = client.get(f"/cases/{case_id}")
    assert 'name="to" value="verifying"' in page.text
    assert 'name="to" value="planning"' not in page.text  # not verified yet
    assert 'name="to" value="evacuated"' not in page.text
    assert 'action="/cases/' in page.text and "/verify" not in page.text  # the opener cannot verify
    moved = pages.post(
        f"/cases/{case_id}/transitions",
        {"to": "verifying", "on": date.today().isoformat()},
        from_page=f"/cases/{case_id}",
    )
    assert moved.status_code == 303
    illegal = pages.post(
        f"/cases/{case_id}/transitions",
        {"to": "evacuated", "on": date.today().isoformat()},
        from_page=f"/cases/{case_id}",
    )
    assert illegal.status_code == 409
    assert 'class="error"' in illegal.text

    coordinator = factory.account("coordinator")
    client.cookies.clear()
    pages.signed_in(coordinator)
    seen = client.get(f"/cases/{case_id}")
    assert seen.status_code == 200
    assert "Zarema" not in seen.text and "+7 928" not in seen.text
    assert "/verify" in seen.text and "/assign" in seen.text
    verified = pages.post(f"/cases/{case_id}/verify", {}, from_page=f"/cases/{case_id}")
    assert verified.status_code == 303
    assert "Your check is recorded: the case is verified." in client.get(verified.headers["location"]).text
    assert 'name="to" value="planning"' in client.get(f"/cases/{case_id}").text
    reads = session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.actor == coordinator.username, AuditEntry.action.like("%.read"))
    )
    assert reads == 0


@pytest.mark.parametrize(
    "locale, expected",
    [
        ("en", "That change is not possible now: a case cannot move from Verifying to Evacuated"),
        ("ru", "Это изменение сейчас невозможно: случай нельзя перевести из статуса «На проверке» в «Эвакуирован»"),
    ],
)
def test_a_refused_move_says_why_in_the_visitors_language(pages, client, factory, session, locale, expected):
    owner = factory.account("caseworker")
    contact = record(session, owner.user)
    case = case_service.open_case(session=session, actor=owner.user, contact_id=contact.id)
    pages.signed_in(owner)
    page = f"/cases/{case.id}"
    assert pages.post("/language", {"locale": locale, "next": page}, from_page=page).status_code == 303
    moved = pages.post(f"{page}/transitions", {"to": "verifying", "on": date.today().isoformat()}, from_page=page)
    assert moved.status_code == 303
    illegal = pages.post(f"{page}/transitions", {"to": "evacuated", "on": date.today().isoformat()}, from_page=page)
    # The reason is translated, then the two statuses are filled in by their names in that language.
    assert illegal.status_code == 409 and expected in illegal.text
    # The API keeps the reason as the services give it: English, the status codes filled in.
    with pytest.raises(Conflict) as refused:
        case_service.transition(session=session, actor=owner.user, case_id=case.id, to="evacuated", on=date.today())
    assert refused.value.detail["message"] == "a case cannot move from verifying to evacuated"


def test_coordinator_assigns_a_case_to_another_caseworker(pages, client, factory, session):
    owner = factory.account("caseworker")
    other = factory.account("caseworker")
    contact = record(session, owner.user)
    case = case_service.open_case(session=session, actor=owner.user, contact_id=contact.id)
    pages.signed_in(factory.account("coordinator"))
    response = pages.post(f"/cases/{case.id}/assign", {"user": other.username}, from_page=f"/cases/{case.id}")
    assert response.status_code == 303
    assert f"The case is now with {other.username}." in client.get(response.headers["location"]).text
    assert case_service.case_view(session=session, actor=factory.user("coordinator"), case_id=case.id).assigned_to == (
        other.username
    )
    bad = pages.post(f"/cases/{case.id}/assign", {"user": "nobody-at-all"}, from_page=f"/cases/{case.id}")
    assert bad.status_code == 422


def test_roles_without_access_get_403_pages(pages, client, factory):
    pages.signed_in(factory.account("analyst"))
    for path in ("/contacts/new", "/contacts", "/cases", "/admin/users"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "Not allowed" in response.text
    assert client.get("/dashboard").status_code == 200
    assert client.get("/exports").status_code == 200
