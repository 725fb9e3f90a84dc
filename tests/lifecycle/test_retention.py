"""Retention: the purge shreds exactly what its dry run listed, and nothing still in use."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.cases.models import Case
from app.config import get_settings
from app.contacts.models import Contact
from app.lifecycle import retention
from tests.lifecycle.seed import Install, days_ago, seed


def _age(install: Install) -> dict[str, set[str]]:
    """Make some records old: which codes the policy should reach, by kind."""
    with install.session() as s:
        old = seed(s, contacts=12, cases=6, received_on=days_ago(800))
        seed(s, contacts=5, cases=2)  # recent: never purged
    case_ids = list(old.cases)
    closed, declined, open_old, closed_recently = case_ids[0:2], case_ids[2:3], case_ids[3:4], case_ids[4:6]
    with install.engine.begin() as conn:
        conn.execute(
            update(Case)
            .where(Case.id.in_(closed))
            .values(status="closed", closed_on=days_ago(731), status_on=days_ago(731))
        )
        conn.execute(update(Case).where(Case.id.in_(declined)).values(status="declined", status_on=days_ago(900)))
        conn.execute(update(Case).where(Case.id.in_(open_old)).values(status="in_transit", status_on=days_ago(900)))
        conn.execute(
            update(Case)
            .where(Case.id.in_(closed_recently))
            .values(status="closed", closed_on=days_ago(100), status_on=days_ago(100))
        )
    expected_cases = {old.case_codes[c] for c in closed + declined}
    keeps_contact = {old.case_contact[c] for c in open_old + closed_recently}
    expected_contacts = {code for cid, code in old.contact_codes.items() if cid not in keeps_contact}
    return {"cases": expected_cases, "contacts": expected_contacts}


def _point_cli_at(install: Install, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELPLINE_DATA_DIR", str(install.settings.data_dir))
    monkeypatch.setenv("HELPLINE_KEY_FILE", str(install.settings.key_path))
    monkeypatch.setenv("HELPLINE_DATABASE_URL", install.settings.database_url)
    get_settings.cache_clear()


def test_purge_shreds_exactly_what_the_dry_run_listed(
    install: Install, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli import main

    expected = _age(install)
    _point_cli_at(install, monkeypatch)
    try:
        assert main(["purge", "--dry-run"]) == 0
        dry = capsys.readouterr().out.splitlines()
        with install.engine.connect() as conn:
            assert not list(conn.scalars(select(Case.code).where(Case.shredded_on.is_not(None))))
        assert main(["purge"]) == 0
        real = capsys.readouterr().out.splitlines()
        assert main(["purge", "--dry-run"]) == 0
        again = capsys.readouterr().out.splitlines()
    finally:
        get_settings.cache_clear()
    listed = {tuple(line.split()[-2:]) for line in dry if line.startswith("would shred ") and line.count(" ") == 3}
    done = {tuple(line.split()[-2:]) for line in real if line.startswith("shredded ") and line.count(" ") == 2}
    assert listed == done
    assert {c for k, c in listed if k == "case"} == expected["cases"]
    assert {c for k, c in listed if k == "contact"} == expected["contacts"]
    assert again[-1] == "would shred 0 cases and 0 contacts"
    with install.engine.connect() as conn:
        gone_cases = set(conn.scalars(select(Case.code).where(Case.shredded_on.is_not(None))))
        gone_contacts = set(conn.scalars(select(Contact.code).where(Contact.shredded_on.is_not(None))))
        total = conn.scalar(select(Contact.id).limit(1))
    assert gone_cases == expected["cases"] and gone_contacts == expected["contacts"]
    assert total is not None  # rows stay: shredding is not deleting
    for line in dry + real:
        assert "alias" not in line and "@h" not in line  # codes, never contents


def test_defaults_are_conservative_and_settings_move_the_cut(install: Install) -> None:
    assert install.settings.retention_contact_days == 365 and install.settings.retention_closed_case_days == 730
    with install.session() as s:
        seed(s, contacts=3, received_on=days_ago(100))
    with install.session() as s:
        assert retention.plan_purge(session=s, settings=install.settings).empty
        shorter = install.settings.model_copy(update={"retention_contact_days": 99})
        assert len(retention.plan_purge(session=s, settings=shorter).contact_codes) == 3
        later = retention.plan_purge(session=s, settings=install.settings, today=days_ago(100) + timedelta(days=365))
        assert later.empty  # not a day early


def test_purge_forgets_expired_idempotency_answers_and_form_tokens_only(
    install: Install, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from app.auth.models import User
    from app.cli import main
    from app.idempotency.models import FormToken, IdempotencyKey

    now = datetime.now(UTC)
    with install.session() as s:
        seed(s, contacts=1)
    with install.session() as s:
        user_id = s.scalars(select(User.id).limit(1)).one()
        for name, age in (("old", timedelta(hours=25)), ("fresh", timedelta(hours=23))):
            s.add(IdempotencyKey(user_id=user_id, key_hash=name, request_hash="r", created_at=now - age))
        for name, age in (("old", timedelta(days=3)), ("fresh", timedelta(days=1))):
            s.add(FormToken(token_hash=name, spent_at=now - age))
    _point_cli_at(install, monkeypatch)
    try:
        assert main(["purge", "--dry-run"]) == 0
        with install.engine.connect() as conn:
            assert len(list(conn.scalars(select(IdempotencyKey.key_hash)))) == 2  # a dry run changes nothing
        assert main(["purge"]) == 0
        out = capsys.readouterr().out.splitlines()
    finally:
        get_settings.cache_clear()
    assert out[-1] == "forgot 2 expired Idempotency-Key answers and form tokens"
    with install.engine.connect() as conn:
        assert list(conn.scalars(select(IdempotencyKey.key_hash))) == ["fresh"]
        assert list(conn.scalars(select(FormToken.token_hash))) == ["fresh"]
