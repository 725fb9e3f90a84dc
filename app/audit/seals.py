"""Seals over the security columns of accounts and cases: a database writer cannot change them unseen.

A seal is ``KID:HEX``, HEX being HMAC-SHA256 under the provider's seal key (``app.crypto.purpose``) of
``"helpline-seal-v1\\n" | table | "\\n" | canonical JSON of the row id and its sealed columns``:

- ``user_account``: username, role, active, password_hash, duress_hash, totp_secret_ct, totp_enrolled,
  must_change_password (a planted duress password would be a second way in, so it is sealed too);
- ``evacuation_case``: contact, opener, assignee, verifier and verification day.

Computed in one place — a ``before_flush`` hook — so every ORM writer of those columns reseals the row
without calling anything, and checked in one place — the ``load`` and ``refresh`` events — so a row
whose seal fails is never handed to code: the load raises ``SealBroken`` (no sign-in, no access), the
unit of work keeps the ``alarm.seal_broken`` audit entry, and ``helpline audit verify`` lists the row.
Bulk ``UPDATE`` statements through the ORM that set a sealed column are refused outright: they would
bypass the hook. Raw SQL bypasses it too, and that is exactly the forgery the seal catches.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

from sqlalchemy import Connection, event, inspect, select
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, object_session
from sqlalchemy.orm.base import NO_VALUE

from app.auth.models import User
from app.cases.models import Case
from app.crypto import purpose
from app.crypto.errors import CryptoError
from app.crypto.keyring import Keyring
from app.db import ALARMS_STAGE, commit_step, new_id
from app.errors import Conflict, HelplineError

PREFIX = b"helpline-seal-v1\n"
SEALED: dict[type[Any], tuple[str, ...]] = {
    User: (
        "username",
        "role",
        "active",
        "password_hash",
        "duress_hash",
        "totp_secret_ct",
        "totp_enrolled",
        "must_change_password",
    ),
    Case: ("contact_id", "opened_by_id", "assigned_to_id", "verified_by_id", "verified_on"),
}
SEALED_TABLE_NAMES = frozenset(m.__tablename__ for m in SEALED)  # type: ignore[attr-defined]
# Column defaults applied before sealing, so the seal covers the value the INSERT will store.
_DEFAULTS: dict[str, object] = {"active": True, "totp_enrolled": False, "must_change_password": False}
_ALARMS = "seal_alarms"


class SealBroken(HelplineError):
    """A row's security columns were changed outside Helpline: refused, and the alarm is kept."""

    status_code = 403
    keep_changes = True

    @classmethod
    def default_detail(cls) -> str:
        return "this record failed its integrity check and is refused; an administrator has been alerted"


def _plain(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def message(table: str, row_id: uuid.UUID, values: dict[str, object]) -> bytes:
    """The bytes a seal is computed over."""
    doc = {"id": row_id.hex, **{k: _plain(v) for k, v in values.items()}}
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return PREFIX + table.encode("ascii") + b"\n" + body


def mac(key: bytes, kid: int, table: str, row_id: uuid.UUID, values: dict[str, object]) -> str:
    """The seal under a given key: ``KID:HEX``."""
    return f"{kid}:{hmac.new(key, message(table, row_id, values), hashlib.sha256).hexdigest()}"


def compute(
    keyring: Keyring, table: str, row_id: uuid.UUID, values: dict[str, object], *, kid: int | None = None
) -> str:
    found, key = purpose.purpose_key(keyring, purpose.SEAL, root_id=kid)
    return mac(key, found, table, row_id, values)


def holds(keyring: Keyring, table: str, row_id: uuid.UUID, values: dict[str, object], seal: str | None) -> bool:
    """Whether ``seal`` is the seal of these values (False for a missing or foreign-keyed seal)."""
    if not seal or ":" not in seal:
        return False
    kid_text, _ = seal.split(":", 1)
    try:
        expected = compute(keyring, table, row_id, values, kid=int(kid_text))
    except (ValueError, CryptoError):
        return False
    return hmac.compare_digest(expected.encode("ascii"), seal.encode("ascii", "replace"))


def _values(obj: Any, columns: tuple[str, ...]) -> dict[str, object]:
    return {name: getattr(obj, name) for name in columns}


# -- writing: every flush reseals what changed -------------------------------------------------


@event.listens_for(Session, "before_flush")
def _reseal(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    for obj in (*session.new, *session.dirty):
        columns = SEALED.get(type(obj))
        if columns is None:
            continue
        state = inspect(obj)
        if not state.pending and not any(state.attrs[c].history.has_changes() for c in columns):
            continue
        keyring = session.info.get("keyring")
        if keyring is None:
            raise CryptoError("security columns can only be written in a session bound to the key provider")
        if obj.id is None:
            obj.id = new_id()
        if not state.pending:
            _still_as_loaded(session, obj, columns)
        for name, default in _DEFAULTS.items():
            if name in columns and getattr(obj, name) is None:
                setattr(obj, name, default)
        if state.pending:
            # Every sealed column set explicitly (None if never given): the INSERT stores exactly what the
            # seal covers, and the object holds it afterwards, so a later reseal can compare it as loaded.
            for name in columns:
                if name not in state.dict:
                    setattr(obj, name, None)
        obj.seal = compute(keyring, type(obj).__tablename__, obj.id, _values(obj, columns))


def _still_as_loaded(session: Session, obj: Any, columns: tuple[str, ...]) -> None:
    """The seal covers every sealed column, so it may only be recomputed over the row as it now stands.

    Two transactions changing different sealed columns of one row (PostgreSQL, READ COMMITTED) would
    each write a seal over the other's old values, and the row would fail for good. So the row is locked
    and its sealed columns compared with what this session loaded; if another transaction changed them
    meanwhile, this one gets a 409 and can be retried. SQLite writers are serialised from BEGIN, so
    their snapshot is always the current row.
    """
    if session.get_bind().dialect.name == "sqlite":
        return
    state = inspect(obj)
    loaded = {c: state.committed_state.get(c, getattr(obj, c)) for c in columns}
    # A column given a new value while the object was expired has no loaded value (NO_VALUE): it is being
    # overwritten, so only the others are compared.
    known = [c for c in columns if loaded[c] is not NO_VALUE]
    if not known:
        return
    table = type(obj).__table__
    row = session.execute(
        select(*(table.c[c] for c in known)).where(table.c.id == obj.id).with_for_update()
    ).one_or_none()
    if row is None or tuple(row) != tuple(loaded[c] for c in known):
        raise Conflict("this account or case was changed by someone else meanwhile; try again")


@event.listens_for(Session, "do_orm_execute")
def _bulk_writes(state: ORMExecuteState) -> None:
    """Bulk INSERTs of whole rows are sealed here; bulk UPDATEs of sealed columns are refused."""
    if not (state.is_update or state.is_insert):
        return
    mapper = state.bind_arguments.get("mapper")
    columns = SEALED.get(mapper.class_) if mapper is not None else None
    if not columns or mapper is None:
        return
    params = state.parameters
    rows = params if isinstance(params, list) else [params] if isinstance(params, dict) else []
    if state.is_insert and rows and all(isinstance(r, dict) and r.get("id") is not None for r in rows):
        keyring = state.session.info.get("keyring")
        if keyring is None:
            raise CryptoError("security columns can only be written in a session bound to the key provider")
        for row in rows:
            for name, default in _DEFAULTS.items():
                if name in columns and row.get(name) is None:
                    row[name] = default
            row["seal"] = compute(keyring, mapper.class_.__tablename__, row["id"], {c: row.get(c) for c in columns})
        return
    statement: Any = state.statement
    touched = {getattr(c, "key", str(c)) for c in getattr(statement, "_values", None) or {}}
    for row in rows:
        touched |= set(row) if isinstance(row, dict) else set()
    if state.is_insert or touched & {*columns, "seal"}:
        raise CryptoError(
            f"sealed columns of {mapper.class_.__name__} must be changed on loaded objects, or inserted as whole "
            "rows with their ids: this bulk statement would leave the seal stale"
        )


def seal_insert(keyring: Keyring, model: type[Any], values: dict[str, Any]) -> dict[str, Any]:
    """Seal a whole row about to be inserted through Core, if its table is sealed; returns ``values``.

    A Core INSERT passes neither the ``before_flush`` hook nor ``do_orm_execute``, so a hot path that
    writes rows through Core calls this for every row it inserts: a sealed table's row goes in sealed,
    and a table that becomes sealed later is sealed on that path without anyone remembering it.
    """
    columns = SEALED.get(model)
    if columns:
        for name, default in _DEFAULTS.items():
            if name in columns and values.get(name) is None:
                values[name] = default
        values["seal"] = compute(keyring, model.__tablename__, values["id"], {c: values.get(c) for c in columns})
    return values


# -- reading: a row that fails is never handed out ----------------------------------------------


def _check(obj: Any, session: Session | None) -> None:
    if session is None:
        return
    keyring = session.info.get("keyring")
    if keyring is None:
        return
    model = type(obj)
    columns = SEALED[model]
    what, label = ("user", "username") if model is User else ("case", "code")
    state = inspect(obj)
    # committed_state names the attributes changed in memory and not yet flushed: an expired object given a new
    # value and then refreshed holds that new value, not the row's, so the row as stored is checked instead.
    if (state.unloaded | state.committed_state.keys()) & {*columns, "seal", label}:
        # Read narrowly (load_only, defer): the row as stored is checked instead, so leaving the seal or a
        # sealed column out of a query cannot carry a forged row past the check. Through the connection:
        # a session query here could autoflush in the middle of a load.
        t = model.__table__
        row = (
            session.connection()
            .execute(select(t.c[label], t.c.seal, *(t.c[c] for c in columns)).where(t.c.id == obj.id))
            .one()
        )
        name, seal, values = row[0], row[1], dict(zip(columns, row[2:], strict=True))
    else:
        name, seal, values = getattr(obj, label), obj.seal, _values(obj, columns)
    if holds(keyring, model.__tablename__, obj.id, values, seal):
        return
    session.info.setdefault(_ALARMS, set()).add((what, name))
    # Out of the identity map: a later query in the same session must load, and refuse, it again.
    session.expunge(obj)
    raise SealBroken()


def _on_load(target: Any, context: Any) -> None:
    _check(target, object_session(target))


def _on_refresh(target: Any, context: Any, attrs: object) -> None:
    if attrs is not None and not (set(attrs) & {*SEALED[type(target)], "seal"}):  # type: ignore[call-overload]
        return  # a refresh of unsealed columns only (an atomic counter): nothing sealed came from the database
    _check(target, object_session(target))


for _model in SEALED:
    event.listen(_model, "load", _on_load)
    event.listen(_model, "refresh", _on_refresh)


@commit_step(ALARMS_STAGE)
def _record_alarms(session: Session) -> None:
    alarms = session.info.pop(_ALARMS, None)
    if not alarms:
        return
    from app.audit import service as audit

    for what, name in sorted(alarms):
        audit.record(
            session,
            actor=audit.SYSTEM,
            action="alarm.seal_broken",
            target=name[:32],
            detail={"kind": what, "why": "security columns changed outside Helpline"},
        )


def roll_back_keeping_alarms(session: Session) -> None:
    """End a read-only transaction that refused a row, keeping its alarms for the transaction that
    writes them (a SQLite reader cannot write them itself)."""
    alarms = session.info.pop(_ALARMS, None)
    session.rollback()
    if alarms:
        session.info[_ALARMS] = alarms


@event.listens_for(Session, "after_soft_rollback")
def _alarms_survive_nothing(session: Session, _previous: object) -> None:
    # A rolled-back unit of work (not a kept one) drops its pending alarms with everything else;
    # SealBroken itself asks the unit of work to keep its changes, so its alarm is written.
    if not session.in_transaction():
        session.info.pop(_ALARMS, None)


# -- listing, for ``audit verify`` and the one-time sealing of existing rows ------------------


def broken_rows(conn: Connection | Session, keyring: Keyring) -> Iterator[str]:
    """Every account and case whose seal fails, as ``user NAME`` or ``case CODE``."""
    for model, label in ((User, "username"), (Case, "code")):
        columns = SEALED[model]
        table = model.__table__  # type: ignore[attr-defined]
        cols = [table.c.id, table.c[label], table.c.seal, *(table.c[c] for c in columns)]
        for row in conn.execute(select(*cols).order_by(table.c[label])):
            values = dict(zip(columns, row[3:], strict=True))
            if not holds(keyring, model.__tablename__, row[0], values, row[2]):
                yield f"{'user' if model is User else 'case'} {row[1]}"


def _model_of(table: str) -> Any:
    return next(m for m in SEALED if m.__tablename__ == table)  # type: ignore[attr-defined]


def check_rows(conn: Connection | Session, keyring: Keyring, table: str, row_ids: list[uuid.UUID]) -> None:
    """A trusted bulk writer (re-encryption) checks the rows it is about to change: a forged one is refused."""
    model = _model_of(table)
    columns = SEALED[model]
    t = model.__table__
    for row in conn.execute(select(t.c.id, t.c.seal, *(t.c[c] for c in columns)).where(t.c.id.in_(row_ids))):
        if not holds(keyring, table, row[0], dict(zip(columns, row[2:], strict=True)), row[1]):
            raise SealBroken()


def reseal_rows(conn: Connection | Session, keyring: Keyring, table: str, row_ids: list[uuid.UUID]) -> None:
    """Seal these rows again over what is stored now, after a bulk writer that checked them first."""
    model = _model_of(table)
    columns = SEALED[model]
    t = model.__table__
    for row in conn.execute(select(t.c.id, *(t.c[c] for c in columns)).where(t.c.id.in_(row_ids))).all():
        seal = compute(keyring, table, row[0], dict(zip(columns, row[1:], strict=True)))
        conn.execute(t.update().where(t.c.id == row[0]).values(seal=seal))


def seal_unsealed(conn: Connection | Session, keyring: Keyring) -> int:
    """Seal every row that has no seal yet (once, when an install first gets seals); returns how many."""
    done = 0
    for model in SEALED:
        columns = SEALED[model]
        table = model.__table__  # type: ignore[attr-defined]
        rows = conn.execute(select(table.c.id, *(table.c[c] for c in columns)).where(table.c.seal.is_(None))).all()
        for row in rows:
            values = dict(zip(columns, row[1:], strict=True))
            seal = compute(keyring, model.__tablename__, row[0], values)
            conn.execute(table.update().where(table.c.id == row[0]).values(seal=seal))
            done += 1
    return done
