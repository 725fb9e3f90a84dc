"""Demo data: realistic proportions, legal histories, fake text, repeatable."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from contextlib import contextmanager
from datetime import date

from sqlalchemy import func, select

from app import demo
from app.auth.models import User
from app.cases.models import Case, CaseTransition
from app.cases.workflow import can_move
from app.contacts import service as contact_service
from app.contacts.models import Contact


def _factory(session):
    @contextmanager
    def unit():
        yield session
        session.commit()  # a savepoint inside the test's rolled-back transaction

    return unit


def _shape(session, codes):
    rows = session.execute(
        select(Contact.region, Contact.channel, Contact.risk, Contact.needs, Contact.received_on, Case.status)
        .outerjoin(Case, Case.contact_id == Contact.id)
        .where(Contact.code.in_(codes))
    ).all()
    return Counter(tuple(r) for r in rows)


def test_demo_data_is_realistic_legal_and_repeatable(session):
    first = demo.generate(_factory(session), contacts=120, seed=7, batch=50, progress=False)
    assert {a.user.username for a in first.new_accounts} == {*demo.CASEWORKERS, demo.COORDINATOR, demo.ANALYST}
    assert {a.user.username: a.user.role for a in first.new_accounts}[demo.ANALYST] == "analyst"
    today = date.today()
    assert session.scalar(select(func.count()).select_from(Contact)) == 120 == first.contacts
    assert session.scalar(select(func.count()).select_from(Case)) == first.cases
    assert (
        session.scalar(select(func.count()).select_from(Case).where(Case.evacuated_on.is_not(None))) == first.evacuated
    )
    assert 0.35 <= first.cases / first.contacts <= 0.65
    assert 0.3 <= first.evacuated / first.cases <= 0.6
    regions = Counter(session.scalars(select(Contact.region)))
    assert regions.most_common(1)[0][0] == "chechnya"
    assert len(regions) >= 5 and len(Counter(session.scalars(select(Contact.channel)))) >= 5
    received = session.scalars(select(Contact.received_on)).all()
    assert max(received) <= today and (today - min(received)).days > 200
    # Every history is legal, dated inside the case's life, and respects the two-person rule.
    for case in session.scalars(select(Case)):
        steps = session.scalars(
            select(CaseTransition).where(CaseTransition.case_id == case.id).order_by(CaseTransition.position)
        ).all()
        assert [s.position for s in steps] == list(range(len(steps)))
        assert steps[0].from_status is None and steps[-1].to_status == case.status
        for a, b in zip(steps, steps[1:], strict=False):
            assert can_move(a.to_status, b.to_status) and a.on <= b.on <= today
        assert case.opened_on >= case.first_contact_on
        if any(s.to_status == "planning" for s in steps):
            assert case.verified_by_id is not None and case.verified_by_id != case.opened_by_id
    # The text is obviously fake.
    worker = session.scalar(select(User).where(User.username == demo.CASEWORKERS[0]))
    mine = session.scalar(select(Contact.id).where(Contact.recorded_by_id == worker.id).limit(1))
    shown = contact_service.read_contact(session=session, actor=worker, contact_id=mine)
    assert shown.alias.startswith("Demo Person ") and shown.notes.startswith("Demo note ")
    # A second run reuses the demo accounts.
    again = demo.generate(_factory(session), contacts=10, seed=8, batch=50, progress=False)
    assert again.new_accounts == [] and again.contacts == 10


def _flushing(session):
    @contextmanager
    def unit():
        yield session
        session.flush()

    return unit


def test_the_same_seed_gives_the_same_data(session):
    shapes = []
    for _ in range(2):
        trial = session.begin_nested()
        demo.generate(_flushing(session), contacts=40, seed=11, batch=15, progress=False)
        shapes.append(_shape(session, set(session.scalars(select(Contact.code)))))
        trial.rollback()
    assert shapes[0] == shapes[1] and sum(shapes[0].values()) == 40
    different = session.begin_nested()
    demo.generate(_flushing(session), contacts=40, seed=12, batch=15, progress=False)
    assert _shape(session, set(session.scalars(select(Contact.code)))) != shapes[0]
    different.rollback()


def test_demo_data_command_prints_accounts_once_and_no_bar_into_a_pipe(tmp_path):
    env = {**os.environ, "HELPLINE_DATA_DIR": str(tmp_path / "data"), "HELPLINE_SECURE_COOKIES": "false"}
    env.pop("HELPLINE_DATABASE_URL", None)
    env.pop("HELPLINE_KEY_FILE", None)
    run = [sys.executable, "-m", "app"]
    assert subprocess.run([*run, "init"], env=env, capture_output=True, check=False).returncode == 0
    done = subprocess.run(
        [*run, "demo-data", "--contacts", "30", "--seed", "3"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("otpauth://") == 6 and done.stdout.count("password: ") == 6  # with the analyst
    assert "wrote 30 demo contacts" in done.stdout
    assert done.stderr == ""  # no progress bar when stderr is not a terminal, nothing mixed into the output
    second = subprocess.run(
        [*run, "demo-data", "--contacts", "5", "--quiet"], env=env, capture_output=True, text=True, check=False
    )
    assert second.returncode == 0 and "otpauth://" not in second.stdout and second.stderr == ""
    bad = subprocess.run([*run, "demo-data", "--contacts", "0"], env=env, capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
