"""Two Helpline installations, each with its own data directory, database, key file and age identity.

Each serves its own app (the real unit of work, committing) and runs its own ``helpline`` processes, so a
package crosses between two installations exactly as it would between two organisations.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyrage
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app import bootstrap
from app.config import Settings
from app.crypto import service as crypto
from app.crypto.keyring import get_keyring
from app.db import get_engine, unit_of_work
from tests.conftest import make_settings
from tests.factories import Factory


@dataclass
class Org:
    name: str
    base: Path
    settings: Settings
    client: TestClient
    identity: Any
    identity_file: Path
    caseworker: dict[str, str]
    coordinator: dict[str, str]
    caseworker_name: str

    @property
    def recipient(self) -> str:
        return str(self.identity.to_public())

    @contextmanager
    def session(self) -> Iterator[Session]:
        with unit_of_work(get_engine(self.settings)) as db:
            crypto.bind(db, settings=self.settings, keyring=get_keyring(self.settings))
            yield db

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of this installation's processes."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
        env.update(
            HELPLINE_DATA_DIR=str(self.base),
            HELPLINE_DATABASE_URL=self.settings.database_url,
            HELPLINE_KEY_FILE=str(self.settings.key_file),
            HELPLINE_SECURE_COOKIES="false",
            **extra,
        )
        return env

    def cli(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", *map(str, args)],
            env=self.env(),
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def verify_key(self) -> str:
        result = self.cli("keys", "public")
        assert result.returncode == 0, result.stderr
        (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("verify-key ")]
        return line.split()[-1]

    def new_case(self, *, contact: dict[str, str], case: dict[str, str]) -> dict[str, Any]:
        """A contact and a case through the API with the given sealed fields; returns both answers."""
        made = self.client.post(
            "/api/v1/contacts",
            json={
                "received_on": date.today().isoformat(),
                "channel": "signal",
                "region": "chechnya",
                "language": "ru",
                "risk": "immediate",
                "needs": ["evacuation", "shelter"],
                **contact,
            },
            headers=self.caseworker,
        )
        assert made.status_code == 201, made.text
        opened = self.client.post(
            "/api/v1/cases", json={"contact_id": made.json()["id"], **case}, headers=self.caseworker
        )
        assert opened.status_code == 201, opened.text
        return {"contact": made.json(), "case": opened.json()}


def _org(name: str, base: Path, database_url: str) -> Org:
    settings = make_settings(base, database_url=database_url)
    bootstrap.migrate(settings)
    with unit_of_work(get_engine(settings)) as db:
        crypto.bind(db, settings=settings, keyring=get_keyring(settings))
        factory = Factory(db)
        worker = factory.user("caseworker", f"{name.lower()}-worker")
        caseworker = factory.headers(worker)
        coordinator = factory.headers(factory.user("coordinator", f"{name.lower()}-coord"))
    identity = pyrage.x25519.Identity.generate()
    identity_file = base / "identity.txt"
    fd = os.open(identity_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"# {name}'s referral identity\n{identity}\n")
    from app.main import create_app

    client = TestClient(create_app(settings), base_url="http://testserver")
    return Org(name, base, settings, client, identity, identity_file, caseworker, coordinator, f"{name.lower()}-worker")


@pytest.fixture
def orgs(backend: str, migrated_url_factory, tmp_path: Path) -> Iterator[tuple[Org, Org]]:
    """Two installations, not yet partners of each other."""
    a = _org("Alpha", tmp_path / "alpha", migrated_url_factory(backend))
    b = _org("Beta", tmp_path / "beta", migrated_url_factory(backend))
    with a.client, b.client:
        yield a, b


def befriend(a: Org, b: Org) -> None:
    """Make each installation a partner of the other, through their own command lines."""
    for here, there in ((a, b), (b, a)):
        result = here.cli(
            "partner", "add", there.name, "--age-recipient", there.recipient, "--verify-key", there.verify_key()
        )
        assert result.returncode == 0, result.stderr


def referral_of_region(session: Session, factory: Factory, *, partner: str) -> tuple[Any, Any]:
    """A new case of a new caseworker, referred to ``partner`` with the region only (consented first)."""
    from app.referrals import service as referral_service
    from app.referrals.schemas import ConsentIn, ReferralIn

    worker = factory.account("caseworker")
    case = factory.case(worker.user)
    consent = referral_service.record_consent(
        session=session,
        actor=worker.user,
        case_id=case.id,
        data=ConsentIn(partner=partner, given_on=case.opened_on, how="spoken", fields=["region"]),
    )
    made = referral_service.create_referral(
        session=session,
        actor=worker.user,
        case_id=case.id,
        data=ReferralIn(partner=partner, fields=["region"], consent_id=consent.id),
    )
    return made, case
