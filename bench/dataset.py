"""A synthetic Helpline install of N contacts with cases and status histories, bulk-loaded fast.

Rows are built in Python and written with SQLAlchemy Core ``executemany`` in big batches: real sealed
fields (``app.crypto.cipher`` under one random data key per subject, the key stored wrapped under the
install's KEK), real blind-index entries for contact handles, then the statistics counters rebuilt with
``app.stats.counters.rebuild_counters``. Proportions follow the field: about half of the contacts become
cases, about half of those reach ``evacuated``, spread over 15 months up to today.

Built installs are cached under ``bench/.data/`` keyed by size, seed and a hash of the migrations, so a
second run starts at once. Benchmarks that write (intake, rotation) work on a copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyotp
from sqlalchemy import Engine, event, text, update

from app import bootstrap
from app.audit import seals
from app.cases.models import Case
from app.config import Settings
from app.crypto import blind_index, cipher
from app.crypto import service as crypto
from app.crypto.keyring import FileKeyProvider, forget_keyrings, get_keyring
from app.crypto.models import IndexKey
from app.db import get_engine, make_engine, unit_of_work
from app.lifecycle import reindex

ROOT = Path(__file__).resolve().parent
DATA_ROOT = ROOT / ".data"
DATASET_VERSION = 2  # 2: index widths follow the size, entries carry their sealed normalised handle
PASSWORD = "bench passphrase for helpline"
BATCH = 20_000
DAYS = 456  # about 15 months of history

CASEWORKERS = 20
ROLES = {"coordinator": "bench-coordinator", "analyst": "bench-analyst", "admin": "bench-admin"}
CASEWORKER = "bench-cw00"  # the caseworker the benchmarks sign in as; owns ~1/20 of the records
# The office: every caseworker. An intake load records each contact as the next of them in turn, as an
# office's phones would: the hourly intake limit counts one caseworker's own contacts of the last hour.
OFFICE = [f"bench-cw{i:02d}" for i in range(CASEWORKERS)]

CONTACT_INDEX_COLUMN = "contact.handle"
TABLES = ("user_account", "index_key", "data_key", "blind_index_entry", "contact", "evacuation_case", "case_transition")

_CHANNELS = ["phone", "telegram", "signal", "whatsapp", "email", "referral", "in_person", "other"]
_CHANNEL_W = [25, 35, 10, 15, 5, 5, 3, 2]
_REGIONS = ["chechnya", "dagestan", "ingushetia", "north_caucasus_other", "moscow", "st_petersburg", "russia_other"]
_REGIONS += ["abroad", "unknown"]
_REGION_W = [40, 12, 8, 6, 12, 6, 8, 5, 3]
_RISKS = ["low", "medium", "high", "immediate"]
_RISK_W = [20, 35, 30, 15]
_NEEDS = ["evacuation", "shelter", "legal", "medical", "psychological", "documents", "financial", "other"]
_LANGS = ["ru", "ru", "ru", "ce", "en", "av", "inh"]
_OUTCOMES = ["info_only", "referred", "no_follow_up", "duplicate", "suspected_infiltration", None]
_OUTCOME_W = [30, 25, 25, 8, 2, 10]
_SIDE = ["paused", "lost_contact", "declined"]
_NOTE_TEXT = (
    "called again from a borrowed phone, asked about documents and a safe place to stay; family pressure "
    "continues, relatives have visited twice; needs medical check after detention; speaks Russian and Chechen; "
    "prefers contact after dark; the brother may be watching messages"
)
_WORDS = _NOTE_TEXT.split()
# How far a case gets along the main line (index into MAIN), before step dates run past today.
_MAIN = ["new", "verifying", "planning", "in_transit", "evacuated", "resettled", "closed"]
_REACH_W = [6, 8, 10, 8, 22, 22, 24]  # ~68% aim for evacuated or beyond; recent cases stop earlier
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def migrations_fingerprint() -> str:
    """A short hash of every migration file: a changed schema means a new data set."""
    digest = hashlib.sha256()
    for path in sorted((bootstrap.PROJECT_ROOT / "migrations" / "versions").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _code(prefix: str, n: int, mult: int) -> str:
    # A bijection of n onto 30 bits (odd multiplier mod 2**30): unique, random-looking codes.
    x = (n * mult + 0x2F1B3) % (1 << 30)
    chars = "".join(_CODE_ALPHABET[(x >> (5 * i)) & 31] for i in range(6))
    return f"{prefix}-{chars[:4]}-{chars[4:]}"


@dataclass
class Install:
    """A Helpline install on disk: ``root/data/{helpline.db,keys.json}`` (LiveServer's layout)."""

    root: Path
    size: int
    database_url: str = ""

    def __post_init__(self) -> None:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.db_path}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "keys.json"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "helpline.db"

    @property
    def accounts_file(self) -> Path:
        return self.root / "accounts.json"

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": self.data_dir,
            "key_file": self.key_file,
            "database_url": self.database_url,
            "secure_cookies": False,
            "token_ttl_minutes": 120,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for ``helpline`` subprocesses on this install."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
        env.update(
            {
                "HELPLINE_DATA_DIR": str(self.data_dir),
                "HELPLINE_DATABASE_URL": self.database_url,
                "HELPLINE_KEY_FILE": str(self.key_file),
                "HELPLINE_SECURE_COOKIES": "false",
                "HELPLINE_TOKEN_TTL_MINUTES": "120",
                # Benchmarks are one caseworker recording thousands of contacts: the per-caseworker
                # intake limit and bulk-read alarm (which counts duplicate-check candidates) are raised.
                "HELPLINE_INTAKE_PER_HOUR": "100000000",
                "HELPLINE_DECRYPT_ALARM_PER_HOUR": "100000000",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra)
        return env

    def accounts(self) -> dict[str, dict[str, str]]:
        """username -> {role, password, totp_secret} of the synthetic staff."""
        return json.loads(self.accounts_file.read_text("utf-8"))  # type: ignore[no-any-return]

    def issue_token(self, username: str, engine: Engine | None = None) -> str:
        """A bearer token for a synthetic user, minted through the auth service (no TOTP step spent)."""
        return self.issue_tokens([username], engine)[0]

    def issue_tokens(self, usernames: list[str], engine: Engine | None = None) -> list[str]:
        """A bearer token for each synthetic user, in order, minted through the auth service."""
        from app.auth import service as auth_service

        settings = self.settings()
        own = engine is None
        engine = engine or make_engine(settings)
        tokens = []
        try:
            with unit_of_work(engine) as session:
                crypto.bind(session, settings=settings, keyring=get_keyring(settings))
                for username in usernames:
                    user = auth_service.get_user(session, username=username)
                    tokens.append(auth_service.issue_token(session, user=user)[0])
        finally:
            if own:
                engine.dispose()
        return tokens

    def clone(self, dest: Path) -> Install:
        """A private copy (database and key file) for a benchmark that writes."""
        if dest.exists():
            shutil.rmtree(dest)
        (dest / "data").mkdir(parents=True)
        os.chmod(dest / "data", 0o700)
        shutil.copy2(self.accounts_file, dest / "accounts.json")
        shutil.copy2(self.key_file, dest / "data" / "keys.json")
        os.chmod(dest / "data" / "keys.json", 0o600)
        if self.database_url.startswith("sqlite"):
            shutil.copyfile(self.db_path, dest / "data" / "helpline.db")
            return Install(dest, self.size)
        return Install(dest, self.size, database_url=self.database_url)


# --- building --------------------------------------------------------------------------------


def _make_users(install: Install, settings: Settings) -> dict[str, Any]:
    from app.auth import service as auth_service

    accounts: dict[str, dict[str, str]] = {}
    names = [(name, "caseworker") for name in OFFICE]
    names += [(name, role) for role, name in ROLES.items()]
    ids: dict[str, Any] = {}
    with unit_of_work(make_engine(settings)) as session:
        crypto.bind(session, settings=settings, keyring=get_keyring(settings))
        for name, role in names:
            new = auth_service.create_user(session, actor="bench", username=name, role=role, password=PASSWORD)
            new.user.totp_enrolled = True
            new.user.must_change_password = False
            accounts[name] = {
                "role": role,
                "password": PASSWORD,
                "totp_secret": pyotp.parse_uri(new.otpauth_uri).secret,
            }
            ids[name] = new.user.id
    install.accounts_file.write_text(json.dumps(accounts, indent=1), "utf-8")
    return ids


class _Generator:
    """Rows for one batch of contacts (and their cases, transitions, keys and index entries)."""

    def __init__(self, *, settings: Settings, seed: int, size: int, user_ids: dict[str, Any], index_key: bytes):
        self.rng = random.Random(seed)
        self.today = date.today()
        self.start = self.today - timedelta(days=DAYS)
        self.size = size
        self.keyring = get_keyring(settings)
        self.kek_id = self.keyring.provider.primary_kek_id()
        # The width the server's widener would have reached at this size (app/lifecycle/reindex.py).
        self.bits = reindex.auto_width(size)
        self.index_key = index_key
        self.epoch = 1
        self.caseworkers = [user_ids[name] for name in OFFICE]
        self.case_n = 0

    def _text(self, lo: int, hi: int) -> str:
        rng = self.rng
        n = rng.randint(lo, hi)
        return " ".join(rng.choices(_WORDS, k=n))

    def _handle(self, channel: str, n: int) -> str:
        if channel in ("phone", "whatsapp", "signal"):
            x = (n * 7919 + 12345) % 10_000_000
            return f"+7 9{x % 100:02d} {x // 100 % 1000:03d}-{x // 100000 % 100:02d}-{n % 100:02d}"
        if channel == "email":
            return f"user{n}@example.org"
        return f"@caller_{n:07d}"

    def _key(self, subject_id: uuid.UUID, rows: dict[str, list[dict[str, Any]]]) -> tuple[bytes, int]:
        dek = os.urandom(32)
        key_id = self.rng.getrandbits(31) or 1
        kek_id, wrapped = self.keyring.wrap_dek(dek, subject_id=subject_id, key_id=key_id, kek_id=self.kek_id)
        rows["data_key"].append(
            {"subject_id": subject_id, "key_id": key_id, "kek_id": kek_id, "wrapped": wrapped, "created_on": self.today}
        )
        return dek, key_id

    def batch(self, first: int, count: int) -> dict[str, list[dict[str, Any]]]:
        rng = self.rng
        seal = cipher.seal
        rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES[2:]}
        for n in range(first, first + count):
            cid = uuid.uuid4()
            dek, key_id = self._key(cid, rows)
            received = self.start + timedelta(days=min(DAYS, int(DAYS * rng.random() ** 0.85)))
            channel = rng.choices(_CHANNELS, _CHANNEL_W)[0]
            region = rng.choices(_REGIONS, _REGION_W)[0]
            handle = self._handle(channel, n)
            recorder = self.caseworkers[n % CASEWORKERS]
            opens_case = rng.random() < 0.5

            def sealed(value: str | None, column: str, *, cid: uuid.UUID = cid, dek: bytes = dek, kid: int = key_id):
                if value is None:
                    return None
                return seal(value, dek=dek, key_id=kid, table="contact", column=column, row_id=cid, subject_id=cid)

            contact = {
                "id": cid,
                "code": _code("H", n, 0x1F3A5B7),
                "received_on": received,
                "channel": channel,
                "region": region,
                "language": rng.choice(_LANGS),
                "risk": rng.choices(_RISKS, _RISK_W)[0],
                "needs": ",".join(sorted(set(rng.sample(_NEEDS, rng.randint(1, 3))))),
                "outcome": "case_opened" if opens_case else rng.choices(_OUTCOMES, _OUTCOME_W)[0],
                "possible_duplicate": rng.random() < 0.03,
                "flagged_handle": rng.random() < 0.005,
                "recorded_by_id": recorder,
                "alias_ct": sealed(f"Caller {n}" if rng.random() < 0.8 else None, "alias"),
                "handle_ct": sealed(handle, "handle"),
                "notes_ct": sealed(self._text(8, 40), "notes"),
                "last_activity_on": received,
                "shredded_on": None,
                "shredded_by": None,
            }
            rows["contact"].append(contact)
            normalised = blind_index.normalise_handle(handle)
            bucket = blind_index.bucket(self.index_key, normalised, bits=self.bits)
            value_ct = seal(
                normalised,
                dek=dek,
                key_id=key_id,
                table=crypto.INDEX_VALUE_TABLE,
                column=crypto.INDEX_VALUE_COLUMN,
                row_id=cid,
                subject_id=cid,
            )
            rows["blind_index_entry"].append(
                {
                    "subject_id": cid,
                    "column": CONTACT_INDEX_COLUMN,
                    "epoch": self.epoch,
                    "bucket": bucket,
                    "value_ct": value_ct,
                }
            )
            if opens_case:
                self._case(contact, handle, rows)
        return rows

    def _case(self, contact: dict[str, Any], handle: str, rows: dict[str, list[dict[str, Any]]]) -> None:
        rng = self.rng
        seal = cipher.seal
        case_id = uuid.uuid4()
        dek, key_id = self._key(case_id, rows)
        self.case_n += 1
        opened = min(self.today, contact["received_on"] + timedelta(days=rng.randint(0, 6)))
        opener = contact["recorded_by_id"]
        assignee = opener if rng.random() < 0.7 else rng.choice(self.caseworkers)
        verifier = self.caseworkers[(self.caseworkers.index(opener) + 1) % CASEWORKERS]

        def sealed(value: str | None, column: str, table: str = "evacuation_case", row: uuid.UUID = case_id):
            if value is None:
                return None
            return seal(value, dek=dek, key_id=key_id, table=table, column=column, row_id=row, subject_id=case_id)

        reach = rng.choices(range(len(_MAIN)), _REACH_W)[0]
        history: list[tuple[str | None, str, date]] = [(None, "new", opened)]
        day = opened
        status = "new"
        for target in _MAIN[1 : reach + 1]:
            step = day + timedelta(days=rng.randint(2, 25))
            if step > self.today:
                break
            history.append((status, target, step))
            status, day = target, step
        if status in ("new", "verifying", "planning", "in_transit") and rng.random() < 0.45:
            step = day + timedelta(days=rng.randint(1, 30))
            if step <= self.today:
                side = "rejected" if status in ("new", "verifying") and rng.random() < 0.1 else rng.choice(_SIDE)
                history.append((status, side, step))
                status, day = side, step
        reached = {to: on for _, to, on in history}
        row = {
            "id": case_id,
            "code": _code("C", self.case_n, 0x2B5D3E9),
            "contact_id": contact["id"],
            "status": status,
            "region": contact["region"],
            "opened_on": opened,
            "opened_by_id": opener,
            "assigned_to_id": assignee,
            "verified_by_id": verifier if "planning" in reached else None,
            "verified_on": reached.get("planning"),
            "first_contact_on": contact["received_on"],
            "evacuated_on": reached.get("evacuated"),
            "resettled_on": reached.get("resettled"),
            "closed_on": reached.get("closed"),
            "status_on": day,
            "full_name_ct": sealed(f"Name{self.case_n} Surname{self.case_n % 977}", "full_name"),
            "handle_ct": sealed(handle, "handle"),
            "location_ct": sealed(rng.choice(["Grozny", "Makhachkala", "Nazran", "Moscow", "Tbilisi"]), "location"),
            "family_situation_ct": sealed(self._text(3, 12), "family_situation"),
            "notes_ct": sealed(self._text(15, 60), "notes"),
            "shredded_on": None,
            "shredded_by": None,
        }
        # Rows go in by bulk INSERT, past the ORM's seal hook: sealed here as the hook would.
        row["seal"] = seals.compute(self.keyring, "evacuation_case", case_id, {c: row[c] for c in seals.SEALED[Case]})
        rows["evacuation_case"].append(row)
        contact["last_activity_on"] = max(contact["received_on"], day)
        for position, (frm, to, on) in enumerate(history):
            tid = uuid.uuid4()
            note = self._text(4, 14) if rng.random() < 0.3 else None
            rows["case_transition"].append(
                {
                    "id": tid,
                    "case_id": case_id,
                    "position": position,
                    "from_status": frm,
                    "to_status": to,
                    "on": on,
                    "actor_id": opener if to in ("new", "verifying") else assignee,
                    "note_ct": sealed(note, "note", "case_transition", tid),
                }
            )


def _insert_order() -> list[str]:
    return ["data_key", "blind_index_entry", "contact", "evacuation_case", "case_transition"]


def _tables() -> dict[str, Any]:
    import app.models  # noqa: F401  (registers every table)
    from app.db import Base

    return dict(Base.metadata.tables)


def _index_key(settings: Settings, engine: Engine, size: int) -> bytes:
    """The first epoch's contact index key, with the epoch's widths set to what ``size`` rows want."""
    with unit_of_work(engine) as session:
        crypto.bind(session, settings=settings, keyring=get_keyring(settings))
        epoch, _, key = crypto.active_index_key(session, column=CONTACT_INDEX_COLUMN)
        if epoch != 1:
            raise RuntimeError("a fresh install should be at blind-index epoch 1")
        # Cases and flagged handles are not indexed in the data set: one bucket each, as for a handful.
        widths = {column: 0 for column in reindex.COLUMNS} | {CONTACT_INDEX_COLUMN: reindex.auto_width(size)}
        session.execute(
            update(IndexKey).where(IndexKey.epoch == 1).values(bits=max(widths.values()), widths=json.dumps(widths))
        )
    return key


def rebuild_counters(settings: Settings, engine: Engine) -> int | None:
    """The statistics work's recount, so the counters match the bulk-loaded rows (None if absent)."""
    try:
        from app.stats.counters import rebuild_counters as rebuild
    except ImportError:
        return None
    with unit_of_work(engine) as session:
        crypto.bind(session, settings=settings, keyring=get_keyring(settings))
        return int(rebuild(session))


def _bulk_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Loading a throw-away data set: no fsync, a big page cache, nothing deleted to zero.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.execute("PRAGMA cache_size=-200000")
    cursor.execute("PRAGMA secure_delete=OFF")
    cursor.close()


def build(size: int, dest: Path, *, seed: int = 20261121, log: Any = print) -> Install:
    """Build an install of ``size`` contacts at ``dest`` (replacing whatever is there)."""
    partial = dest.with_name(dest.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    install = Install(partial, size)
    install.data_dir.mkdir(parents=True)
    os.chmod(install.data_dir, 0o700)
    FileKeyProvider.create(install.key_file)
    settings = install.settings()
    forget_keyrings()
    bootstrap.migrate(settings)
    user_ids = _make_users(install, settings)
    engine = make_engine(settings)
    tables = _tables()
    gen = _Generator(
        settings=settings, seed=seed, size=size, user_ids=user_ids, index_key=_index_key(settings, engine, size)
    )
    started = time.monotonic()
    counts = dict.fromkeys(_insert_order(), 0)
    event.listen(engine, "connect", _bulk_pragmas)
    with engine.connect() as conn:
        for first in range(0, size, BATCH):
            rows = gen.batch(first, min(BATCH, size - first))
            with conn.begin():
                for name in _insert_order():
                    if rows[name]:
                        conn.execute(tables[name].insert(), rows[name])
                        counts[name] += len(rows[name])
            done = first + len(rows["contact"])
            if done % 200_000 == 0 or done == size:
                log(f"  data set: {done:,}/{size:,} contacts ({time.monotonic() - started:.0f} s)")
    load_seconds = time.monotonic() - started
    counter_rows = rebuild_counters(settings, engine)
    engine.dispose()
    db = sqlite3.connect(install.db_path, isolation_level=None)
    db.execute("ANALYZE")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the cache and its copies are one self-contained file
    db.close()
    meta = {
        "size": size,
        "seed": seed,
        "version": DATASET_VERSION,
        "migrations": migrations_fingerprint(),
        "rows": counts,
        "counter_rows": counter_rows,
        "load_seconds": round(load_seconds, 1),
        "build_seconds": round(time.monotonic() - started, 1),
    }
    (partial / "meta.json").write_text(json.dumps(meta, indent=1), "utf-8")
    if dest.exists():
        shutil.rmtree(dest)
    partial.rename(dest)
    forget_keyrings()
    return Install(dest, size)


def cached(size: int, *, seed: int = 20261121, log: Any = print) -> Install:
    """The install of ``size`` contacts from the cache, building it first if needed."""
    dest = DATA_ROOT / f"sqlite-{size}-s{seed}-v{DATASET_VERSION}-{migrations_fingerprint()}"
    if (dest / "meta.json").exists() and (dest / "data" / "helpline.db").exists():
        return Install(dest, size)
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    for older in sorted(DATA_ROOT.glob(f"sqlite-{size}-s{seed}-v{DATASET_VERSION}-*")):
        if older.suffix != ".partial" and (older / "meta.json").exists():
            try:
                return _upgrade(older, dest, size, log=log)
            except Exception as exc:  # an upgrade that fails means a rebuild, not a failed run
                log(f"  could not upgrade {older.name} ({type(exc).__name__}: {exc}); building anew")
                break
    log(f"building a data set of {size:,} contacts (cached under {dest.relative_to(ROOT.parent)})")
    return build(size, dest, seed=seed, log=log)


def _upgrade(older: Path, dest: Path, size: int, *, log: Any) -> Install:
    """Bring a cached data set built under older migrations to the current head, instead of rebuilding it."""
    log(f"upgrading the cached data set {older.name} to the current migrations")
    install = Install(older, size)
    settings = install.settings()
    forget_keyrings()
    bootstrap.migrate(settings)
    get_engine(settings).dispose()
    engine = make_engine(settings)
    counter_rows = rebuild_counters(settings, engine)
    engine.dispose()
    db = sqlite3.connect(install.db_path, isolation_level=None)
    db.execute("ANALYZE")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    info = meta(install)
    info.update({"migrations": migrations_fingerprint(), "counter_rows": counter_rows, "upgraded_from": older.name})
    (older / "meta.json").write_text(json.dumps(info, indent=1), "utf-8")
    older.rename(dest)
    forget_keyrings()
    return Install(dest, size)


def meta(install: Install) -> dict[str, Any]:
    path = install.root / "meta.json"
    return json.loads(path.read_text("utf-8")) if path.exists() else {}  # type: ignore[no-any-return]


# --- PostgreSQL: the same rows, copied --------------------------------------------------------


def _sqlite_rows(db: Path, table: str, columns: list[str]) -> Iterator[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        quoted = ", ".join(f'"{c}"' for c in columns)
        yield from conn.execute(f'SELECT {quoted} FROM "{table}"')  # noqa: S608 (names from our metadata)
    finally:
        conn.close()


def copy_to_postgres(install: Install, url: str, *, log: Any = print) -> Install:
    """Load the SQLite install's rows into an empty PostgreSQL database at ``url`` (same key file)."""
    settings = install.settings(database_url=url)
    forget_keyrings()
    bootstrap.migrate(settings)
    get_engine(settings).dispose()  # migrate's pooled connection would block CREATE DATABASE ... TEMPLATE
    engine = make_engine(settings)
    tables = _tables()
    started = time.monotonic()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        # Drop what migrate made (its own blind-index root, counters) and take the SQLite install's.
        cur.execute("TRUNCATE index_key, period_count" if "period_count" in tables else "TRUNCATE index_key")
        for name in TABLES:
            columns = [c.name for c in tables[name].columns]
            booleans = {i for i, c in enumerate(tables[name].columns) if str(c.type) == "BOOLEAN"}
            quoted = ", ".join(f'"{c}"' for c in columns)
            with cur.copy(f'COPY "{name}" ({quoted}) FROM STDIN') as copy:  # type: ignore[attr-defined]
                for row in _sqlite_rows(install.db_path, name, columns):
                    if booleans:
                        row = tuple(bool(v) if i in booleans and v is not None else v for i, v in enumerate(row))
                    copy.write_row(row)
        raw.commit()
    finally:
        raw.close()
    log(f"  copied to PostgreSQL in {time.monotonic() - started:.0f} s")
    rebuild_counters(settings, engine)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    engine.dispose()
    forget_keyrings()
    return Install(install.root, install.size, database_url=url)
