"""Fast test data for lifecycle tests: committed installs and thousands of sealed records in bulk.

Records are built with the models and ``app.crypto.service`` directly (the same sealing path the
domain services use), because rotation, backup and restore need committed data in a real database.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from app import bootstrap
from app.auth import service as auth_service
from app.auth.models import User
from app.cases.models import Case, CaseTransition
from app.config import Settings
from app.contacts.models import Contact
from app.crypto import blind_index
from app.crypto import service as crypto
from app.crypto.keyring import forget_keyrings, get_keyring
from app.crypto.models import BlindIndexEntry
from app.db import make_engine, unit_of_work

CANARY = "CANARY-Zarema-Ibragimova-7731"
INDEX_COLUMN = "contact.handle"
CONTACT_FIELDS = ("alias", "handle", "notes")
CASE_FIELDS = ("full_name", "handle", "location", "family_situation", "notes")


@dataclass
class Install:
    settings: Settings
    engine: Engine

    def session(self):  # type: ignore[no-untyped-def]
        """A committing unit of work bound to this install's keys."""
        return _bound(self)

    def dispose(self) -> None:
        self.engine.dispose()


class _bound:
    def __init__(self, install: Install) -> None:
        self.install = install

    def __enter__(self) -> Session:
        self._cm = unit_of_work(self.install.engine)
        session = self._cm.__enter__()
        return crypto.bind(session, settings=self.install.settings, keyring=get_keyring(self.install.settings))

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)  # type: ignore[arg-type]


def new_install(base: Path, database_url: str, **overrides: object) -> Install:
    """A migrated database and a fresh key file under ``base``."""
    from tests.conftest import make_settings

    settings = make_settings(base, database_url=database_url, **overrides)
    bootstrap.migrate(settings)
    return Install(settings=settings, engine=make_engine(settings))


@dataclass
class Seeded:
    """What was written, so tests can check every value reads back."""

    user_id: uuid.UUID
    contacts: dict[uuid.UUID, dict[str, str]] = field(default_factory=dict)
    contact_codes: dict[uuid.UUID, str] = field(default_factory=dict)
    cases: dict[uuid.UUID, dict[str, str]] = field(default_factory=dict)
    case_codes: dict[uuid.UUID, str] = field(default_factory=dict)
    case_contact: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    notes: dict[uuid.UUID, tuple[uuid.UUID, str]] = field(default_factory=dict)  # transition id -> (case, note)
    handles: dict[uuid.UUID, str] = field(default_factory=dict)


_issued: set[str] = set()


def code(prefix: str) -> str:
    # 30 random bits: at 10,000 rows a repeat is likely (birthday bound), so never hand one out twice.
    alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    while True:
        body = "".join(secrets.choice(alphabet) for _ in range(6))
        value = f"{prefix}-{body[:4]}-{body[4:]}"
        if value not in _issued:
            _issued.add(value)
            return value


def seed(
    session: Session,
    *,
    contacts: int,
    cases: int = 0,
    canary_case: bool = False,
    received_on: date | None = None,
    user: User | None = None,
) -> Seeded:
    """``contacts`` contacts (alias, handle, notes sealed, handle in the blind index) and ``cases`` cases."""
    if user is None:
        user = auth_service.create_user(
            session,
            actor="test",
            username=f"cw{secrets.token_hex(4)}",
            role="caseworker",
            password="lifecycle seed passphrase",
        ).user
    session.flush()
    out = Seeded(user_id=user.id)
    day = received_on or date.today()
    contact_rows = []
    for i in range(contacts):
        cid = crypto.new_subject_id()
        key = crypto.create_subject_key(session, subject_id=cid)
        values = {"alias": f"alias {i} {cid.hex[:6]}", "handle": f"@h{i}_{cid.hex[:8]}", "notes": f"notes {i}"}
        row = {
            "id": cid,
            "code": code("K"),
            "received_on": day,
            "channel": "telegram",
            "region": "chechnya",
            "language": "ru",
            "risk": "high",
            "needs": "evacuation",
            "outcome": None,
            "possible_duplicate": False,
            "flagged_handle": False,
            "recorded_by_id": user.id,
            "last_activity_on": day,
        }
        for name, value in values.items():
            row[f"{name}_ct"] = crypto.seal_field(session, value, key=key, table="contact", column=name, row_id=cid)
        contact_rows.append(row)
        out.contacts[cid] = values
        out.contact_codes[cid] = row["code"]
        out.handles[cid] = values["handle"]
    session.flush()
    if contact_rows:
        session.execute(insert(Contact), contact_rows)
    index_rows = []
    epoch, bits, index_key = crypto.active_index_key(session, column=INDEX_COLUMN)
    for cid, values in out.contacts.items():
        bucket = blind_index.bucket(index_key, blind_index.normalise_handle(values["handle"]), bits=bits)
        index_rows.append({"subject_id": cid, "column": INDEX_COLUMN, "epoch": epoch, "bucket": bucket})
    if index_rows:
        session.execute(insert(BlindIndexEntry), index_rows)
    case_rows, transition_rows = [], []
    for i, contact_id in enumerate(list(out.contacts)[:cases]):
        case_id = crypto.new_subject_id()
        key = crypto.create_subject_key(session, subject_id=case_id)
        name = CANARY if (canary_case and i == 0) else f"full name {i}"
        values = {
            "full_name": name,
            "handle": out.contacts[contact_id]["handle"],
            "location": f"location {i}",
            "family_situation": f"family {i}",
            "notes": f"case notes {i} {CANARY if canary_case and i == 0 else ''}",
        }
        row = {
            "id": case_id,
            "code": code("C"),
            "contact_id": contact_id,
            "status": "new",
            "region": "chechnya",
            "opened_on": day,
            "opened_by_id": user.id,
            "assigned_to_id": user.id,
            "first_contact_on": day,
            "status_on": day,
        }
        for fname, value in values.items():
            row[f"{fname}_ct"] = crypto.seal_field(
                session, value, key=key, table="evacuation_case", column=fname, row_id=case_id
            )
        case_rows.append(row)
        tid = crypto.new_subject_id()
        note = f"transition note {i} {CANARY if canary_case and i == 0 else ''}"
        transition_rows.append(
            {
                "id": tid,
                "case_id": case_id,
                "position": 1,
                "from_status": None,
                "to_status": "new",
                "on": day,
                "actor_id": user.id,
                "note_ct": crypto.seal_field(
                    session, note, key=key, table="case_transition", column="note", row_id=tid
                ),
            }
        )
        out.cases[case_id] = values
        out.case_codes[case_id] = row["code"]
        out.case_contact[case_id] = contact_id
        out.notes[tid] = (case_id, note)
    session.flush()
    if case_rows:
        session.execute(insert(Case), case_rows)
        session.execute(insert(CaseTransition), transition_rows)
    session.flush()
    return out


def read_all(session: Session, seeded: Seeded) -> tuple[dict, dict, dict]:
    """Decrypt every seeded value back through ``app.crypto.service``."""
    contacts = {}
    for row in session.execute(select(Contact)).scalars():
        if row.id in seeded.contacts:
            contacts[row.id] = {
                f: crypto.open_field(
                    session, getattr(row, f"{f}_ct"), table="contact", column=f, row_id=row.id, subject_id=row.id
                )
                for f in CONTACT_FIELDS
            }
    cases = {}
    for row in session.execute(select(Case)).scalars():
        if row.id in seeded.cases:
            cases[row.id] = {
                f: crypto.open_field(
                    session,
                    getattr(row, f"{f}_ct"),
                    table="evacuation_case",
                    column=f,
                    row_id=row.id,
                    subject_id=row.id,
                )
                for f in CASE_FIELDS
            }
    notes = {}
    for row in session.execute(select(CaseTransition)).scalars():
        if row.id in seeded.notes:
            notes[row.id] = (
                row.case_id,
                crypto.open_field(
                    session, row.note_ct, table="case_transition", column="note", row_id=row.id, subject_id=row.case_id
                ),
            )
    return contacts, cases, notes


def sealed_snapshot(engine: Engine) -> dict[tuple[str, str, uuid.UUID], bytes | None]:
    """Every sealed column value in the database, by (table, column, row id)."""
    from app.lifecycle.rotation import SEALED_TABLES
    from app.models import Base

    out = {}
    with engine.connect() as conn:
        for spec in SEALED_TABLES:
            table = Base.metadata.tables[spec.table]
            for row in conn.execute(select(table)).mappings():
                for c in spec.columns:
                    blob = row[f"{c}_ct"]
                    out[(spec.table, c, row[spec.row])] = bytes(blob) if blob is not None else None
    return out


def days_ago(n: int) -> date:
    return date.today() - timedelta(days=n)


def fresh_keys() -> None:
    """Forget cached keyrings, as a new process would (after a rotation or restore elsewhere)."""
    forget_keyrings()
