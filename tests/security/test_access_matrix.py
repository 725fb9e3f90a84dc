"""Every API route x every role x someone's own record / a record that does not exist.

The expected answer of each cell is written once, in ``MATRIX`` below. The route list comes from
the application itself: a route that is not in the table fails ``test_the_matrix_covers_every_route``,
so a new route cannot escape it. Where a caller may not know a record exists, the answer must be
404 and word for word the answer for an id that never existed.

Actors: ``owner`` is the caseworker who recorded the contact and is assigned the case; ``other`` is
another caseworker; ``coordinator``, ``analyst``, ``admin``; ``anon`` sends no token. Records:
``own`` is the owner's contact / case (a fresh one for every cell, so no cell sees another's
changes) or an existing known-bad entry; ``missing`` is a random id.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyrage
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.routing import iter_route_contexts
from sqlalchemy.orm import Session

from app.attention import service as attention_service
from app.cases.models import Case
from app.contacts import flagged
from app.contacts.schemas import FlaggedHandleIn
from tests.security import figures

ACTORS = ("owner", "other", "coordinator", "analyst", "admin", "anon")
API = "/api/v1"

# (method, path) -> {record: (owner, other, coordinator, analyst, admin, anon)}; "-" for routes without a record.
MATRIX: dict[tuple[str, str], dict[str, tuple[int, ...]]] = {
    ("GET", "/health"): {"-": (200, 200, 200, 200, 200, 200)},
    ("GET", "/openapi.json"): {"-": (200, 200, 200, 200, 200, 200)},
    # Each actor signs in with its own password and code; anon with made-up ones.
    ("POST", "/auth/token"): {"-": (200, 200, 200, 200, 200, 401)},
    ("POST", "/contacts"): {"-": (201, 201, 403, 403, 403, 401)},
    ("GET", "/contacts"): {"-": (200, 200, 403, 403, 200, 401)},
    ("GET", "/contacts/{contact_id}"): {
        "own": (200, 404, 403, 403, 200, 401),
        "missing": (404, 404, 403, 403, 404, 401),
    },
    ("POST", "/contacts/{contact_id}/outcome"): {
        "own": (200, 404, 403, 403, 403, 401),
        "missing": (404, 404, 403, 403, 404, 401),
    },
    # Notes and corrections: whoever may read the record's sealed fields (the admin sees it, reads nothing).
    ("POST", "/contacts/{contact_id}/notes"): {
        "own": (201, 404, 403, 403, 403, 401),
        "missing": (404, 404, 403, 403, 404, 401),
    },
    ("PATCH", "/contacts/{contact_id}"): {
        "own": (200, 404, 403, 403, 403, 401),
        "missing": (404, 404, 403, 403, 404, 401),
    },
    ("POST", "/flagged-handles"): {"-": (403, 403, 201, 403, 403, 401)},
    ("GET", "/flagged-handles"): {"-": (403, 403, 200, 403, 403, 401)},
    ("DELETE", "/flagged-handles/{entry_id}"): {
        "own": (403, 403, 204, 403, 403, 401),
        "missing": (403, 403, 404, 403, 403, 401),
    },
    # The record is the contact named in the body.
    ("POST", "/cases"): {
        "own": (201, 404, 403, 403, 403, 401),
        "missing": (404, 404, 403, 403, 403, 401),
    },
    ("GET", "/cases"): {"-": (200, 200, 200, 403, 403, 401)},
    ("GET", "/cases/{case_id}"): {
        "own": (200, 404, 200, 403, 403, 401),
        "missing": (404, 404, 404, 403, 403, 401),
    },
    ("POST", "/cases/{case_id}/transitions"): {
        "own": (200, 404, 200, 403, 403, 401),
        "missing": (404, 404, 404, 403, 403, 401),
    },
    # The owner sees the case but only coordinators assign.
    ("POST", "/cases/{case_id}/assign"): {
        "own": (403, 404, 200, 403, 403, 401),
        "missing": (404, 404, 404, 403, 403, 401),
    },
    # The owner opened the case: a second person must verify it.
    ("POST", "/cases/{case_id}/verify"): {
        "own": (403, 404, 200, 403, 403, 401),
        "missing": (404, 404, 404, 403, 403, 401),
    },
    # The coordinator sees the case but reads no sealed field, so adds none.
    ("POST", "/cases/{case_id}/notes"): {
        "own": (201, 404, 403, 403, 403, 401),
        "missing": (404, 404, 404, 403, 403, 401),
    },
    ("PATCH", "/cases/{case_id}"): {
        "own": (200, 404, 403, 403, 403, 401),
        "missing": (404, 404, 404, 403, 403, 401),
    },
    ("POST", "/cases/{case_id}/verification-request"): {
        "own": (201, 404, 403, 403, 403, 401),
        "missing": (404, 404, 404, 403, 403, 401),
    },
    ("GET", "/attention"): {"-": (403, 403, 200, 403, 403, 401)},
    ("POST", "/attention/{item_id}/resolve"): {
        "own": (403, 403, 204, 403, 403, 401),
        "missing": (403, 403, 404, 403, 403, 401),
    },
    ("GET", "/search"): {"-": (200, 200, 403, 403, 403, 401)},
    ("GET", "/stats/summary"): {"-": (403, 403, 200, 200, 200, 401)},
    ("GET", "/stats/releases"): {"-": (403, 403, 200, 200, 200, 401)},
    ("GET", "/stats/releases/{period}"): {"missing": (403, 403, 404, 404, 404, 401)},
    ("GET", "/exports/aggregate.csv"): {"-": (403, 403, 403, 200, 200, 401)},
    ("GET", "/exports/aggregate.json"): {"-": (403, 403, 403, 200, 200, 401)},
    ("GET", "/exports/records.csv"): {"-": (403, 403, 403, 200, 200, 401)},
    # Referrals: the partner list is no secret to staff who refer; consents and referrals follow the case.
    ("GET", "/partners"): {"-": (200, 200, 200, 403, 200, 401)},
    ("GET", "/stats/referrals"): {"-": (403, 403, 200, 200, 200, 401)},
    ("GET", "/referrals"): {"-": (200, 200, 200, 403, 403, 401)},
    # Only the assigned caseworker records a consent or refers: a coordinator sees the case but may not.
    ("POST", "/cases/{case_id}/consents"): {
        "own": (201, 404, 403, 403, 403, 401),
        "missing": (404, 404, 404, 403, 403, 401),
    },
    ("GET", "/cases/{case_id}/consents"): {
        "own": (200, 404, 200, 403, 403, 401),
        "missing": (404, 404, 404, 403, 403, 401),
    },
    ("POST", "/cases/{case_id}/referrals"): {
        "own": (201, 404, 403, 403, 403, 401),
        "missing": (404, 404, 404, 403, 403, 401),
    },
    ("POST", "/cases/{case_id}/consents/{consent_id}/withdraw"): {
        "own": (200, 404, 200, 403, 403, 401),
        "missing": (404, 404, 404, 403, 403, 401),
    },
    ("GET", "/referrals/{referral_id}"): {
        "own": (200, 404, 200, 403, 403, 401),
        "missing": (404, 404, 404, 403, 403, 401),
    },
    # Encrypted to the partner: the coordinator who downloads it cannot read it either (audited).
    ("GET", "/referrals/{referral_id}/package"): {
        "own": (200, 404, 200, 403, 403, 401),
        "missing": (404, 404, 404, 403, 403, 401),
    },
    ("POST", "/referrals/{referral_id}/status"): {
        "own": (200, 404, 200, 403, 403, 401),
        "missing": (404, 404, 404, 403, 403, 401),
    },
    # The matrix's partner has no inbox: nothing to deliver to.
    ("POST", "/referrals/{referral_id}/deliver"): {
        "own": (409, 404, 409, 403, 403, 401),
        "missing": (404, 404, 404, 403, 403, 401),
    },
    # No account: a partner's signature is the credential. Off by default, so not even there.
    ("POST", "/referrals/inbox"): {"-": (404, 404, 404, 404, 404, 404)},
}


def app_routes() -> set[tuple[str, str]]:
    """(method, path under /api/v1) of every route the application serves."""
    import tempfile
    from pathlib import Path

    from app.main import create_app
    from tests.conftest import make_settings

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(make_settings(Path(tmp)))
        found = set()
        for route in iter_route_contexts(app.routes):
            path = route.path or ""
            if not path.startswith(API):
                continue
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((method, path[len(API) :]))
        return found


def test_the_matrix_covers_every_route_and_only_real_ones() -> None:
    routes = app_routes()
    assert routes - set(MATRIX) == set(), "routes without a row in MATRIX: write down who may call them"
    assert set(MATRIX) - routes == set(), "rows in MATRIX for routes that no longer exist"


@dataclass
class World:
    session: Session
    factory: Any
    accounts: dict[str, Any]
    tokens: dict[str, str]

    def user(self, actor: str) -> Any:
        return self.accounts[actor].user

    def headers(self, actor: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[actor]}"} if actor != "anon" else {}


@pytest.fixture
def world(api, session, factory) -> World:
    accounts = {actor: factory.account(role) for actor, role in zip(ACTORS[:-1], ACTORS_ROLES, strict=True)}
    tokens = {actor: factory.token(account.user) for actor, account in accounts.items()}

    # A refused request rolls back to the last commit (a savepoint here): keep the world out of reach.
    session.commit()
    return World(session=session, factory=factory, accounts=accounts, tokens=tokens)


ACTORS_ROLES = ("caseworker", "caseworker", "coordinator", "analyst", "admin")


def _contact_body() -> dict[str, Any]:
    return {
        "received_on": date.today().isoformat(),
        "channel": "signal",
        "region": "dagestan",
        "language": "ru",
        "risk": "medium",
        "needs": ["legal"],
        "alias": "matrix alias",
    }


def _partner(world: World) -> str:
    """The partner referrals in the matrix go to (added once, kept by a commit)."""
    from app.referrals import service as referral_service

    if not referral_service.list_partners(session=world.session):
        verify = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
        recipient = str(pyrage.x25519.Identity.generate().to_public())
        referral_service.add_partner(
            session=world.session, actor="matrix", name="Shelter", age_recipient=recipient, verify_key=verify
        )
        world.session.commit()
    return "Shelter"


def _consent(world: World, case_id: uuid.UUID) -> uuid.UUID:
    from app.referrals import service as referral_service
    from app.referrals.schemas import ConsentIn

    data = ConsentIn(partner=_partner(world), given_on=date.today(), how="spoken", fields=["region"])  # type: ignore[arg-type]
    return referral_service.record_consent(
        session=world.session, actor=world.user("owner"), case_id=case_id, data=data
    ).id


def _referral(world: World) -> uuid.UUID:
    from app.referrals import service as referral_service
    from app.referrals.schemas import ReferralIn

    case_id = world.factory.case(world.user("owner")).id
    data = ReferralIn(partner=_partner(world), fields=["region"], consent_id=_consent(world, case_id))  # type: ignore[list-item]
    return referral_service.create_referral(
        session=world.session, actor=world.user("owner"), case_id=case_id, data=data
    ).id


def _record(world: World, method: str, path: str, record: str) -> dict[str, Any]:
    """A fresh record for one cell and the path parameters (and body) that point at it."""
    missing = uuid.uuid4()
    owner = world.user("owner")
    if "{referral_id}" in path:
        return {"referral_id": _referral(world) if record == "own" else missing}
    if "{consent_id}" in path:
        if record == "missing":
            return {"case_id": missing, "consent_id": missing}
        case_id = world.factory.case(owner).id
        return {"case_id": case_id, "consent_id": _consent(world, case_id)}
    if "{contact_id}" in path:
        return {"contact_id": world.factory.contact(owner).id if record == "own" else missing}
    if "{case_id}" in path:
        return {"case_id": world.factory.case(owner).id if record == "own" else missing}
    if "{period}" in path:
        return {"period": "1999-01"}  # never released
    if "{entry_id}" in path:
        if record == "missing":
            return {"entry_id": missing}
        entry = flagged.add_flagged_handle(
            session=world.session,
            actor=world.user("coordinator"),
            data=FlaggedHandleIn(handle=f"@bad_{uuid.uuid4().hex[:10]}"),
        )
        return {"entry_id": entry.id}
    if "{item_id}" in path:
        if record == "missing":
            return {"item_id": missing}
        code = world.factory.contact(owner, risk="immediate").code  # raises an "immediate danger" entry
        queue = attention_service.list_open(session=world.session, actor=world.user("coordinator"))
        return {"item_id": next(item.id for item in queue.items if item.record_code == code)}
    if (method, path) == ("POST", "/cases"):
        return {"contact_id": world.factory.contact(owner).id if record == "own" else missing}
    return {}


BODIES: dict[tuple[str, str], Callable[[World, str, dict[str, Any]], Any]] = {
    ("POST", "/contacts"): lambda w, a, r: _contact_body(),
    ("POST", "/contacts/{contact_id}/outcome"): lambda w, a, r: {"outcome": "referred"},
    ("POST", "/flagged-handles"): lambda w, a, r: {"handle": f"@bad_{uuid.uuid4().hex[:10]}", "reason": "matrix"},
    ("POST", "/cases"): lambda w, a, r: {"contact_id": str(r["contact_id"]), "full_name": "matrix name"},
    ("POST", "/cases/{case_id}/transitions"): lambda w, a, r: {"to": "verifying", "on": date.today().isoformat()},
    ("POST", "/cases/{case_id}/assign"): lambda w, a, r: {"user": w.user("other").username},
    ("POST", "/cases/{case_id}/verify"): lambda w, a, r: {},
    ("POST", "/contacts/{contact_id}/notes"): lambda w, a, r: {"text": "matrix note"},
    ("PATCH", "/contacts/{contact_id}"): lambda w, a, r: {"alias": "matrix correction"},
    ("POST", "/cases/{case_id}/notes"): lambda w, a, r: {"text": "matrix note"},
    ("PATCH", "/cases/{case_id}"): lambda w, a, r: {"location": "matrix correction"},
    ("POST", "/cases/{case_id}/consents"): lambda w, a, r: {
        "partner": _partner(w),
        "given_on": date.today().isoformat(),
        "how": "written",
        "fields": ["region"],
    },
    ("POST", "/cases/{case_id}/referrals"): lambda w, a, r: {
        "partner": _partner(w),
        "fields": ["region"],
        "consent_id": str(_consent(w, r["case_id"]) if w.session.get(Case, r["case_id"]) else uuid.uuid4()),
    },
    ("POST", "/referrals/{referral_id}/status"): lambda w, a, r: {"to": "withdrawn"},
    ("POST", "/referrals/inbox"): lambda w, a, r: {"package": "AAAA", "from": "AAAA", "signature": "AAAA"},
}


def _call(client, world: World, method: str, path: str, actor: str, record: str):  # type: ignore[no-untyped-def]
    if (method, path) == ("POST", "/auth/token"):
        if actor == "anon":
            body = {"username": "nobody", "password": "x" * 12, "otp": "123456"}
        else:
            account = world.accounts[actor]
            body = {"username": account.username, "password": account.password, "otp": account.totp().now()}
        return client.post(API + path, json=body)
    params = _record(world, method, path, record)
    world.session.commit()
    url = API + path.format(**{k: v for k, v in params.items() if "{" + k + "}" in path})
    body = BODIES.get((method, path))
    kwargs: dict[str, Any] = {"headers": world.headers(actor)}
    if body is not None:
        kwargs["json"] = body(world, actor, params)
    return client.request(method, url, **kwargs)


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX), ids=[f"{m} {p}" for m, p in sorted(MATRIX)])
def test_every_role_gets_exactly_the_answer_written_down(client, world: World, method: str, path: str) -> None:
    wrong = []
    for record, expected in MATRIX[(method, path)].items():
        for actor, status in zip(ACTORS, expected, strict=True):
            response = _call(client, world, method, path, actor, record)
            figures.count("access_cells")
            figures.count("requests_sent")
            if response.status_code != status:
                wrong.append(f"{actor} on {record}: {response.status_code} (expected {status}) {response.text[:120]}")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize(
    ("method", "path"),
    sorted(k for k, v in MATRIX.items() if "own" in v),
    ids=[f"{m} {p}" for m, p in sorted(k for k, v in MATRIX.items() if "own" in v)],
)
def test_a_hidden_record_is_indistinguishable_from_a_missing_one(client, world: World, method: str, path: str) -> None:
    for actor in ACTORS:
        hidden = _call(client, world, method, path, actor, "own")
        if hidden.status_code != 404:
            continue
        missing = _call(client, world, method, path, actor, "missing")
        figures.count("requests_sent", 2)
        assert missing.status_code == 404
        assert hidden.json() == missing.json()
        assert dict(hidden.headers).keys() == dict(missing.headers).keys()


def test_lists_hold_only_what_the_caller_may_see(client, world: World) -> None:
    owner, other = world.user("owner"), world.user("other")
    mine = world.factory.case(owner)
    theirs = world.factory.case(other)
    world.session.commit()
    contacts = {a: client.get(f"{API}/contacts", headers=world.headers(a)) for a in ("owner", "other", "admin")}
    cases = {a: client.get(f"{API}/cases", headers=world.headers(a)) for a in ("owner", "other", "coordinator")}
    figures.count("requests_sent", 6)

    def ids(response) -> set[str]:  # type: ignore[no-untyped-def]
        assert response.status_code == 200
        return {item["id"] for item in response.json()["items"]}

    assert str(mine.contact_id) in ids(contacts["owner"]) and str(theirs.contact_id) not in ids(contacts["owner"])
    assert str(theirs.contact_id) in ids(contacts["other"]) and str(mine.contact_id) not in ids(contacts["other"])
    assert {str(mine.contact_id), str(theirs.contact_id)} <= ids(contacts["admin"])
    assert ids(cases["owner"]) == {str(mine.id)}
    assert ids(cases["other"]) == {str(theirs.id)}
    assert {str(mine.id), str(theirs.id)} <= ids(cases["coordinator"])
    # Lists never carry a decrypted field, whoever asks.
    for response in (*contacts.values(), *cases.values()):
        for item in response.json()["items"]:
            assert not {"alias", "handle", "notes", "full_name", "location", "family_situation"} & set(item)


def test_views_without_need_to_know_are_redacted(client, world: World) -> None:
    owner = world.user("owner")
    case = world.factory.case(owner, full_name="Redaction Canary", notes="redaction canary note")
    world.session.commit()
    owner_view = client.get(f"{API}/cases/{case.id}", headers=world.headers("owner")).json()
    coordinator_view = client.get(f"{API}/cases/{case.id}", headers=world.headers("coordinator")).json()
    admin_contact = client.get(f"{API}/contacts/{case.contact_id}", headers=world.headers("admin")).json()
    figures.count("requests_sent", 3)
    assert owner_view["redacted"] is False and owner_view["full_name"] == "Redaction Canary"
    assert coordinator_view["redacted"] is True
    assert admin_contact["redacted"] is True
    for view in (coordinator_view, admin_contact):
        assert "Redaction Canary" not in str(view) and "redaction canary note" not in str(view)
