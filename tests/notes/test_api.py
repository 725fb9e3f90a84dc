"""Notes and corrections over the JSON API: appended at any time, read only by who may read the record,
sealed under the record's key (gone with a shred), previous values kept sealed in the history."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.lifecycle import service as lifecycle
from app.notes.models import FieldCorrection, RecordNote

API = "/api/v1"
CONTACT = {
    "received_on": date.today().isoformat(),
    "channel": "phone",
    "region": "chechnya",
    "language": "ru",
    "risk": "high",
    "alias": "Zelim",
    "handle": "+7 928 555-01-47",
}


def _contact(client, headers, **extra):
    response = client.post(f"{API}/contacts", json={**CONTACT, **extra}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_note_on_a_contact_is_sealed_dated_attributed_audited_and_only_its_reader_sees_it(client, factory, session):
    worker, other, admin = factory.user("caseworker"), factory.user("caseworker"), factory.user("admin")
    contact = _contact(client, factory.headers(worker))
    added = client.post(
        f"{API}/contacts/{contact['id']}/notes",
        json={"text": "Called back: canary 5521"},
        headers=factory.headers(worker),
    )
    assert added.status_code == 201, added.text
    assert added.json() == {
        "written_on": date.today().isoformat(),
        "author": worker.username,
        "text": "Called back: canary 5521",
    }
    row = session.scalar(select(RecordNote).where(RecordNote.subject_id == uuid.UUID(contact["id"])))
    assert row is not None and b"5521" not in row.text_ct
    assert (
        session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "contact.note", AuditEntry.target == contact["code"])
        )
        == 1
    )
    mine = client.get(f"{API}/contacts/{contact['id']}", headers=factory.headers(worker)).json()
    assert [n["text"] for n in mine["added_notes"]] == ["Called back: canary 5521"]
    # Another caseworker cannot read or add; the admin sees that a note exists, never its text.
    assert client.get(f"{API}/contacts/{contact['id']}", headers=factory.headers(other)).status_code == 404
    refused = client.post(f"{API}/contacts/{contact['id']}/notes", json={"text": "x"}, headers=factory.headers(other))
    assert refused.status_code == 404
    seen = client.get(f"{API}/contacts/{contact['id']}", headers=factory.headers(admin))
    assert seen.json()["added_notes"][0]["text"] is None and "5521" not in seen.text


def test_case_notes_are_absent_for_a_coordinator_and_unreadable_after_a_shred(client, factory, session):
    worker, coordinator = factory.user("caseworker"), factory.user("coordinator")
    contact = _contact(client, factory.headers(worker))
    case = client.post(f"{API}/cases", json={"contact_id": contact["id"]}, headers=factory.headers(worker)).json()
    for text in ("first canary 7730", "second canary 7730"):
        response = client.post(f"{API}/cases/{case['id']}/notes", json={"text": text}, headers=factory.headers(worker))
        assert response.status_code == 201
    read = client.get(f"{API}/cases/{case['id']}", headers=factory.headers(worker)).json()
    assert [n["text"] for n in read["added_notes"]] == ["first canary 7730", "second canary 7730"]
    view = client.get(f"{API}/cases/{case['id']}", headers=factory.headers(coordinator))
    assert len(view.json()["added_notes"]) == 2 and "7730" not in view.text
    assert (
        client.post(
            f"{API}/cases/{case['id']}/notes", json={"text": "x"}, headers=factory.headers(coordinator)
        ).status_code
        == 403
    )
    lifecycle.shred_case(session=session, actor="admin", code=case["code"])
    session.flush()
    after = client.get(f"{API}/cases/{case['id']}", headers=factory.headers(worker))
    assert after.json()["redacted"] is True and "7730" not in after.text
    assert all(
        r.text_ct is None
        for r in session.scalars(select(RecordNote).where(RecordNote.subject_id == uuid.UUID(case["id"])))
    )
    assert (
        client.post(
            f"{API}/cases/{case['id']}/notes", json={"text": "late"}, headers=factory.headers(worker)
        ).status_code
        == 409
    )


def test_a_correction_keeps_the_old_value_sealed_in_history_and_moves_the_handle_index(client, factory, session):
    worker = factory.user("caseworker")
    headers = factory.headers(worker)
    contact = _contact(client, headers, alias="Zelim 9914")
    fixed = client.patch(
        f"{API}/contacts/{contact['id']}", json={"alias": "Zelimkhan", "handle": "@zelim_new"}, headers=headers
    )
    assert fixed.status_code == 200, fixed.text
    body = fixed.json()
    assert body["alias"] == "Zelimkhan" and body["handle"] == "@zelim_new"
    history = {c["field"]: c for c in body["corrections"]}
    assert history["alias"]["previous"] == "Zelim 9914" and history["alias"]["actor"] == worker.username
    assert history["handle"]["previous"] == "+7 928 555-01-47"
    stored = session.scalars(
        select(FieldCorrection.previous_ct).where(FieldCorrection.subject_id == uuid.UUID(contact["id"]))
    ).all()
    assert len(stored) == 2 and all(b"9914" not in blob for blob in stored)
    # The duplicate check now finds the contact by its new handle, not by the old one.
    again_new = _contact(client, headers, handle="@Zelim_New")
    again_old = _contact(client, headers, handle="89285550147")
    assert again_new["possible_duplicate"] is True and again_old["possible_duplicate"] is False
    # Sending a field unchanged adds nothing to the history; a field not sent is left alone.
    same = client.patch(f"{API}/contacts/{contact['id']}", json={"alias": "Zelimkhan"}, headers=headers).json()
    assert len(same["corrections"]) == 2 and same["handle"] == "@zelim_new"


def test_case_correction_and_its_validation(client, factory):
    worker = factory.user("caseworker")
    headers = factory.headers(worker)
    contact = _contact(client, headers)
    case = client.post(f"{API}/cases", json={"contact_id": contact["id"], "location": "Grozny"}, headers=headers).json()
    fixed = client.patch(f"{API}/cases/{case['id']}", json={"location": "Nazran"}, headers=headers).json()
    assert fixed["location"] == "Nazran"
    assert [(c["field"], c["previous"]) for c in fixed["corrections"]] == [("location", "Grozny")]
    bad = client.patch(f"{API}/cases/{case['id']}", json={"status": "closed"}, headers=headers)
    assert bad.status_code == 422
    empty = client.post(f"{API}/cases/{case['id']}/notes", json={"text": ""}, headers=headers)
    assert empty.status_code == 422
