"""A referral being made and its consent being withdrawn at the same moment, on PostgreSQL where two writers run
side by side: whichever comes second waits for the first and then sees it. A withdrawal that met a referral
still being made ends that referral too; a referral that met a withdrawal still being made is refused. Either
way no referral stays "sent" on a withdrawn consent.

(On SQLite one writer runs at a time, so the two cannot overlap; the services' own tests cover both orders.)
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from app import bootstrap
from app.auth.models import User
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.db import make_engine, unit_of_work
from app.errors import Conflict
from app.referrals import service as referral_service
from app.referrals.models import Consent, Referral
from app.referrals.schemas import ConsentIn, ReferralIn
from tests.conftest import BACKENDS, make_settings
from tests.factories import Factory
from tests.referrals.test_package import AGE_RECIPIENT, PUBLIC_B64

pytestmark = pytest.mark.skipif(
    "postgresql" not in BACKENDS, reason="PostgreSQL only: SQLite runs one writer at a time"
)


@dataclass
class Install:
    engine: Engine
    settings: Any
    worker_id: uuid.UUID
    case_id: uuid.UUID
    consent_id: uuid.UUID

    def run(self, work: Callable[[Any, User], Any]) -> Any:
        with unit_of_work(self.engine) as session:
            crypto.bind(session, settings=self.settings, keyring=get_keyring(self.settings))
            return work(session, session.get(User, self.worker_id))


@pytest.fixture
def install(database_url_factory, tmp_path) -> Iterator[Install]:
    settings = make_settings(tmp_path, database_url=database_url_factory("postgresql"))
    bootstrap.migrate(settings)
    engine = make_engine(settings)
    with unit_of_work(engine) as s:
        crypto.bind(s, settings=settings, keyring=get_keyring(settings))
        factory = Factory(s)
        worker = factory.user("caseworker")
        case = factory.case(worker, opened_on=date(2026, 11, 3), full_name="Иван Петров")
        referral_service.add_partner(
            session=s, actor="admin", name="Shelter", age_recipient=AGE_RECIPIENT, verify_key=PUBLIC_B64
        )
        consent = referral_service.record_consent(
            session=s,
            actor=worker,
            case_id=case.id,
            data=ConsentIn(partner="Shelter", given_on=date(2026, 11, 3), how="spoken", fields=["full_name"]),
        )
        made = Install(engine, settings, worker.id, case.id, consent.id)
    yield made
    engine.dispose()


def _refer(install: Install) -> Callable[[Any, User], Any]:
    data = ReferralIn(partner="Shelter", fields=["full_name"], consent_id=install.consent_id)
    return lambda s, worker: referral_service.create_referral(
        session=s, actor=worker, case_id=install.case_id, data=data
    )


def _withdraw(install: Install) -> Callable[[Any, User], Any]:
    return lambda s, worker: referral_service.withdraw_consent(
        session=s, actor=worker, case_id=install.case_id, consent_id=install.consent_id, on=date(2026, 11, 5)
    )


def _overlap(
    install: Install, first: Callable[[Any, User], Any], second: Callable[[Any, User], Any]
) -> tuple[dict[str, Any], int]:
    """Run ``first`` and keep its transaction open while ``second`` starts; then let ``first`` commit.

    Returns what each answered (or raised) and how many transactions were seen waiting on another's lock.
    """
    done_first, release = threading.Event(), threading.Event()
    answers: dict[str, Any] = {}

    def hold(session: Any, worker: User) -> Any:
        answer = first(session, worker)
        done_first.set()
        release.wait(timeout=30)
        return answer

    def call(name: str, work: Callable[[Any, User], Any]) -> None:
        try:
            answers[name] = install.run(work)
        except BaseException as exc:  # what the test reports
            answers[name] = exc

    one = threading.Thread(target=call, args=("first", hold))
    two = threading.Thread(target=call, args=("second", second))
    waiting = 0
    try:
        one.start()
        assert done_first.wait(timeout=30), answers
        two.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and two.is_alive():
            with install.engine.connect() as probe:  # the second waits on the first's lock on the consent row
                waiting = probe.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
            if waiting:
                break
            time.sleep(0.05)
    finally:
        release.set()
        one.join(timeout=30)
        two.join(timeout=30)
    return answers, waiting


def _referrals(install: Install) -> list[tuple[str, str]]:
    with install.engine.connect() as conn:
        rows = conn.execute(select(Referral.code, Referral.status).where(Referral.consent_id == install.consent_id))
        return [tuple(r) for r in rows]


def test_a_withdrawal_meeting_a_referral_being_made_waits_and_ends_it(install) -> None:
    answers, waiting = _overlap(install, _refer(install), _withdraw(install))
    made = answers["first"]
    assert not isinstance(made, BaseException), made
    assert answers["second"] == [made.code]  # the withdrawal ended the referral it had waited for
    assert _referrals(install) == [(made.code, "withdrawn")]
    assert waiting >= 1  # it really met the referral while that was uncommitted


def test_a_referral_meeting_a_withdrawal_being_made_waits_and_is_refused(install) -> None:
    answers, waiting = _overlap(install, _withdraw(install), _refer(install))
    assert answers["first"] == []
    refused = answers["second"]
    assert isinstance(refused, Conflict) and refused.detail == "this consent was withdrawn"
    assert _referrals(install) == []
    with install.engine.connect() as conn:
        assert conn.scalar(select(Consent.withdrawn_on).where(Consent.id == install.consent_id)) == date(2026, 11, 5)
    assert waiting >= 1
