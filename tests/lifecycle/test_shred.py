"""Crypto-shredding: after it, a case's canary is unreadable through every door, the aggregate counts
are unchanged, and the audit records it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit.models import AuditEntry
from app.cases import service as case_service
from app.cases.models import Case, CaseTransition
from app.contacts import service as contact_service
from app.contacts.models import Contact
from app.crypto import service as crypto
from app.crypto.models import BlindIndexEntry, DataKey
from app.errors import Conflict, NotFound
from app.lifecycle import service as lifecycle
from app.stats import service as stats
from tests.factories import Factory
from tests.lifecycle.seed import CANARY, Install, seed

CANARY_NOTE = "canary note " + CANARY


def _totals(session: Session) -> dict:
    return stats.summary(session, interval="month").model_dump()["totals"]


def test_shredded_case_is_unreadable_through_every_door_and_counts_stay(
    session: Session, client: TestClient, factory: Factory
) -> None:
    worker = factory.user("caseworker")
    other = factory.case(worker, full_name="someone else", notes="still here")
    case = factory.case(worker, status="verifying", full_name=CANARY, handle="@canary_handle", notes=CANARY_NOTE)
    case_service.transition(
        session=session, actor=worker, case_id=case.id, to="paused", on=case.opened_on, note=CANARY_NOTE
    )
    assert case_service.read_case(session=session, actor=worker, case_id=case.id).full_name == CANARY
    totals_before = _totals(session)
    counts_before = (
        session.scalar(select(func.count()).select_from(Case)),
        session.scalar(select(func.count()).select_from(Contact)),
    )

    shredded = lifecycle.shred_case(session=session, actor="admin", code=case.code)

    assert shredded == [case.code]
    row = session.get(Case, case.id)
    assert row is not None
    info = lifecycle.shred_info(row)
    assert info is not None and info.by == "admin" and info.on == crypto.settings_of(session).today()
    assert row.status == "paused" and row.opened_on == case.opened_on  # enums and dates stay
    assert all(
        getattr(row, c) is None for c in ("full_name_ct", "handle_ct", "location_ct", "family_situation_ct", "notes_ct")
    )
    assert not any(session.scalars(select(CaseTransition.note_ct).where(CaseTransition.case_id == case.id)))
    assert session.scalar(select(func.count()).select_from(DataKey).where(DataKey.subject_id == case.id)) == 0
    assert (
        session.scalar(select(func.count()).select_from(BlindIndexEntry).where(BlindIndexEntry.subject_id == case.id))
        == 0
    )
    # door 1: the service
    detail = case_service.read_case(session=session, actor=worker, case_id=case.id)
    assert detail.shredded and detail.full_name is None and CANARY not in detail.model_dump_json()
    with pytest.raises(crypto.ShreddedError):
        crypto.current_subject_key(session, subject_id=case.id)
    # door 2: the API
    response = client.get(f"/api/v1/cases/{case.id}", headers=factory.headers(worker))
    assert response.status_code == 200 and response.json()["shredded"] is True
    assert CANARY not in response.text and "canary_handle" not in response.text
    # the case next to it is untouched; nothing else was lost
    assert case_service.read_case(session=session, actor=worker, case_id=other.id).notes == "still here"
    assert _totals(session) == totals_before
    assert (
        session.scalar(select(func.count()).select_from(Case)),
        session.scalar(select(func.count()).select_from(Contact)),
    ) == counts_before
    # the audit records it, without content
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "case.shred", AuditEntry.target == case.code)
    ).one()
    assert entry.actor == "admin" and CANARY not in entry.detail
    # the contact is its own subject: a case shred leaves it unless asked
    contact = session.scalar(select(Contact).where(Contact.id == row.contact_id))
    assert contact is not None and contact.shredded_on is None
    with pytest.raises(Conflict):
        lifecycle.shred_case(session=session, actor="admin", code=case.code)


def test_contact_shred_with_cases_and_unknown_codes(session: Session, factory: Factory) -> None:
    worker = factory.user("caseworker")
    case = factory.case(worker, notes=CANARY)
    contact = session.get(Contact, session.get(Case, case.id).contact_id)  # type: ignore[union-attr]
    assert contact is not None
    done = lifecycle.shred_contact(session=session, actor="admin", code=contact.code, with_cases=True)
    assert done == [contact.code, case.code]
    view = contact_service.read_contact(session=session, actor=worker, contact_id=contact.id)
    assert view.shredded and view.alias is None
    actions = set(session.scalars(select(AuditEntry.action).where(AuditEntry.target.in_(done))))
    assert {"contact.shred", "case.shred"} <= actions
    with pytest.raises(NotFound):
        lifecycle.shred_case(session=session, actor="admin", code="C-NONE-00")


def test_cli_shred_asks_then_leaves_nothing_of_the_key_on_disk(
    install: Install, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli import main
    from app.config import get_settings

    with install.session() as s:
        seeded = seed(s, contacts=30, cases=5, canary_case=True)
    case_id = next(iter(seeded.cases))
    code = seeded.case_codes[case_id]
    with install.engine.connect() as conn:
        wrapped = bytes(conn.scalar(select(DataKey.wrapped).where(DataKey.subject_id == case_id)))
    monkeypatch.setenv("HELPLINE_DATA_DIR", str(install.settings.data_dir))
    monkeypatch.setenv("HELPLINE_KEY_FILE", str(install.settings.key_path))
    monkeypatch.setenv("HELPLINE_DATABASE_URL", install.settings.database_url)
    get_settings.cache_clear()
    try:
        monkeypatch.setattr("sys.stdin", open("/dev/null"))  # noqa: SIM115  (no terminal: must refuse)
        assert main(["case", "shred", code]) == 1
        assert "refusing without confirmation" in capsys.readouterr().err
        with install.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(DataKey).where(DataKey.subject_id == case_id)) == 1
        assert main(["case", "shred", code, "--yes"]) == 0
        assert capsys.readouterr().out.strip() == f"shredded {code}"
        assert main(["case", "shred", code, "--yes"]) == 1
        assert "already shredded" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
    with install.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(DataKey).where(DataKey.subject_id == case_id)) == 0
    if install.settings.is_sqlite:
        # secure_delete zeroed the freed pages and the checkpoint emptied the WAL: the wrapped key is gone.
        db = Path(install.settings.database_url.split("sqlite:///", 1)[1])
        on_disk = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
        assert wrapped not in on_disk and CANARY.encode() not in on_disk
        assert json.loads(install.settings.key_path.read_text())  # the key file itself is untouched
