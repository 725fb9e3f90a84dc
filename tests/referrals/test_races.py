"""Two writers on one referral at the same moment, on PostgreSQL where they run side by side: the second waits
for the first and then decides on what the first left, so a referral's steps stay one legal sequence, an ended
referral is never reopened, no package is built past a withdrawal, and a received referral is answered once.

(On SQLite one writer runs at a time, so the two cannot overlap.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.auth.models import User
from app.cases.models import Case
from app.errors import Conflict, Invalid
from app.lifecycle.shred import shred_case
from app.referrals import receiving
from app.referrals import service as referral_service
from app.referrals.models import Partner, ReceivedReferral, Referral, ReferralStep
from tests.conftest import BACKENDS
from tests.referrals.test_consent_race import Install, _overlap, _refer, _withdraw, install  # noqa: F401
from tests.referrals.test_receiving import _answer, _ours

pytestmark = pytest.mark.skipif(
    "postgresql" not in BACKENDS, reason="PostgreSQL only: SQLite runs one writer at a time"
)

Work = Callable[[Any, User], Any]


def _referral(made_in: Install) -> Any:
    """A referral made on the install's consent and committed: sent, one step."""
    return made_in.run(_refer(made_in))


def _move(referral_id: Any, to: str) -> Work:
    return lambda s, worker: referral_service.move(session=s, actor=worker, referral_id=referral_id, to=to)


def _download(referral_id: Any) -> Work:
    return lambda s, worker: referral_service.build_package(session=s, actor=worker, referral_id=referral_id)


def _take_answer(code: str, status: str) -> Work:
    data = _answer(code, status=status)
    return lambda s, _worker: receiving.import_answer(session=s, actor="coord", data=data, identity=_ours())


def _state(made_in: Install, referral_id: Any) -> tuple[str, list[tuple[int, str]]]:
    """(status, [(position, status) of every step]) as committed."""
    with made_in.engine.connect() as conn:
        status = conn.scalar(select(Referral.status).where(Referral.id == referral_id))
        steps = conn.execute(
            select(ReferralStep.position, ReferralStep.status)
            .where(ReferralStep.referral_id == referral_id)
            .order_by(ReferralStep.position, ReferralStep.status)
        )
        return str(status), [(p, s) for p, s in steps]


def _refused(answer: Any, kind: type[Exception], detail: Any) -> None:
    assert isinstance(answer, kind), answer
    assert answer.detail == detail  # type: ignore[attr-defined]


def test_two_moves_of_one_referral_run_one_after_the_other(install) -> None:  # noqa: F811
    made = _referral(install)
    answers, waiting = _overlap(install, _move(made.id, "accepted"), _move(made.id, "declined"))
    assert answers["first"].status == "accepted"
    _refused(
        answers["second"],
        Conflict,
        {"message": "a referral cannot move from accepted to declined", "allowed": ["completed", "withdrawn"]},
    )
    assert _state(install, made.id) == ("accepted", [(0, "sent"), (1, "accepted")])
    assert waiting >= 1


def test_a_move_meeting_a_withdrawal_of_its_consent_waits_and_is_refused(install) -> None:  # noqa: F811
    made = _referral(install)
    answers, waiting = _overlap(install, _withdraw(install), _move(made.id, "accepted"))
    assert answers["first"] == [made.code]
    _refused(
        answers["second"], Conflict, {"message": "a referral cannot move from withdrawn to accepted", "allowed": []}
    )
    assert _state(install, made.id) == ("withdrawn", [(0, "sent"), (1, "withdrawn")])
    assert waiting >= 1


def test_a_withdrawal_meeting_a_move_waits_and_steps_after_it(install) -> None:  # noqa: F811
    made = _referral(install)
    answers, waiting = _overlap(install, _move(made.id, "accepted"), _withdraw(install))
    assert answers["first"].status == "accepted"
    assert answers["second"] == [made.code]
    assert _state(install, made.id) == ("withdrawn", [(0, "sent"), (1, "accepted"), (2, "withdrawn")])
    assert waiting >= 1


def test_a_partners_answer_meeting_a_withdrawal_by_hand_does_not_reopen_the_referral(install) -> None:  # noqa: F811
    made = _referral(install)
    answers, waiting = _overlap(install, _move(made.id, "withdrawn"), _take_answer(made.code, "accepted"))
    assert answers["first"].status == "withdrawn"
    _refused(
        answers["second"], Conflict, {"message": "a referral cannot move from withdrawn to accepted", "allowed": []}
    )
    assert _state(install, made.id) == ("withdrawn", [(0, "sent"), (1, "withdrawn")])
    assert waiting >= 1


def test_a_download_meeting_a_withdrawal_of_its_consent_waits_and_is_refused(install) -> None:  # noqa: F811
    made = _referral(install)
    answers, waiting = _overlap(install, _withdraw(install), _download(made.id))
    assert answers["first"] == [made.code]
    _refused(answers["second"], Conflict, "this referral is withdrawn; its package can no longer be downloaded")
    assert waiting >= 1


def test_a_download_meeting_a_withdrawal_by_hand_waits_and_is_refused(install) -> None:  # noqa: F811
    made = _referral(install)
    answers, waiting = _overlap(install, _move(made.id, "withdrawn"), _download(made.id))
    assert answers["first"].status == "withdrawn"
    _refused(answers["second"], Conflict, "this referral is withdrawn; its package can no longer be downloaded")
    assert waiting >= 1


def test_two_answers_to_one_received_referral_run_one_after_the_other(install) -> None:  # noqa: F811
    def received(s: Any, _worker: User) -> None:
        partner_id = s.scalar(select(Partner.id).where(Partner.name == "Shelter"))
        s.add(
            ReceivedReferral(
                code="R-7K3Q-9M",
                partner_id=partner_id,
                case_id=install.case_id,
                digest="0" * 64,
                imported_on=date(2026, 11, 4),
                imported_by="coord",
                status="sent",
                fields="full_name",
            )
        )

    install.run(received)

    def answer(status: str) -> Work:
        return lambda s, _worker: receiving.make_answer(session=s, actor="coord", code="R-7K3Q-9M", status=status)

    answers, waiting = _overlap(install, answer("accepted"), answer("declined"))
    assert isinstance(answers["first"], bytes), answers["first"]
    _refused(
        answers["second"],
        Invalid,
        [
            {
                "loc": ["body", "status"],
                "msg": "a referral that is accepted cannot be answered declined",
                "type": "value_error",
            }
        ],
    )
    with install.engine.connect() as conn:
        assert conn.scalar(select(ReceivedReferral.status)) == "accepted"
    assert waiting >= 1


def _shred(made_in: Install) -> Work:
    def shred(s: Any, _worker: User) -> list[str]:
        code = s.get(Case, made_in.case_id).code
        return shred_case(session=s, actor="admin", code=code)

    return shred


def test_a_download_meeting_a_shred_of_its_case_waits_and_is_refused(install) -> None:  # noqa: F811
    made = _referral(install)
    answers, waiting = _overlap(install, _shred(install), _download(made.id))
    assert len(answers["first"]) == 1, answers["first"]
    _refused(answers["second"], Conflict, "the case was shredded; there is nothing left to send")
    assert waiting >= 1


@pytest.mark.parametrize("ending", ["referral.consent_withdraw", "case.shred"])
def test_a_withdrawal_or_a_shred_meeting_a_download_waits_for_it(install, ending: str) -> None:  # noqa: F811
    made = _referral(install)
    end = _withdraw(install) if ending == "referral.consent_withdraw" else _shred(install)
    answers, waiting = _overlap(install, _download(made.id), end)
    assert answers["first"][0] == made.code
    assert not isinstance(answers["second"], BaseException), answers["second"]
    # The package was built before the withdrawal or the shred, and the audit log says so in that order.
    with install.engine.connect() as conn:
        actions = conn.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.action.in_(["referral.package", ending]))
            .order_by(AuditEntry.seq)
        )
        assert list(actions) == ["referral.package", ending]
    assert waiting >= 1
