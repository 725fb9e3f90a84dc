"""The one sealing path, on a real database: every encrypted column round-trips, is bound to its
row, vanishes with its data key, and never reaches the database file or its WAL in plaintext."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, select

from app.auth import service as auth_service
from app.cases.models import Case, CaseTransition
from app.contacts.models import Contact, FlaggedHandle
from app.crypto import service as crypto
from app.crypto.errors import DecryptionError, ShreddedError
from app.crypto.models import DataKey
from app.db import Base, unit_of_work
from tests.conftest import make_settings

CANARIES = {
    "alias": "Canary-Alias-Zelimkhan-4471",
    "handle": "+7 928 555-01-47",
    "notes": "Canary note: ночует у двоюродного брата в Грозном, дом 17",
}


def encrypted_columns() -> dict[str, list[str]]:
    """Every ``*_ct`` column of every table: the list a new encrypted field cannot escape."""
    found: dict[str, list[str]] = {}
    for table in Base.metadata.sorted_tables:
        cols = [c.name[:-3] for c in table.columns if c.name.endswith("_ct")]
        if cols:
            found[table.name] = cols
    return found


def test_the_encrypted_columns_are_the_ones_the_contract_names() -> None:
    cols = encrypted_columns()
    assert cols["contact"] == ["alias", "handle", "notes"]
    assert cols["evacuation_case"] == ["full_name", "handle", "location", "family_situation", "notes"]
    assert cols["case_transition"] == ["note"]
    assert cols["flagged_handle"] == ["handle", "reason"]
    assert cols["user_account"] == ["totp_secret"]


@pytest.mark.parametrize(("table", "column"), [(t, c) for t, cs in encrypted_columns().items() for c in cs])
def test_every_encrypted_column_round_trips_and_is_bound_to_its_row(session, table, column) -> None:
    subject, row, other_row = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    key = crypto.create_subject_key(session, subject_id=subject)
    blob = crypto.seal_field(session, "Имя Фамилия +79280000000", key=key, table=table, column=column, row_id=row)
    assert blob is not None and "Имя".encode() not in blob
    session.flush()
    opened = crypto.open_field(session, blob, table=table, column=column, row_id=row, subject_id=subject)
    assert opened == "Имя Фамилия +79280000000"
    with pytest.raises(DecryptionError):
        crypto.open_field(session, blob, table=table, column=column, row_id=other_row, subject_id=subject)


def test_none_stays_none(session) -> None:
    key = crypto.create_subject_key(session, subject_id=uuid.uuid4())
    assert crypto.seal_field(session, None, key=key, table="contact", column="notes", row_id=uuid.uuid4()) is None


def test_a_ciphertext_copied_to_another_subjects_row_fails(session, factory) -> None:
    user = factory.user("caseworker")
    rows = []
    for name in ("first", "second"):
        contact_id = crypto.new_subject_id()
        key = crypto.create_subject_key(session, subject_id=contact_id)
        contact = Contact(
            id=contact_id,
            code=f"H-TEST-{name[:2].upper()}",
            received_on=date(2026, 10, 1),
            channel="phone",
            region="chechnya",
            language="ru",
            risk="high",
            needs="evacuation",
            recorded_by_id=user.id,
            alias_ct=crypto.seal_field(
                session, f"alias {name}", key=key, table="contact", column="alias", row_id=contact_id
            ),
            last_activity_on=date(2026, 10, 1),
        )
        session.add(contact)
        rows.append(contact)
    session.flush()
    first, second = rows
    second.alias_ct = first.alias_ct
    with pytest.raises(DecryptionError):
        crypto.open_field(
            session, second.alias_ct, table="contact", column="alias", row_id=second.id, subject_id=second.id
        )


def test_after_shredding_the_subject_cannot_be_read(session) -> None:
    subject, row = uuid.uuid4(), uuid.uuid4()
    key = crypto.create_subject_key(session, subject_id=subject)
    blob = crypto.seal_field(session, "gone soon", key=key, table="contact", column="notes", row_id=row)
    crypto.add_index_entry(session, subject_id=subject, column="contact.handle", value="@gone")
    session.flush()
    crypto.shred_subject(session, subject_id=subject)
    session.flush()
    assert session.scalar(select(DataKey).where(DataKey.subject_id == subject)) is None
    assert subject not in crypto.index_candidates(session, column="contact.handle", value="@gone")
    with pytest.raises(ShreddedError):
        crypto.open_field(session, blob, table="contact", column="notes", row_id=row, subject_id=subject)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=500))
def test_arbitrary_unicode_survives_the_database(session, value) -> None:
    subject = uuid.uuid4()
    key = crypto.create_subject_key(session, subject_id=subject)
    blob = crypto.seal_field(session, value, key=key, table="contact", column="notes", row_id=subject)
    session.flush()
    assert (
        crypto.open_field(session, blob, table="contact", column="notes", row_id=subject, subject_id=subject) == value
    )


def test_the_database_file_and_wal_hold_no_plaintext(tmp_path) -> None:
    """Write canaries into every encrypted column of a real SQLite file, then read its bytes."""
    from app import bootstrap
    from app.crypto.keyring import get_keyring
    from app.db import make_engine

    settings = make_settings(tmp_path / "install")
    bootstrap.migrate(settings)
    engine = make_engine(settings)
    keyring = get_keyring(settings)
    canaries: list[str] = []
    with unit_of_work(engine) as session:
        crypto.bind(session, settings=settings, keyring=keyring)
        user = auth_service.create_user(session, actor="t", username="cw", role="caseworker").user
        for table, columns in encrypted_columns().items():
            if table == "user_account":
                continue
            subject = uuid.uuid4()
            key = crypto.create_subject_key(session, subject_id=subject)
            for column in columns:
                canary = f"CANARY-{table}-{column}-Шамиль"
                canaries.append(canary)
                crypto.seal_field(session, canary, key=key, table=table, column=column, row_id=subject)
        contact_id = uuid.uuid4()
        key = crypto.create_subject_key(session, subject_id=contact_id)
        session.add(
            Contact(
                id=contact_id,
                code="H-CANA-RY",
                received_on=date(2026, 10, 1),
                channel="phone",
                region="chechnya",
                language="ru",
                risk="high",
                needs="",
                recorded_by_id=user.id,
                alias_ct=crypto.seal_field(
                    session, CANARIES["alias"], key=key, table="contact", column="alias", row_id=contact_id
                ),
                handle_ct=crypto.seal_field(
                    session, CANARIES["handle"], key=key, table="contact", column="handle", row_id=contact_id
                ),
                notes_ct=crypto.seal_field(
                    session, CANARIES["notes"], key=key, table="contact", column="notes", row_id=contact_id
                ),
                last_activity_on=date(2026, 10, 1),
            )
        )
        crypto.add_index_entry(session, subject_id=contact_id, column="contact.handle", value=CANARIES["handle"])
        flagged_id = uuid.uuid4()
        fkey = crypto.create_subject_key(session, subject_id=flagged_id)
        session.add(
            FlaggedHandle(
                id=flagged_id,
                handle_ct=crypto.seal_field(
                    session, "@entrapment_canary", key=fkey, table="flagged_handle", column="handle", row_id=flagged_id
                )
                or b"",
                added_by="t",
                added_on=date(2026, 10, 1),
            )
        )
    canaries += [*CANARIES.values(), "+79285550147", "@entrapment_canary", "entrapment_canary"]
    db_path = settings.database_url.split("sqlite:///", 1)[1]
    # Read while another connection keeps the WAL alive, then after engine disposal.
    files = {}
    with engine.connect():
        for suffix in ("", "-wal", "-journal"):
            path = Path(db_path + suffix)
            if path.exists():
                files[suffix] = path.read_bytes()
    engine.dispose()
    files["closed"] = Path(db_path).read_bytes()
    assert files[""], "the database file must exist"
    for canary in canaries:
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            needle = canary.encode(encoding)
            for name, data in files.items():
                assert needle not in data, f"{canary!r} found as {encoding} in database{name}"


def test_only_app_crypto_touches_aesgcm() -> None:
    """Nothing outside app/crypto/ imports the primitives (DESIGN: one path encrypts)."""
    root = Path(__file__).resolve().parents[2] / "app"
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "crypto" not in path.relative_to(root).parts[:1]
        and any(word in path.read_text("utf-8") for word in ("AESGCM", "hazmat"))
    ]
    assert offenders == []


def test_models_map_the_tables_the_migrations_create(engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    assert Case.__tablename__ in tables and CaseTransition.__tablename__ in tables
