"""The caseworker's day through the pages: nothing typed is lost to an ended session, notes and
corrections after saving, terminal moves only when confirmed, the coordinators' queue."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta

from sqlalchemy import func, select, update

from app.auth import sessions
from app.auth.models import WebSession
from app.cases import service as case_service
from app.cases.models import Case
from app.contacts import service as contact_service
from app.contacts.models import Contact
from app.web.models import HeldForm
from tests.web.conftest import csrf_of
from tests.web.test_domain_pages import intake, record

LONG_NOTE = "He called from a neighbour's phone. " * 40 + "Canary 6617 at the very end."


def _expire(session, user, settings) -> None:
    session.execute(
        update(WebSession)
        .where(WebSession.user_id == user.id)
        .values(last_seen_at=sessions._now() - timedelta(minutes=settings.session_idle_minutes, seconds=1))
    )
    session.commit()


def _sign_in_again(pages, account):
    # The first sign-in spent this time step's code; the authenticator's next one is allowed (drift).
    return pages.sign_in(account, otp=account.totp().at(time.time() + 30))


def _held_fields(html: str) -> tuple[str, dict[str, list[str]]]:
    action = re.search(r'<form method="post" action="([^"]+)" data-keep>', html)
    assert action, "the held form is not on the page"
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input (?:type="hidden" |id="[^"]+" )?name="([^"]+)" value="([^"]*)"', html):
        fields.setdefault(name, []).append(value)
    for name, value in re.findall(r'<textarea id="[^"]+" name="([^"]+)" rows="\d+">(.*?)</textarea>', html, re.S):
        fields.setdefault(name, []).append(value)
    return action.group(1), fields


def _unescape(text: str) -> str:
    return text.replace("&#39;", "'").replace("&amp;", "&").replace("&#34;", '"').replace("&quot;", '"')


def test_a_form_posted_after_the_session_ended_is_held_sealed_and_saved_after_signing_in(
    pages, client, factory, session, settings
):
    account = factory.account("caseworker")
    pages.signed_in(account)
    token = pages.token("/contacts/new")
    _expire(session, account.user, settings)
    posted = client.post(
        "/contacts/new",
        data={**intake(notes=LONG_NOTE), "csrf_token": token, "needs": ["legal", "shelter"]},
        follow_redirects=False,
    )
    assert posted.status_code == 303 and posted.headers["location"] == "/login?ended=1&held=1"
    rows = session.scalars(select(HeldForm)).all()
    assert len(rows) == 1 and rows[0].user_id == account.user.id
    assert b"6617" not in rows[0].payload_ct and b"neighbour" not in rows[0].payload_ct
    assert session.scalar(select(func.count()).select_from(Contact)) == 0
    signed = _sign_in_again(pages, account)
    assert signed.headers["location"] == "/held"
    shown = client.get("/held")
    assert "Canary 6617 at the very end." in shown.text
    # Handed back once: the sealed copy and its key are gone from the server.
    assert session.scalar(select(func.count()).select_from(HeldForm)) == 0
    assert client.get("/held", follow_redirects=False).headers["location"] == "/"
    action, fields = _held_fields(shown.text)
    assert action == "/contacts/new" and sorted(fields["needs"]) == ["legal", "shelter"]
    fields["csrf_token"] = [csrf_of(shown.text)]
    saved = client.post(action, data={k: v if len(v) > 1 else v[0] for k, v in fields.items()}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    contact = session.scalar(select(Contact))
    detail = contact_service.read_contact(session=session, actor=account.user, contact_id=contact.id)
    assert _unescape(detail.notes) == LONG_NOTE and detail.needs == ["legal", "shelter"]


def test_a_held_form_goes_to_its_owner_only(pages, client, factory, session, settings):
    owner, other = factory.account("caseworker"), factory.account("caseworker")
    pages.signed_in(owner)
    token = pages.token("/contacts/new")
    _expire(session, owner.user, settings)
    client.post("/contacts/new", data={**intake(notes=LONG_NOTE), "csrf_token": token}, follow_redirects=False)
    # Someone else signs in on the same browser: they are not shown the form, and it keeps waiting.
    pages.signed_in(other)
    page = client.get("/held")
    assert "6617" not in page.text
    assert session.scalar(select(func.count()).select_from(HeldForm)) == 1
    pages.client.post("/lock", data={"csrf_token": pages.token("/contacts/new")})
    _sign_in_again(pages, owner)
    assert "Canary 6617 at the very end." in client.get("/held").text


def test_a_post_without_a_session_is_never_held(pages, client, factory, session):
    # A cross-site post carries no session cookie (SameSite=Strict): nothing can be planted for anyone.
    page = client.get("/login")
    client.post(
        "/contacts/new", data={**intake(notes="planted"), "csrf_token": csrf_of(page.text)}, follow_redirects=False
    )
    assert session.scalar(select(func.count()).select_from(HeldForm)) == 0


def test_lock_now_keeps_the_open_form(pages, client, factory, session):
    account = factory.account("caseworker")
    pages.signed_in(account)
    token = pages.token("/contacts/new")
    locked = client.post(
        "/lock",
        data={"csrf_token": token, "keep_action": "/contacts/new", **intake(notes="half a note 4471")},
        follow_redirects=False,
    )
    assert locked.headers["location"] == "/login?locked=1"
    assert client.get("/contacts/new", follow_redirects=False).status_code == 303  # really locked
    assert _sign_in_again(pages, account).headers["location"] == "/held"
    assert "half a note 4471" in client.get("/held").text


def test_a_terminal_move_without_confirmation_does_nothing(pages, client, factory, session):
    account = factory.account("caseworker")
    contact = record(session, account.user)
    case = case_service.open_case(session=session, actor=account.user, contact_id=contact.id)
    pages.signed_in(account)
    today = date.today().isoformat()
    asked = pages.post(
        f"/cases/{case.id}/transitions",
        {"to": "declined", "on": today, "note": "she said no"},
        from_page=f"/cases/{case.id}",
    )
    assert asked.status_code == 200 and "Nothing has changed yet." in asked.text
    assert 'name="confirm" value="yes"' in asked.text and "she said no" in asked.text
    session.expire_all()
    assert session.get(Case, case.id).status == "new"
    done = pages.post(
        f"/cases/{case.id}/transitions",
        {"to": "declined", "on": today, "confirm": "yes"},
        from_page=f"/cases/{case.id}",
    )
    assert done.status_code == 303
    session.expire_all()
    assert session.get(Case, case.id).status == "declined"


def test_the_main_button_is_the_usual_next_step(pages, client, factory, session):
    account = factory.account("caseworker")
    contact = record(session, account.user)
    case = case_service.open_case(session=session, actor=account.user, contact_id=contact.id)
    pages.signed_in(account)
    page = client.get(f"/cases/{case.id}").text
    assert re.search(r'<button type="submit" name="to" value="verifying" class="primary">', page)
    pages.post(
        f"/cases/{case.id}/transitions",
        {"to": "verifying", "on": date.today().isoformat()},
        from_page=f"/cases/{case.id}",
    )
    page = client.get(f"/cases/{case.id}").text
    # Verifying and not verified: asking for the second person's check is the main action, not Pause.
    assert re.search(
        r'action="/cases/[^"]+/verification-request">(\s*<input[^>]+>)+\s*<button type="submit" class="primary">', page
    )
    assert not re.search(r'value="paused" class="primary"', page)


def test_notes_and_corrections_through_the_pages(pages, client, factory, session):
    account = factory.account("caseworker")
    contact = record(session, account.user, alias="Zarema")
    pages.signed_in(account)
    added = pages.post(
        f"/contacts/{contact.id}/notes", {"text": "rang back, safe for now"}, from_page=f"/contacts/{contact.id}"
    )
    assert added.status_code == 303
    fixed = pages.post(
        f"/contacts/{contact.id}/edit",
        {"alias": "Zarema B.", "handle": "+7 928 000 11 22", "notes": intake()["notes"]},
        from_page=f"/contacts/{contact.id}",
    )
    assert fixed.status_code == 303
    page = client.get(f"/contacts/{contact.id}").text
    assert "rang back, safe for now" in page and "Zarema B." in page
    assert re.search(r"before:</span> Zarema<", page)
    empty = pages.post(f"/contacts/{contact.id}/notes", {"text": ""}, from_page=f"/contacts/{contact.id}")
    assert empty.status_code == 422 and 'aria-invalid="true"' in empty.text
    outcome = pages.post(
        f"/contacts/{contact.id}/outcome", {"outcome": "referred"}, from_page=f"/contacts/{contact.id}"
    )
    assert outcome.status_code == 303
    # The page says what was saved, not only the select's new position.
    assert "Outcome saved: Referred elsewhere." in client.get(outcome.headers["location"]).text
    session.expire_all()
    assert session.get(Contact, contact.id).outcome == "referred"


def test_the_coordinators_queue_page_and_its_count(pages, client, factory, session):
    worker = factory.user("caseworker")
    coordinator = factory.account("coordinator")
    danger = record(session, worker, risk="immediate")
    pages.signed_in(coordinator)
    page = client.get("/attention")
    assert page.status_code == 200 and danger.code in page.text
    assert re.search(r'Needs attention <span class="count">1</span>', page.text)
    item = re.search(r'action="(/attention/[^"]+/resolve)"', page.text).group(1)
    done = pages.post(item, from_page="/attention")
    after = client.get(done.headers["location"]).text
    assert danger.code not in after and "Marked done: the entry has left the queue." in after
    assert "Marked done" not in client.get("/attention").text  # said once, after the press


def test_the_known_bad_page_adds_lists_without_handles_and_removes(pages, client, factory, session):
    from app.contacts.models import FlaggedHandle

    coordinator = factory.account("coordinator")
    pages.signed_in(coordinator)
    added = pages.post("/known-bad", {"handle": "@trap_4410", "reason": "posed as a brother"})
    assert added.status_code == 303
    page = client.get("/known-bad").text
    assert "posed as a brother" in page and "trap_4410" not in page
    again = pages.post("/known-bad", {"handle": "@TRAP_4410", "reason": ""})
    assert again.status_code == 409 and "already on the list" in again.text and "@TRAP_4410" in again.text
    entry = session.scalar(select(FlaggedHandle))
    # Removing destroys the entry's key: the first press only asks, naming the entry, and changes nothing.
    asked = pages.post(f"/known-bad/{entry.id}/remove", from_page="/known-bad")
    assert asked.status_code == 200 and "Take this entry off the list?" in asked.text
    assert coordinator.username in asked.text.split('id="confirm"', 1)[1].split("</h2>", 1)[0]
    assert 'name="confirm" value="yes"' in asked.text and "Nothing has changed yet." in asked.text
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(FlaggedHandle)) == 1
    done = pages.post(f"/known-bad/{entry.id}/remove", {"confirm": "yes"}, from_page="/known-bad")
    assert done.status_code == 303 and done.headers["location"].endswith("/known-bad?removed=1")
    assert "Taken off the list." in client.get(done.headers["location"]).text
    assert session.scalar(select(func.count()).select_from(FlaggedHandle)) == 0


def test_the_search_page_finds_own_contacts_by_handle(pages, client, factory, session):
    account = factory.account("caseworker")
    mine = record(session, account.user, handle="+7 928 000 11 22")
    stranger = record(session, factory.user("caseworker"), handle="+7 928 000 11 22")
    pages.signed_in(account)
    page = client.get("/search", params={"q": "89280001122"}).text
    assert mine.code in page and stranger.code not in page


def test_own_list_shows_names_only_when_asked_and_every_opening_is_audited(pages, client, factory, session):
    from app.audit.models import AuditEntry

    account = factory.account("caseworker")
    mine = record(session, account.user, alias="Zarema 3391")
    pages.signed_in(account)
    assert "Zarema 3391" not in client.get("/contacts").text

    def lookups() -> int:
        return session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "contact.lookup", AuditEntry.target == mine.code)
        )

    before = lookups()
    assert "Zarema 3391" in client.get("/contacts", params={"names": 1}).text
    assert lookups() == before + 1


def test_intake_past_the_hourly_limit_keeps_what_was_typed_and_the_alarm(pages, client, factory, session):
    from app.audit.models import AuditEntry
    from app.crypto import service as crypto

    settings = crypto.settings_of(session).model_copy(update={"intake_per_hour": 1})
    crypto.bind(session, settings=settings, keyring=crypto.keyring_of(session))
    account = factory.account("caseworker")
    pages.signed_in(account)
    assert pages.post("/contacts/new", intake()).status_code == 303
    refused = pages.post("/contacts/new", intake(notes="second call, typed in full 5530"))
    assert refused.status_code == 429
    assert "second call, typed in full 5530" in refused.text and "Your coordinator has been told" in refused.text
    alarms = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "alarm.intake_rate")
    assert session.scalar(alarms) == 1
    assert session.scalar(select(func.count()).select_from(Contact)) == 1


def test_empty_lists_say_why_and_a_page_past_the_end_points_back(pages, client, factory, session):
    account = factory.account("caseworker")
    pages.signed_in(account)
    # Nothing recorded yet: said as such, with the way to start, not as "nothing matches".
    first = client.get("/contacts").text
    assert "You have not recorded a contact yet." in first and 'href="/contacts/new"' in first
    assert "No contacts match." not in first
    assert "No case is assigned to you yet." in client.get("/cases").text
    record(session, account.user)
    session.commit()
    # A filter that finds nothing is a filter that finds nothing.
    filtered = client.get("/contacts", params={"region": "abroad"}).text
    assert "No contacts match." in filtered and "You have not recorded" not in filtered
    # A page past the last says which is the last and links to it.
    past = client.get("/contacts", params={"page": 99}).text
    assert "There is no page 99: the last is page 1." in past and 'href="/contacts?page=1"' in past
    assert "You have not recorded" not in past


def test_an_outcome_refused_for_an_opened_case_says_why_in_russian(pages, client, factory, session):
    account = factory.account("caseworker")
    contact = record(session, account.user)
    case_service.open_case(session=session, actor=account.user, contact_id=contact.id)
    pages.signed_in(account)
    page = f"/contacts/{contact.id}"
    assert pages.post("/language", {"locale": "ru", "next": page}, from_page=page).status_code == 303
    refused = pages.post(f"{page}/outcome", {"outcome": "referred"}, from_page=page)
    assert refused.status_code == 409
    assert "по этому обращению открыт случай; его итог остаётся «Открыт случай»" in refused.text
    assert "outcome stays" not in refused.text
    session.expire_all()
    assert session.get(Contact, contact.id).outcome == "case_opened"
