"""A direct delivery waits on the partner's server holding nothing: a stalled inbox cannot stop other writers.

The attack: a partner's inbox (or whoever answers at its address) takes the package and then answers slowly, up
to the delivery's timeout. If the delivering transaction were still open, every writer behind its locks would
wait as long — on SQLite every writer at all. Here the inbox holds the request until the test lets it go; while
it does, the caseworker withdraws the referral and a contact is recorded, on both databases.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from app import bootstrap
from app.audit.models import AuditEntry
from app.auth.models import User
from app.contacts.models import Contact
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.db import make_engine, unit_of_work
from app.referrals import delivery
from app.referrals import service as referral_service
from app.referrals.models import Referral
from app.referrals.schemas import ConsentIn, ReferralIn
from tests.conftest import BACKENDS, make_settings
from tests.factories import Factory
from tests.referrals.test_package import AGE_RECIPIENT, PUBLIC_B64


class _StalledInbox(http.server.BaseHTTPRequestHandler):
    arrived: threading.Event
    release: threading.Event

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.arrived.set()
        self.release.wait(timeout=60)
        self.send_response(201)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def inbox() -> Iterator[tuple[str, threading.Event, threading.Event]]:
    arrived, release = threading.Event(), threading.Event()
    handler = type("Inbox", (_StalledInbox,), {"arrived": arrived, "release": release})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/referrals/inbox", arrived, release
    finally:
        release.set()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stalled_partner_inbox_holds_up_no_other_writer(backend, database_url_factory, tmp_path, inbox) -> None:
    url, arrived, release = inbox
    settings = make_settings(tmp_path, database_url=database_url_factory(backend))
    bootstrap.migrate(settings)
    engine = make_engine(settings)

    def run(work: Callable[[Any, User], Any], username: str) -> Any:
        with unit_of_work(engine) as s:
            crypto.bind(s, settings=settings, keyring=get_keyring(settings))
            return work(s, s.scalar(select(User).where(User.username == username)))

    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=get_keyring(settings))
        factory = Factory(s)
        worker = factory.user("caseworker", "madina")
        case = factory.case(worker, opened_on=date(2026, 11, 3), full_name="Иван Петров")
        referral_service.add_partner(
            session=s, actor="admin", name="Shelter", age_recipient=AGE_RECIPIENT, verify_key=PUBLIC_B64, inbox_url=url
        )
        consent = referral_service.record_consent(
            session=s,
            actor=worker,
            case_id=case.id,
            data=ConsentIn(partner="Shelter", given_on=date(2026, 11, 3), how="spoken", fields=["full_name"]),
        )
        made = referral_service.create_referral(
            session=s,
            actor=worker,
            case_id=case.id,
            data=ReferralIn(partner="Shelter", fields=["full_name"], consent_id=consent.id),
        )

    answers: dict[str, Any] = {}

    def call(name: str, work: Callable[[Any, User], Any]) -> None:
        try:
            answers[name] = run(work, "madina")
        except BaseException as exc:  # what the test reports
            answers[name] = exc

    delivering = threading.Thread(
        target=call, args=("deliver", lambda s, u: delivery.deliver(session=s, actor=u, referral_id=made.id))
    )
    others = threading.Thread(
        target=call,
        args=(
            "others",
            lambda s, u: (
                referral_service.move(session=s, actor=u, referral_id=made.id, to="withdrawn"),
                Factory(s).contact(u, alias="Zaur"),
            ),
        ),
    )
    try:
        delivering.start()
        assert arrived.wait(timeout=30), answers  # the package is at the inbox, which now holds the request
        others.start()
        others.join(timeout=10)
        finished_while_held = not others.is_alive()
    finally:
        release.set()
        delivering.join(timeout=60)
        others.join(timeout=60)
    assert finished_while_held, "a writer waited on the delivery's open transaction"
    assert not isinstance(answers["others"], BaseException), answers["others"]
    assert answers["deliver"] == made.code
    with engine.connect() as conn:
        assert conn.scalar(select(Referral.status).where(Referral.id == made.id)) == "withdrawn"
        assert conn.scalar(select(Contact.code).where(Contact.id == answers["others"][1].id)) is not None
        trail = conn.execute(
            select(AuditEntry.action, AuditEntry.detail)
            .where(AuditEntry.action.in_(["referral.package", "referral.status", "referral.deliver"]))
            .order_by(AuditEntry.seq)
        ).all()
    # In the order it happened: built and recorded, withdrawn while the package was on its way, delivered.
    assert [(action, json.loads(detail).get("referral")) for action, detail in trail] == [
        ("referral.package", made.code),
        ("referral.status", made.code),
        ("referral.deliver", made.code),
    ]
    engine.dispose()


class _FlakyInbox(http.server.BaseHTTPRequestHandler):
    answers: list[int]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        status = self.answers.pop(0)
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: Any) -> None:
        pass


def test_a_failed_delivery_is_recorded_and_the_same_request_may_be_sent_again(client, factory, session) -> None:
    answers = [500, 201]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Inbox", (_FlakyInbox,), {"answers": answers}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api/v1/referrals/inbox"
        referral_service.add_partner(
            session=session,
            actor="admin",
            name="Shelter",
            age_recipient=AGE_RECIPIENT,
            verify_key=PUBLIC_B64,
            inbox_url=url,
        )
        worker = factory.user("caseworker")
        case = factory.case(worker, full_name="Иван Петров")
        consent = referral_service.record_consent(
            session=session,
            actor=worker,
            case_id=case.id,
            data=ConsentIn(partner="Shelter", given_on=case.opened_on, how="spoken", fields=["full_name"]),
        )
        made = referral_service.create_referral(
            session=session,
            actor=worker,
            case_id=case.id,
            data=ReferralIn(partner="Shelter", fields=["full_name"], consent_id=consent.id),
        )
        headers = {**factory.headers(worker), "Idempotency-Key": "deliver-once-please"}
        session.commit()
        path = f"/api/v1/referrals/{made.id}/deliver"

        failed = client.post(path, headers=headers)
        assert failed.status_code == 502
        assert failed.json() == {"detail": "the partner's inbox refused the package (HTTP 500)"}
        again = client.post(path, headers=headers)  # the same key: tried again, not replayed as a success
        assert again.status_code == 200 and again.json() == {"delivered": made.code}
        assert answers == []  # the inbox was asked twice
        replayed = client.post(path, headers=headers)  # and now the key holds the answer
        assert replayed.status_code == 200 and replayed.headers.get("Idempotent-Replayed") == "true"
    finally:
        server.shutdown()
        server.server_close()
    session.rollback()
    trail = session.execute(
        select(AuditEntry.action, AuditEntry.detail)
        .where(AuditEntry.action.like("referral.%"), AuditEntry.target == case.code)
        .order_by(AuditEntry.seq)
    ).all()
    assert [(a, json.loads(d)) for a, d in trail if a != "referral.consent" and a != "referral.create"] == [
        ("referral.package", {"referral": made.code, "recipient": AGE_RECIPIENT}),
        ("referral.deliver_failed", {"referral": made.code, "status": 500}),
        ("referral.package", {"referral": made.code, "recipient": AGE_RECIPIENT}),
        ("referral.deliver", {"referral": made.code}),
    ]
