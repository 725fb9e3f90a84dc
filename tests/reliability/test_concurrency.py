"""Many people at once, on real servers with several workers: nothing lost, nothing doubled, no 500.

Each test runs against ``helpline serve --workers 4`` on PostgreSQL and ``--workers 2`` on SQLite,
over HTTP. Double submits send the same write twice at the same moment (two connections released by
one barrier), twenty times: the database, not a Python check, must let exactly one through. The mixed
load runs eight clients through intake, cases, moves with sealed notes, verification and statistics
while ``keys rotate`` and ``keys rotate --reencrypt`` run beside them; afterwards every acknowledged
record must still open, the counters must agree with the rows and the audit chain must be whole.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import httpx
import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.cases.models import Case, CaseTransition
from app.contacts.models import Contact
from app.crypto import service as crypto
from tests.reliability.load import contact_body
from tests.security import figures
from tests.support.live_server import LiveServer, unique_name

WORKERS = {"sqlite": 2, "postgresql": 4}
TWICE = 20
LOAD_SECONDS = 12.0
LOAD_CLIENTS = 8


@pytest.fixture(params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path) -> Iterator[LiveServer]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_server").create_database(f"conc_{uuid.uuid4().hex[:10]}")
    with LiveServer(tmp_path / "live", database_url=url, workers=WORKERS[request.param]) as server:
        yield server


def _client(live: LiveServer, token: str) -> httpx.Client:
    return live.client(token)


def _at_once(live: LiveServer, token: str, send: Callable[[httpx.Client], httpx.Response]) -> list[int]:
    """Send the same request on two connections released together; their statuses, sorted."""
    return sorted(r.status_code for r in _both(live, token, send))


def _both(live: LiveServer, token: str, send: Callable[[httpx.Client], httpx.Response]) -> list[httpx.Response]:
    """The two answers to one request sent on two connections released together."""
    barrier = threading.Barrier(2)
    clients = [_client(live, token), _client(live, token)]
    for c in clients:
        c.get("/api/v1/health")  # connections open before the barrier, so both requests leave together

    def go(c: httpx.Client) -> httpx.Response:
        barrier.wait()
        return send(c)

    try:
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(go, clients))
    finally:
        for c in clients:
            c.close()


@pytest.mark.slow
def test_each_write_sent_twice_at_once_takes_effect_once(live: LiveServer) -> None:
    worker = live.create_user(unique_name("cw"), "caseworker", via_cli=False)
    coordinator = live.create_user(unique_name("co"), "coordinator", via_cli=False)
    token, coord = live.issue_token(worker), live.issue_token(coordinator)
    today = date.today().isoformat()
    outcomes: Counter[str] = Counter()
    # The same contact sent twice at once under one Idempotency-Key: one record, the same answer twice.
    keyed: list[uuid.UUID] = []
    for n in range(TWICE):
        answers = _both(
            live,
            token,
            lambda c, n=n: c.post(
                "/api/v1/contacts", json=contact_body(1, n), headers={"Idempotency-Key": f"intake-{n}"}
            ),
        )
        assert [r.status_code for r in answers] == [201, 201]
        assert answers[0].json()["id"] == answers[1].json()["id"]
        keyed.append(uuid.UUID(answers[0].json()["id"]))
    with live.session() as db:
        handles = db.scalar(select(func.count()).select_from(Contact).where(Contact.id.in_(keyed)))  # type: ignore[attr-defined]
        assert handles == TWICE
        assert db.scalar(select(func.count()).select_from(Contact)) == TWICE  # type: ignore[attr-defined]
    with _client(live, token) as http:
        contacts = [
            uuid.UUID(http.post("/api/v1/contacts", json=contact_body(0, n)).json()["id"]) for n in range(TWICE)
        ]
    for contact_id in contacts:
        opened = _at_once(live, token, lambda c, i=contact_id: c.post("/api/v1/cases", json={"contact_id": str(i)}))
        outcomes[f"open {opened}"] += 1
    with live.session() as db:
        case_ids = {
            contact_id: case_id
            for case_id, contact_id in db.execute(select(Case.id, Case.contact_id).where(Case.contact_id.in_(contacts)))  # type: ignore[attr-defined]
        }
    for case_id in case_ids.values():
        moved = _at_once(
            live,
            token,
            lambda c, i=case_id: c.post(f"/api/v1/cases/{i}/transitions", json={"to": "verifying", "on": today}),
        )
        outcomes[f"move {moved}"] += 1
        verified = _at_once(live, coord, lambda c, i=case_id: c.post(f"/api/v1/cases/{i}/verify", json={}))
        outcomes[f"verify {verified}"] += 1
    figures.count("double_submits", 4 * TWICE)
    figures.count("double_submit_extra_effects", sum(n for k, n in outcomes.items() if "409" not in k))
    assert outcomes == {"open [201, 409]": TWICE, "move [200, 409]": TWICE, "verify [200, 409]": TWICE}
    with live.session() as db:
        assert len(case_ids) == TWICE
        steps = db.execute(  # type: ignore[attr-defined]
            select(CaseTransition.case_id, func.count(), func.count(func.distinct(CaseTransition.position)))
            .where(CaseTransition.case_id.in_(list(case_ids.values())))
            .group_by(CaseTransition.case_id)
        ).all()
        assert sorted((n, distinct) for _, n, distinct in steps) == [(2, 2)] * TWICE
        actions = Counter(
            db.scalars(  # type: ignore[attr-defined]
                select(AuditEntry.action).where(AuditEntry.action.in_(["case.open", "case.transition", "case.verify"]))
            )
        )
        assert actions == {"case.open": TWICE, "case.transition": TWICE, "case.verify": TWICE}
    _assert_consistent(live)


@pytest.mark.slow
def test_each_referral_move_and_withdrawal_sent_twice_at_once_takes_effect_once(live: LiveServer) -> None:
    """The referral locks through real server processes (several workers on PostgreSQL): a status move and a
    consent withdrawal each sent twice at once land once, and every referral's steps stay one per position."""
    from app.referrals import service as referral_service
    from app.referrals.models import Referral, ReferralStep
    from tests.referrals.test_package import AGE_RECIPIENT, PUBLIC_B64

    rounds = TWICE // 2
    worker = live.create_user(unique_name("cw"), "caseworker", via_cli=False)
    token = live.issue_token(worker)
    today = date.today().isoformat()
    with live.session() as db:
        referral_service.add_partner(
            session=db,
            actor="test",
            name="Shelter",
            age_recipient=AGE_RECIPIENT,
            verify_key=PUBLIC_B64,  # type: ignore[arg-type]
        )
    made = []
    with _client(live, token) as http:
        for n in range(rounds):
            contact = http.post("/api/v1/contacts", json=contact_body(2, n)).json()["id"]
            case = http.post("/api/v1/cases", json={"contact_id": contact}).json()["id"]
            consent = http.post(
                f"/api/v1/cases/{case}/consents",
                json={"partner": "Shelter", "given_on": today, "how": "spoken", "fields": ["full_name"]},
            ).json()["id"]
            referral = http.post(
                f"/api/v1/cases/{case}/referrals",
                json={"partner": "Shelter", "fields": ["full_name"], "consent_id": consent},
            ).json()["id"]
            made.append((case, consent, referral))
    outcomes: Counter[str] = Counter()
    for case, consent, referral in made:
        accepted = _at_once(
            live, token, lambda c, r=referral: c.post(f"/api/v1/referrals/{r}/status", json={"to": "accepted"})
        )
        outcomes[f"accept {accepted}"] += 1
        withdrawn = _at_once(
            live,
            token,
            lambda c, k=case, i=consent: c.post(f"/api/v1/cases/{k}/consents/{i}/withdraw", json={}),
        )
        outcomes[f"withdraw {withdrawn}"] += 1
    figures.count("double_submits", 2 * rounds)
    figures.count("double_submit_extra_effects", sum(n for k, n in outcomes.items() if "409" not in k))
    assert outcomes == {"accept [200, 409]": rounds, "withdraw [200, 409]": rounds}
    with live.session() as db:
        ids = [uuid.UUID(r) for _, _, r in made]
        assert set(db.scalars(select(Referral.status).where(Referral.id.in_(ids)))) == {"withdrawn"}  # type: ignore[attr-defined]
        steps = db.execute(  # type: ignore[attr-defined]
            select(ReferralStep.referral_id, ReferralStep.position, ReferralStep.status)
            .where(ReferralStep.referral_id.in_(ids))
            .order_by(ReferralStep.referral_id, ReferralStep.position)
        ).all()
        by_referral: dict[uuid.UUID, list[tuple[int, str]]] = {}
        for referral_id, position, status in steps:
            by_referral.setdefault(referral_id, []).append((position, status))
        assert list(by_referral.values()) == [[(0, "sent"), (1, "accepted"), (2, "withdrawn")]] * rounds
        actions = Counter(
            db.scalars(  # type: ignore[attr-defined]
                select(AuditEntry.action).where(AuditEntry.action.in_(["referral.status", "referral.consent_withdraw"]))
            )
        )
        assert actions == {"referral.status": rounds, "referral.consent_withdraw": rounds}
    _assert_consistent(live)


def _assert_consistent(live: LiveServer) -> None:
    check = live.cli("stats", "check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    verify = live.cli("audit", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    log = live.server_log.read_text(errors="replace")
    figures.count("request_replays", log.count(" replayed (attempt"))
    assert "Traceback" not in log
    assert " failed" not in log  # no request answered 500
    # The lock order holds: the server never met a deadlock (a replay may follow a rival's unique key).
    assert "40P01" not in log


class MixedLoad:
    """Clients that take contacts through a case's first steps, with a sealed note on each move."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.statuses: Counter[str] = Counter()
        self.server_errors: list[str] = []
        self.contacts: dict[uuid.UUID, tuple[str, str]] = {}  # id -> (caseworker, alias)
        self.notes: dict[uuid.UUID, str] = {}  # case id -> note of its move
        self.tokens: dict[str, str] = {}
        for _ in range(LOAD_CLIENTS):
            account = live.create_user(unique_name("mix"), "caseworker", via_cli=False)
            self.tokens[account.username] = live.issue_token(account)
        coordinator = live.create_user(unique_name("mixco"), "coordinator", via_cli=False)
        self.coordinator = live.issue_token(coordinator)
        self.threads = [threading.Thread(target=self._run, args=(name,), daemon=True) for name in self.tokens]

    def _note(self, what: str, response: httpx.Response) -> httpx.Response:
        with self.lock:
            self.statuses[f"{what} {response.status_code}"] += 1
            if response.status_code >= 500:
                self.server_errors.append(f"{what} {response.status_code} {response.text[:200]}")
        return response

    def _run(self, name: str) -> None:
        today = date.today().isoformat()
        with _client(self.live, self.tokens[name]) as http, _client(self.live, self.coordinator) as coord:
            n = 0
            while not self.stop.is_set():
                n += 1
                alias = f"mixed {name} {n}"
                body = {**contact_body(0, n), "alias": alias, "handle": f"@{name}_{n}"}
                made = self._note("contact", http.post("/api/v1/contacts", json=body))
                if made.status_code != 201:
                    continue
                contact_id = uuid.UUID(made.json()["id"])
                with self.lock:
                    self.contacts[contact_id] = (name, alias)
                opened = self._note("case", http.post("/api/v1/cases", json={"contact_id": str(contact_id)}))
                if opened.status_code != 201:
                    continue
                case_id = opened.json()["id"]
                note = f"note {name} {n}"
                moved = self._note(
                    "move",
                    http.post(
                        f"/api/v1/cases/{case_id}/transitions", json={"to": "verifying", "on": today, "note": note}
                    ),
                )
                if moved.status_code == 200:
                    with self.lock:
                        self.notes[uuid.UUID(case_id)] = note
                self._note("verify", coord.post(f"/api/v1/cases/{case_id}/verify", json={}))
                if n % 5 == 0:
                    self._note("summary", coord.get("/api/v1/stats/summary"))
                    self._note("list", http.get("/api/v1/contacts"))

    def __enter__(self) -> MixedLoad:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


@pytest.mark.slow
def test_mixed_load_with_key_rotation_loses_nothing_and_answers_no_500(live: LiveServer) -> None:
    with MixedLoad(live) as load:
        time.sleep(LOAD_SECONDS / 3)
        rotated = live.cli("keys", "rotate", check=False)
        time.sleep(LOAD_SECONDS / 3)
        reencrypted = live.cli("keys", "rotate", "--reencrypt", check=False)
        time.sleep(LOAD_SECONDS / 3)
        rotated_again = live.cli("keys", "rotate", check=False)
    figures.count("key_changes_under_load", 3)
    figures.count("mixed_load_answers", sum(load.statuses.values()))
    figures.count("mixed_load_server_errors", len(load.server_errors))
    assert rotated.returncode == 0, rotated.stderr
    assert reencrypted.returncode == 0, reencrypted.stderr
    assert rotated_again.returncode == 0, rotated_again.stderr
    assert load.server_errors == []
    # Every answer was one the workflow gives: created, moved, or a 409 for a verification a rival
    # beat (there is none here: one coordinator per case).
    assert {k.split()[1] for k in load.statuses} <= {"200", "201"}, load.statuses
    assert load.statuses["contact 201"] >= LOAD_CLIENTS * 3
    _assert_readable(live, load)
    _assert_consistent(live)


def _assert_readable(live: LiveServer, load: MixedLoad) -> None:
    """Every acknowledged contact and every acknowledged note opens under the keys now in use."""
    with live.session() as db:
        rows = db.execute(select(Contact.id, Contact.alias_ct).where(Contact.id.in_(list(load.contacts)))).all()  # type: ignore[attr-defined]
        assert len(rows) == len(load.contacts)
        for contact_id, blob in rows:
            alias = crypto.open_field(
                db,  # type: ignore[arg-type]
                blob,
                table="contact",
                column="alias",
                row_id=contact_id,
                subject_id=contact_id,
            )
            assert alias == load.contacts[contact_id][1]
        steps = db.execute(  # type: ignore[attr-defined]
            select(CaseTransition.id, CaseTransition.case_id, CaseTransition.note_ct).where(
                CaseTransition.case_id.in_(list(load.notes)), CaseTransition.note_ct.is_not(None)
            )
        ).all()
        assert len(steps) == len(load.notes)
        for step_id, case_id, blob in steps:
            note = crypto.open_field(
                db,  # type: ignore[arg-type]
                blob,
                table="case_transition",
                column="note",
                row_id=step_id,
                subject_id=case_id,
            )
            assert note == load.notes[case_id]
