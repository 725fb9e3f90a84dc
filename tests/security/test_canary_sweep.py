"""The canary sweep: protected values written through every door must turn up nowhere else.

A live server (SQLite file, then PostgreSQL) takes distinctive canaries — names in Latin and
Cyrillic, a phone number in three formats, a Telegram handle, addresses and notes in Russian —
into every encrypted field, through the JSON API and the web intake form. Then every place an
adversary could look is searched for them in every encoding (tests/security/canaries.py): the
database file and its -wal/-journal, a pg_dump, the server's and the CLI's output, every export,
the decrypted content of a backup, and every HTTP answer not meant to show them. Zero hits, and
zero again after the records are crypto-shredded.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyrage
import pytest
from sqlalchemy import select

from app.auth.models import User
from app.crypto import service as crypto
from app.db import Base
from tests.security import canaries, figures
from tests.security.canaries import Hit
from tests.support.live_server import LiveAccount, LiveServer

# Which canary each encrypted column receives, and through which door. Checked against the models:
# a new ``*_ct`` column fails test_every_encrypted_column_is_swept until it gets a row here.
DOORS: dict[tuple[str, str], str] = {
    ("contact", "alias"): canaries.CANARY_NAME,
    ("contact", "handle"): canaries.CANARY_PHONE_INTL,
    ("contact", "notes"): canaries.CANARY_NOTES,
    ("evacuation_case", "full_name"): canaries.CANARY_NAME_RU,
    ("evacuation_case", "handle"): canaries.CANARY_HANDLE,
    ("evacuation_case", "location"): canaries.CANARY_LOCATION,
    ("evacuation_case", "family_situation"): canaries.CANARY_FAMILY,
    ("evacuation_case", "notes"): canaries.CANARY_NOTES_RU,
    ("case_transition", "note"): canaries.CANARY_TRANSITION_NOTE,
    ("record_note", "text"): canaries.CANARY_NOTES_RU,
    ("field_correction", "previous"): canaries.CANARY_NAME_RU,
    ("flagged_handle", "handle"): canaries.CANARY_HANDLE,
    ("flagged_handle", "reason"): canaries.CANARY_REASON,
    # Not typed by a person: the accounts' TOTP secrets, searched for in the stored data instead.
    ("user_account", "totp_secret"): "",
    # A form held for minutes across an ended session, then shredded; its sealing is checked by
    # tests/web/test_caseworker_pages.py (no plaintext in the row while it waits).
    ("held_form", "payload"): "",
    # The normalised handle kept with each blind-index entry (the intake's handle canaries, after
    # normalising): sealed under the subject's key, so the raw sweep of the stored data covers it;
    # its opening is checked by tests/lifecycle/test_index_width.py.
    ("blind_index_entry", "value"): "",
    # Nothing typed: a consent's terms are codes (field names, how, the day), sealed with the case.
    ("referral_consent", "terms"): "",
}


def encrypted_columns() -> set[tuple[str, str]]:
    return {(t.name, c.name[:-3]) for t in Base.metadata.sorted_tables for c in t.columns if c.name.endswith("_ct")}


def test_every_encrypted_column_is_swept() -> None:
    import app.models  # noqa: F401  (every table registered)

    assert encrypted_columns() == set(DOORS)


@dataclass
class Sweep:
    live: LiveServer
    accounts: dict[str, LiveAccount]
    tokens: dict[str, str]
    contact_codes: list[str] = field(default_factory=list)
    case_codes: list[str] = field(default_factory=list)
    case_ids: list[str] = field(default_factory=list)
    contact_ids: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)

    def http(self, role: str | None = None):  # type: ignore[no-untyped-def]
        return figures.client(self.live, self.tokens[role] if role else None)

    def scan_response(self, response, where: str) -> None:  # type: ignore[no-untyped-def]
        self.hits += canaries.scan(response.content, f"{where} -> {response.status_code}")


def _contact(**fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "received_on": date.today().isoformat(),
        "channel": "telegram",
        "region": "chechnya",
        "language": "ru",
        "risk": "immediate",
        "needs": ["evacuation", "shelter"],
    }
    body.update(fields)
    return body


def _write_through_every_door(sweep: Sweep) -> None:
    """Canaries into every encrypted field: API for contacts, cases, transitions and the known-bad list;
    the web intake form for one more contact."""
    with sweep.http("coordinator") as http:
        r = http.post(
            "/api/v1/flagged-handles", json={"handle": canaries.CANARY_HANDLE, "reason": canaries.CANARY_REASON}
        )
        assert r.status_code == 201, r.text
    with sweep.http("caseworker") as http:
        bodies = [
            _contact(alias=canaries.CANARY_NAME, handle=canaries.CANARY_PHONE_INTL, notes=canaries.CANARY_NOTES),
            _contact(
                alias=canaries.CANARY_NAME_RU, handle=canaries.CANARY_PHONE_NATIONAL, notes=canaries.CANARY_NOTES_RU
            ),
            _contact(alias=canaries.CANARY_ALIAS, handle=canaries.CANARY_PHONE_E164, notes=canaries.CANARY_FAMILY),
            _contact(alias=canaries.CANARY_ALIAS, handle=canaries.CANARY_HANDLE, notes=canaries.CANARY_LOCATION),
        ]
        for body in bodies:
            r = http.post("/api/v1/contacts", json=body)
            assert r.status_code == 201, r.text
            sweep.scan_response(r, "POST /contacts (answer)")
            sweep.contact_codes.append(r.json()["code"])
            sweep.contact_ids.append(r.json()["id"])
        # The known-bad handle and the repeated phone were recognised (blind indexes work on canaries too).
        assert r.json()["flagged_handle"] is True
        r = http.post(
            "/api/v1/cases",
            json={
                "contact_id": sweep.contact_ids[0],
                "full_name": canaries.CANARY_NAME_RU,
                "handle": canaries.CANARY_HANDLE,
                "location": canaries.CANARY_LOCATION,
                "family_situation": canaries.CANARY_FAMILY,
                "notes": canaries.CANARY_NOTES_RU,
            },
        )
        assert r.status_code == 201, r.text
        sweep.scan_response(r, "POST /cases (answer)")
        sweep.case_codes.append(r.json()["code"])
        sweep.case_ids.append(r.json()["id"])
        case_id = sweep.case_ids[0]
        r = http.post(
            f"/api/v1/cases/{case_id}/transitions",
            json={"to": "verifying", "on": date.today().isoformat(), "note": canaries.CANARY_TRANSITION_NOTE},
        )
        assert r.status_code == 200, r.text
        sweep.scan_response(r, "POST transition (answer)")
        # A note added later, and a correction whose previous value (a canary) goes to the history.
        r = http.post(f"/api/v1/contacts/{sweep.contact_ids[0]}/notes", json={"text": canaries.CANARY_NOTES_RU})
        assert r.status_code == 201, r.text
        r = http.patch(f"/api/v1/contacts/{sweep.contact_ids[1]}", json={"alias": "corrected"})
        assert r.status_code == 200, r.text
        # Refusals carrying canaries: none may echo them.
        for bad in (
            _contact(alias=canaries.CANARY_NAME, received_on="not a date"),
            _contact(notes=canaries.CANARY_NOTES_RU, region=canaries.CANARY_LOCATION),
            {**_contact(handle=canaries.CANARY_HANDLE), "extra": canaries.CANARY_PHONE_E164},
        ):
            r = http.post("/api/v1/contacts", json=bad)
            assert r.status_code == 422
            sweep.scan_response(r, "POST /contacts refused")
        r = http.post(
            f"/api/v1/cases/{case_id}/transitions",
            json={"to": "resettled", "on": date.today().isoformat(), "note": canaries.CANARY_NOTES},
        )
        assert r.status_code == 409
        sweep.scan_response(r, "illegal transition refused")
    with sweep.http("coordinator") as http:
        r = http.post(f"/api/v1/cases/{case_id}/verify", json={})
        assert r.status_code == 200, r.text
        r = http.post(f"/api/v1/cases/{case_id}/assign", json={"user": sweep.accounts["caseworker2"].username})
        assert r.status_code == 200, r.text
        sweep.scan_response(r, "assign (answer)")
    _web_intake(sweep)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def _web_intake(sweep: Sweep) -> None:
    """The browser door: sign in with password and TOTP, then the intake form, as a person would."""
    account = sweep.accounts["caseworker"]
    with figures.client(sweep.live) as web:
        page = web.get("/login")
        r = web.post(
            "/login",
            data={
                "username": account.username,
                "password": account.password,
                "otp": account.next_code() or "",
                "csrf_token": _csrf(page.text),
            },
        )
        assert r.status_code in (302, 303), r.text[:300]
        form = web.get("/contacts/new")
        assert form.status_code == 200
        r = web.post(
            "/contacts/new",
            data={
                "csrf_token": _csrf(form.text),
                "received_on": date.today().isoformat(),
                "channel": "phone",
                "region": "dagestan",
                "language": "ru",
                "risk": "high",
                "needs": ["legal", "medical"],
                "alias": canaries.CANARY_NAME,
                "handle": canaries.CANARY_PHONE_NATIONAL,
                "notes": canaries.CANARY_NOTES,
            },
        )
        assert r.status_code in (302, 303), r.text[:300]
        contact_id = r.headers["location"].split("/contacts/")[1].split("?")[0]
        sweep.contact_ids.append(contact_id)
        # Pages not meant to show protected values: the contact list and the dashboard-like pages.
        for path in ("/contacts", "/cases"):
            page = web.get(path)
            sweep.scan_response(page, f"web GET {path}")


def _assert_canaries_really_stored(sweep: Sweep) -> None:
    """The sweep means nothing unless each canary is in its column: open them through the service."""
    from app.models import CaseTransition  # noqa: F401

    with sweep.live.session() as db:
        for (table_name, column), value in DOORS.items():
            if not value:
                continue
            table = Base.metadata.tables[table_name]
            subject = (
                table.c.case_id
                if table_name == "case_transition"
                else table.c.subject_id
                if "subject_id" in table.c
                else table.c.id
            )
            opened = set()
            for row in db.execute(select(table.c.id, subject, table.c[f"{column}_ct"])):  # type: ignore[attr-defined]
                if row[2] is None:
                    continue
                opened.add(
                    crypto.open_field(
                        db,  # type: ignore[arg-type]
                        row[2],
                        table=table_name,
                        column=column,
                        row_id=row[0],
                        subject_id=row[1],
                    )
                )
            assert value in opened, f"{table_name}.{column} never received its canary"


def _read_everything_not_meant_to_show(sweep: Sweep, *, shredded: bool) -> None:
    case_id, contact_id = sweep.case_ids[0], sweep.contact_ids[0]
    plans = {
        "caseworker": [
            "/api/v1/contacts",
            "/api/v1/cases",
            "/api/v1/contacts?region=chechnya",
            "/api/v1/stats/summary",
        ],
        "caseworker2": ["/api/v1/contacts", "/api/v1/cases", f"/api/v1/contacts/{sweep.contact_ids[1]}"],
        "coordinator": [
            "/api/v1/cases",
            f"/api/v1/cases/{case_id}",
            "/api/v1/stats/summary?interval=week",
            f"/api/v1/contacts/{contact_id}",
        ],
        "analyst": [
            "/api/v1/stats/summary",
            "/api/v1/exports/aggregate.csv",
            "/api/v1/exports/aggregate.json",
            "/api/v1/exports/records.csv",
            f"/api/v1/cases/{case_id}",
            "/api/v1/flagged-handles",
        ],
        "admin": [
            "/api/v1/contacts",
            f"/api/v1/contacts/{contact_id}",
            f"/api/v1/cases/{case_id}",
            "/api/v1/stats/summary",
            "/api/v1/exports/records.csv",
        ],
    }
    for role, paths in plans.items():
        with sweep.http(role) as http:
            for path in paths:
                r = http.get(path)
                assert r.status_code < 500, (role, path, r.status_code)
                sweep.scan_response(r, f"{role} GET {path}")
    # The case's own caseworker (now caseworker2, after assignment) reads it: meant to show, so not
    # scanned, but it must work, and it is audited — the audit log is scanned with the database.
    with sweep.http("caseworker2") as http:
        r = http.get(f"/api/v1/cases/{case_id}")
        assert r.status_code == 200
        assert r.json()["full_name"] == (None if shredded else canaries.CANARY_NAME_RU)
        if shredded:  # after a shred even the case's own caseworker gets nothing back: scan it
            sweep.scan_response(r, "caseworker2 GET shredded case")


def _cli_artefacts(sweep: Sweep, tag: str) -> None:
    live, out = sweep.live, sweep.live.base_dir / f"artefacts-{tag}"
    out.mkdir(exist_ok=True)
    live.cli("export", "aggregate", "--format", "csv", "--out", str(out / "aggregate.csv"))
    live.cli("export", "aggregate", "--format", "json", "--out", str(out / "aggregate.json"))
    live.cli("export", "records", "--out", str(out / "records.csv"))
    live.cli("keys", "status")
    live.cli("audit", "verify")
    live.cli("purge", "--dry-run")
    identity = pyrage.x25519.Identity.generate()
    backup = out / "backup.age"
    live.cli("backup", "--out", str(backup), "--recipient", str(identity.to_public()))
    # The adversary who also holds the offline backup key sees the snapshot itself: scan that too.
    (out / "backup.decrypted").write_bytes(pyrage.decrypt(backup.read_bytes(), [identity]))
    sweep.files += sorted(p for p in out.iterdir() if p.is_file())


def _database_files(sweep: Sweep) -> list[Path]:
    path = sweep.live.db_path
    if path is None:
        return []
    return [p for p in (path, *(path.with_name(path.name + s) for s in ("-wal", "-journal", "-shm"))) if p.exists()]


def _totp_secrets(sweep: Sweep) -> list[canaries.Needle]:
    return canaries.needles(a.totp_secret for a in sweep.accounts.values())


def _scan_at_rest(sweep: Sweep, stored: list[Path], tag: str) -> None:
    for path in stored:
        data = path.read_bytes()
        sweep.hits += canaries.scan(data, f"{tag}: {path.name}")
        sweep.hits += canaries.scan(data, f"{tag}: {path.name} (TOTP secrets)", patterns=_totp_secrets(sweep))
    for path in sweep.files:
        sweep.hits += canaries.scan_file(path)
    for path in sweep.live.log_files():
        sweep.hits += canaries.scan_file(path)


def _shred_everything(sweep: Sweep) -> None:
    for code in sweep.case_codes:
        sweep.live.cli("case", "shred", code, "--yes", "--with-contact")
    with sweep.live.session() as db:
        from app.contacts.models import Contact

        codes = db.scalars(select(Contact.code).where(Contact.shredded_on.is_(None))).all()  # type: ignore[attr-defined]
    for code in codes:
        sweep.live.cli("contact", "shred", code, "--yes")


def _open_sweep(live: LiveServer) -> Sweep:
    roles = {
        "caseworker": "caseworker",
        "caseworker2": "caseworker",
        "coordinator": "coordinator",
        "analyst": "analyst",
        "admin": "admin",
    }
    # The accounts carry no canary: made through the service in this process (no interpreter start-up each),
    # they sign in through the server's API like anyone else.
    accounts = {
        key: live.create_user(f"{key}{uuid.uuid4().hex[:6]}", role, via_cli=False) for key, role in roles.items()
    }
    tokens = {key: live.sign_in(account) for key, account in accounts.items()}
    figures.count("canaries", len(canaries.ALL_CANARIES) + len(canaries.FRAGMENTS))
    figures.count("canary_needles", len(canaries.NEEDLES))
    return Sweep(live=live, accounts=accounts, tokens=tokens)


def _run(sweep: Sweep, stored: Iterator[list[Path]]) -> None:
    """Write, read, export and back up, scan; shred; scan again. ``stored`` yields the at-rest files."""
    _write_through_every_door(sweep)
    _assert_canaries_really_stored(sweep)
    _read_everything_not_meant_to_show(sweep, shredded=False)
    _cli_artefacts(sweep, "before-shred")
    _scan_at_rest(sweep, next(stored), "before shred")
    _shred_everything(sweep)
    _read_everything_not_meant_to_show(sweep, shredded=True)
    _cli_artefacts(sweep, "after-shred")
    _scan_at_rest(sweep, next(stored), "after shred")


@pytest.mark.slow
def test_no_canary_anywhere_on_sqlite(tmp_path: Path) -> None:
    with LiveServer(tmp_path / "sweep") as live:
        sweep = _open_sweep(live)

        def stored() -> Iterator[list[Path]]:
            while True:
                yield _database_files(sweep)

        _run(sweep, stored())
        files = _database_files(sweep)
    assert any(p.name.endswith(".db") for p in files)
    assert sweep.hits == [], "\n".join(map(str, sweep.hits[:30]))


@pytest.mark.slow
def test_no_canary_anywhere_on_postgresql(tmp_path: Path, pg_server) -> None:  # type: ignore[no-untyped-def]
    name = f"sweep_{uuid.uuid4().hex[:10]}"
    url = pg_server.create_database(name)
    with LiveServer(tmp_path / "sweep", database_url=url) as live:
        sweep = _open_sweep(live)

        def stored() -> Iterator[list[Path]]:
            n = 0
            while True:
                n += 1
                dump = pg_server.dump(name, tmp_path / f"dump-{n}.sql")
                assert dump.stat().st_size > 10_000
                # The PostgreSQL server's own log (errors print statements) is at rest too.
                yield [dump, pg_server.log_file]

        _run(sweep, stored())
    assert sweep.hits == [], "\n".join(map(str, sweep.hits[:30]))


def test_the_totp_secrets_are_sealed_too(tmp_path: Path) -> None:
    """The sweep's own check on user_account.totp_secret can fail: a secret in the clear is found."""
    live = LiveServer(tmp_path / "totp")  # initialised, never started: only its database is needed
    try:
        account = live.create_user("totpcheck", "caseworker", via_cli=False)
        db_files = [p for p in live.data_dir.iterdir() if p.name.startswith("helpline.db")]
        blob = b"".join(p.read_bytes() for p in db_files)
        assert canaries.scan(blob, "db", patterns=canaries.needles([account.totp_secret]), record=False) == []
        assert canaries.scan(
            account.totp_secret.encode(), "plain", patterns=canaries.needles([account.totp_secret]), record=False
        )
        with live.session() as db:
            user = db.scalar(select(User).where(User.username == "totpcheck"))  # type: ignore[attr-defined]
            assert user is not None and account.totp_secret.encode() not in user.totp_secret_ct
    finally:
        live.close()
