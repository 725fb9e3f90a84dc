"""Many contacts and cases in one transaction, with every protection the services give one record.

The services write a record at a time: a flush for every audit entry, a SAVEPOINT for every record code,
the case re-read for every move. ``helpline demo-data`` writes a hundred thousand contacts, so this
writer keeps the records of a batch in memory and writes them with one INSERT per table, through the same
code that protects what the services write:

- every sealed field by ``crypto.seal_field`` under the record's own random data key, wrapped by the
  keyring under the primary KEK, bound (AAD) to its table, column, row and subject;
- every handle in every live blind-index epoch at that epoch's width, its normalised value sealed
  (``crypto.seal_index_value``), as ``crypto.add_index_entry`` writes it;
- cases sealed by ``app.audit.seals.compute`` over their security columns, as its ORM hook seals them;
- the audit entries the service calls write, in the same order, with the same actors, targets and
  detail, appended to the chain in one statement per batch (``audit.record_many``);
- the counter hooks the services call, so the unit of work applies the batch's deltas at commit;
- intake's duplicate and known-bad checks (a handle seen before, by this caseworker or someone else's
  record, or on the known-bad list) and the coordinators' queue entries they raise.

Its callers are trusted (synthetic data): it checks the workflow, the two-person rule and the dates as the
services do, but keeps no intake rate limit and audits no decrypted read, as ``record_contact`` with
``rate_limited=False``. It is meant for a server that is not taking intake meanwhile: a contact recorded by
someone else during the load is not among the duplicates it finds, and a record code drawn by someone else
meanwhile (one chance in a billion a code) fails that batch, which then rolls back whole.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from types import SimpleNamespace
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.attention.models import AttentionItem
from app.audit import seals
from app.audit import service as audit
from app.auth.models import Role, User
from app.cases import permissions, workflow
from app.cases import service as case_service
from app.cases.models import Case, CaseTransition
from app.cases.schemas import CaseFields
from app.cases.workflow import CaseStatus
from app.contacts import flagged
from app.contacts import service as contact_service
from app.contacts.models import Contact, FlaggedHandle
from app.contacts.schemas import ContactIn, Outcome, Risk
from app.crypto import blind_index, cipher
from app.crypto import service as crypto
from app.crypto.models import BlindIndexEntry, DataKey
from app.errors import Conflict, Forbidden, Invalid
from app.stats import counters

AuditLine = tuple[str, str, str | None, Mapping[str, object] | None]


@dataclass(frozen=True)
class Recorded:
    """What intake answered for one contact: the (unsaved) row and its two checks."""

    contact: Contact
    possible_duplicate: bool
    flagged_handle: bool


def _record(model: Any, **values: Any) -> Any:
    """A new row as a plain object with the model's attributes (an ORM object costs more than its sealing).

    The services' helpers and the counter hooks read it like the model; its ``vars`` are the INSERT's row.
    """
    if values.keys() != _COLUMNS[model]:
        raise TypeError(f"{model.__name__} needs {sorted(_COLUMNS[model] ^ values.keys())}")  # a programming error
    return SimpleNamespace(**values)


_COLUMNS = {model: frozenset(c.key for c in model.__table__.columns) - {"seal"} for model in (Contact, Case)}


class BulkWriter:
    """One bulk load: what it has written so far (for the duplicate check), and the batch being built.

    Made in a session that sees the known-bad list; then ``with writer.batch(session):`` around the
    calls of each transaction writes that batch's rows when the block ends.
    """

    def __init__(self, session: Session) -> None:
        self.off = crypto.settings_of(session).bench_disable_crypto
        # Record codes in use: a batch draws its codes without a SAVEPOINT per row.
        self.codes = set(session.scalars(select(Contact.code))) | set(session.scalars(select(Case.code)))
        # Contacts indexed before this load are looked up in the index; those of this load in memory.
        self.prior = session.scalar(
            select(BlindIndexEntry.subject_id).where(BlindIndexEntry.column == contact_service.INDEX_COLUMN).limit(1)
        )
        self.known_bad = self._known_bad(session)
        self.seen: dict[str, list[tuple[uuid.UUID, str, uuid.UUID]]] = {}  # normalised -> (id, code, recorder)
        self.assignee: dict[uuid.UUID, uuid.UUID] = {}  # contact -> the caseworker its case is assigned to
        self.written: set[uuid.UUID] = set()
        self._session: Session | None = None
        self._clear()

    # --- the batch ---------------------------------------------------------------------------

    def _clear(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.contacts: list[Contact] = []
        self.entries: list[dict[str, Any]] = []
        self.cases: list[Case] = []
        self.moves: list[dict[str, Any]] = []
        self.queue: list[dict[str, Any]] = []
        self.lines: list[AuditLine] = []
        self.positions: dict[uuid.UUID, int] = {}

    @contextmanager
    def batch(self, session: Session) -> Iterator[BulkWriter]:
        """Collect one transaction's records, written to ``session`` when the block ends without error."""
        self._clear()
        self._session = session
        crypto.hold_keyring(session)  # before the primary KEK is read, as create_subject_key does
        self.epochs = crypto.live_epochs(session)
        self.today = crypto.settings_of(session).today()
        try:
            yield self
            self._write(session)
        finally:
            self._session = None
            self._clear()

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("records are written inside 'with writer.batch(session)'")
        return self._session

    def _write(self, session: Session) -> None:
        # Lock order (app/db.py): domain rows, then the audit chain; counters follow at commit.
        cases = [vars(case) for case in self.cases]
        keyring = crypto.keyring_of(session)
        for row in cases:  # what the seal hook computes for an ORM insert (app.audit.seals)
            row["seal"] = seals.compute(keyring, Case.__tablename__, row["id"], {c: row[c] for c in seals.SEALED[Case]})
        tables: list[tuple[Any, list[dict[str, Any]]]] = [
            (DataKey, self.keys),
            (Contact, [vars(contact) for contact in self.contacts]),
            (BlindIndexEntry, self.entries),
            (Case, cases),
            (CaseTransition, self.moves),
            (AttentionItem, self.queue),
        ]
        conn = session.connection()
        for model, rows in tables:
            if rows:
                conn.execute(insert(model), rows)  # on the connection: one Core executemany per table
        audit.record_many(session, self.lines)
        self.written.update(c.id for c in self.contacts)

    # --- building blocks (what create_subject_key, insert_with_code and add_index_entry do) -------

    def _known_bad(self, session: Session) -> dict[str, list[uuid.UUID]]:
        found: dict[str, list[uuid.UUID]] = {}
        for entry_id, blob in session.execute(select(FlaggedHandle.id, FlaggedHandle.handle_ct)):
            try:
                plain = crypto.open_field(
                    session, blob, table="flagged_handle", column="handle", row_id=entry_id, subject_id=entry_id
                )
            except crypto.ShreddedError:
                continue
            if plain is not None:
                found.setdefault(blind_index.normalise_handle(plain), []).append(entry_id)
        return found

    def _code(self, prefix: str) -> str:
        """A random 30-bit code like ``new_code``'s, from one read of the system's random source."""
        alphabet = contact_service.CODE_ALPHABET
        while True:
            bits = int.from_bytes(secrets.token_bytes(4)) >> 2
            chars = "".join(alphabet[(bits >> shift) & 31] for shift in (0, 5, 10, 15, 20, 25))
            code = f"{prefix}-{chars[:4]}-{chars[4:]}"
            if code not in self.codes:
                self.codes.add(code)
                return code

    def _key(self, subject_id: uuid.UUID) -> crypto.SubjectKey:
        dek = cipher.new_key()
        key_id = secrets.randbits(31) or 1
        if not self.off:
            kek_id, wrapped = crypto.keyring_of(self.session).wrap_dek(dek, subject_id=subject_id, key_id=key_id)
            self.keys.append(
                {"subject_id": subject_id, "key_id": key_id, "kek_id": kek_id, "wrapped": wrapped}
                | {"created_on": date.today()}
            )
        return crypto.SubjectKey(subject_id, key_id, dek)

    def _seal(self, values: Any, names: tuple[str, ...], *, key: crypto.SubjectKey, table: str) -> dict[str, Any]:
        session = self.session
        return {
            f"{name}_ct": crypto.seal_field(
                session, getattr(values, name), key=key, table=table, column=name, row_id=key.subject_id
            )
            for name in names
        }

    def _index(self, key: crypto.SubjectKey, column: str, normalised: str | None) -> None:
        if not normalised or self.off:
            return
        sealed = crypto.seal_index_value(normalised, key=key)
        for live in self.epochs:
            derived = crypto.epoch_key(self.session, column=column, epoch=live.epoch)
            bucket = blind_index.bucket(derived, normalised, bits=live.width(column))
            self.entries.append(
                {"subject_id": key.subject_id, "column": column, "epoch": live.epoch}
                | {"bucket": bucket, "value_ct": sealed}
            )

    def _audit(self, actor: str, action: str, target: str | None, detail: Mapping[str, object] | None) -> None:
        self.lines.append((actor, action, target, detail))

    def _raise(self, kind: str, *, by: str, code: str, other: str | None = None) -> None:
        # New records have no open entry yet: nothing here can meet the rule of one open entry per thing.
        self.queue.append(
            {"id": crypto.new_subject_id(), "kind": kind, "raised_on": self.today, "raised_by": by}
            | {"record_code": code, "other_code": other, "case_id": None}
        )
        self._audit(by, f"attention.{kind}", code, {"other": other} if other else None)

    # --- what the services do ------------------------------------------------------------------

    def _duplicates(self, actor: User, normalised: str, handle: str) -> tuple[list[tuple[uuid.UUID, str]], list[str]]:
        """(visible matches as (id, code), codes of others' matching records), as record_contact splits them."""
        seen: list[tuple[uuid.UUID, str]] = []
        others: list[str] = []
        for other_id, code, recorder in self.seen.get(normalised, ()):
            mine = recorder == actor.id or self.assignee.get(other_id) == actor.id
            (seen.append((other_id, code)) if mine else others.append(code))
        if self.prior is not None:
            session = self.session
            earlier = flagged.handle_matches(
                session, model=Contact, table="contact", column=contact_service.INDEX_COLUMN, value=handle
            )
            earlier = [i for i in earlier if i not in self.written]
            if earlier:
                visible = permissions.contacts_visible_to(actor)
                for row_id, code, readable in session.execute(
                    select(Contact.id, Contact.code, visible).where(Contact.id.in_(earlier))
                ):
                    (seen.append((row_id, code)) if readable else others.append(code))
        return sorted(seen, key=lambda s: s[1]), sorted(others)

    def record_contact(self, *, actor: User, data: ContactIn) -> Recorded:
        """``contacts.service.record_contact`` (with ``rate_limited=False``) for a batch."""
        if actor.role != Role.caseworker:
            raise Forbidden()
        session = self.session
        contact_service.validate_region(session, data.region)
        contact_service.validate_language(session, data.language)
        if data.received_on > self.today:
            raise Invalid.field("received_on", "must not be in the future")
        normalised = blind_index.normalise_handle(data.handle) if data.handle else None
        seen: list[tuple[uuid.UUID, str]] = []
        others: list[str] = []
        hits: list[uuid.UUID] = []
        if normalised and data.handle:
            seen, others = self._duplicates(actor, normalised, data.handle)
            hits = self.known_bad.get(normalised, [])
        contact_id = crypto.new_subject_id()
        key = self._key(contact_id)
        contact: Contact = _record(
            Contact,
            id=contact_id,
            code=self._code("H"),
            received_on=data.received_on,
            channel=data.channel.value,
            region=data.region,
            language=data.language.lower(),
            risk=data.risk.value,
            needs=",".join(sorted({n.value for n in data.needs})),
            outcome=None,
            possible_duplicate=bool(seen),
            flagged_handle=bool(hits),
            recorded_by_id=actor.id,
            last_activity_on=data.received_on,
            shredded_on=None,
            shredded_by=None,
            **self._seal(data, contact_service.SEALED, key=key, table="contact"),
        )
        self.contacts.append(contact)
        self._index(key, contact_service.INDEX_COLUMN, normalised)
        if normalised:
            self.seen.setdefault(normalised, []).append((contact_id, contact.code, actor.id))
        name, code = actor.username, contact.code
        self._audit(
            name, "contact.record", code, {"channel": contact.channel, "region": contact.region, "risk": contact.risk}
        )
        if hits:
            self._audit(name, "contact.flagged_handle", code, {"entries": [h.hex for h in hits]})
            self._raise("known_bad", by=name, code=code)
        for other in others:
            self._raise("duplicate", by=name, code=code, other=other)
        if contact.risk == Risk.immediate:
            self._raise("immediate_danger", by=name, code=code)
        counters.contact_recorded(session, contact=contact)
        return Recorded(contact, possible_duplicate=bool(seen), flagged_handle=bool(hits))

    def set_outcome(self, *, actor: User, contact: Contact, outcome: str, on: date | None = None) -> None:
        """``contacts.service.set_outcome`` (and ``change_outcome``, which opening a case uses)."""
        if contact.recorded_by_id != actor.id:
            raise Forbidden("only the caseworker who recorded this contact sets its outcome")
        new = Outcome(outcome).value
        if on is None and new == Outcome.case_opened:
            raise Invalid.field("outcome", "open a case from this contact instead")
        if on is None and contact.outcome == Outcome.case_opened:
            raise Conflict("a case is open from this contact; its outcome stays case_opened")
        old = contact.outcome
        if old == new:
            return
        contact.outcome = new
        contact.last_activity_on = max(contact.last_activity_on, on or self.today)
        self._audit(actor.username, "contact.outcome", contact.code, {"from": old, "to": new})
        counters.contact_outcome_changed(self.session, contact=contact, old=old, new=new)

    def open_case(self, *, actor: User, contact: Contact, data: CaseFields, on: date) -> Case:
        """``cases.service.open_case`` for a contact of this load."""
        if actor.role != Role.caseworker:
            raise Forbidden()
        if contact.recorded_by_id != actor.id and self.assignee.get(contact.id) != actor.id:
            raise Forbidden()
        if contact.id in self.assignee:
            raise Conflict("a case is already open from this contact")
        if on > self.today:
            raise Invalid.field("opened_on", "must not be in the future")
        if on < contact.received_on:
            raise Invalid.field("opened_on", "must not be before the contact was received")
        case_id = crypto.new_subject_id()
        key = self._key(case_id)
        case: Case = _record(
            Case,
            id=case_id,
            code=self._code("C"),
            contact_id=contact.id,
            status=CaseStatus.new.value,
            region=contact.region,
            opened_on=on,
            opened_by_id=actor.id,
            assigned_to_id=actor.id,
            verified_by_id=None,
            verified_on=None,
            first_contact_on=contact.received_on,
            evacuated_on=None,
            resettled_on=None,
            closed_on=None,
            status_on=on,
            shredded_on=None,
            shredded_by=None,
            **self._seal(data, case_service.SEALED, key=key, table=case_service.TABLE),
        )
        self.cases.append(case)
        self.assignee[contact.id] = actor.id
        handle = data.handle
        self._index(key, case_service.INDEX_COLUMN, blind_index.normalise_handle(handle) if handle else None)
        self._audit(actor.username, "case.open", case.code, {"contact": contact.code, "on": on.isoformat()})
        counters.case_opened(self.session, case=case)
        self._move(actor, case, CaseStatus.new.value, on, position=0)
        self.set_outcome(actor=actor, contact=contact, outcome=Outcome.case_opened.value, on=on)
        return case

    def verify(self, *, actor: User, case: Case, on: date) -> None:
        """``cases.service.verify``: the second person's verification."""
        if not permissions.may_verify(actor, case):
            raise Forbidden("the caseworker who opened a case cannot verify it; a second person must")
        if case.status in workflow.TERMINAL:
            raise Conflict(f"a {case.status} case cannot be verified")
        if case_service.is_verified(case):
            raise Conflict("this case is already verified")
        if on > self.today or on < case.opened_on:
            raise Invalid.field("on", "must be between the case's opening and today")
        case.verified_by_id = actor.id
        case.verified_on = on
        self._audit(actor.username, "case.verify", case.code, {"on": on.isoformat()})

    def transition(self, *, actor: User, case: Case, to: str, on: date) -> None:
        """``cases.service.transition`` along the workflow table, with the same checks."""
        if not permissions.may_transition(actor, case):
            raise Forbidden()
        target = CaseStatus(to).value
        if on > self.today or on < case.opened_on or on < case.status_on:
            raise Invalid.field("on", "must be between the case's last status change and today")
        if not workflow.can_move(case.status, target):
            raise Conflict(f"a case cannot move from {case.status} to {target}")
        if target in workflow.NEEDS_VERIFICATION and not case_service.is_verified(case):
            raise Conflict(f"moving to {target} needs a verification by someone other than the case's opener")
        old = case.status
        self._move(actor, case, target, on, position=self.positions[case.id] + 1)
        self._audit(actor.username, "case.transition", case.code, {"from": old, "to": target, "on": on.isoformat()})

    def _move(self, actor: User, case: Case, to: str, on: date, *, position: int) -> None:
        """One step of the history and the dates it implies (``cases.service._move``)."""
        old = case.status if position > 0 else None
        self.moves.append(
            {"id": crypto.new_subject_id(), "case_id": case.id, "position": position, "from_status": old}
            | {"to_status": to, "on": on, "actor_id": actor.id, "note_ct": None}
        )
        self.positions[case.id] = position
        workflow.stamp(case, to, on)
        counters.case_moved(self.session, case=case, from_status=old, to_status=to, on=on)
