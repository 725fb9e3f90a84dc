"""Referral statistics for analysts come from the release ledger: frozen with their month, never recomputed."""

from __future__ import annotations

import json
from datetime import date, timedelta

from sqlalchemy import update

from app.referrals.models import Referral, ReferralStep
from app.stats import ledger
from tests.referrals.test_api import _consent, _partner

LAST_MONTH = date.today().replace(day=1) - timedelta(days=1)
PERIOD = LAST_MONTH.strftime("%Y-%m")


def _refer(client, factory, session, plan: dict[str, int]) -> tuple[dict[str, str], list[dict]]:  # type: ignore[no-untyped-def, type-arg]
    """Referrals to each partner (name -> how many), all sent last month; returns the caseworker's headers."""
    worker = factory.user("caseworker")
    headers = factory.headers(worker)
    cases = [factory.case(worker) for _ in range(sum(plan.values()))]
    session.commit()
    made = []
    partners = [name for name, n in plan.items() for _ in range(n)]
    for case, partner in zip(cases, partners, strict=True):
        consent = _consent(client, headers, case.id, partner=partner, fields=("region",)).json()
        body = {"partner": partner, "fields": ["region"], "consent_id": consent["id"]}
        made.append(client.post(f"/api/v1/cases/{case.id}/referrals", json=body, headers=headers).json())
    session.execute(update(Referral).values(sent_on=LAST_MONTH, status_on=LAST_MONTH))
    session.execute(update(ReferralStep).values(on=LAST_MONTH))
    session.commit()
    return headers, made


def _accept(client, headers, referral_id: str) -> None:  # type: ignore[no-untyped-def]
    url = f"/api/v1/referrals/{referral_id}/status"
    assert client.post(url, json={"to": "accepted"}, headers=headers).status_code == 200


def test_late_acceptance_does_not_change_a_released_month(client, factory, session) -> None:
    _partner(session, "Shelter")
    headers, made = _refer(client, factory, session, {"Shelter": 8})
    for r in made[:5]:
        _accept(client, headers, r["id"])
    session.execute(update(ReferralStep).values(on=LAST_MONTH))
    session.commit()
    analyst = factory.headers(factory.user("analyst"))
    coordinator = factory.headers(factory.user("coordinator"))
    before = client.get("/api/v1/stats/referrals", headers=analyst).json()  # releases last month
    assert before["months"] == [PERIOD] and before["accepted"]["cells"] == [[5]] and before["made"]["cells"] == [[8]]
    release = ledger.get_release(session, period=PERIOD)
    assert [r["id"] for r in before["releases"]] == [str(release.id)] and before["releases"][0]["period"] == PERIOD

    # Acceptance recorded afterwards, dated inside the released month.
    _accept(client, headers, made[5]["id"])
    session.execute(update(ReferralStep).where(ReferralStep.status == "accepted").values(on=LAST_MONTH))
    session.commit()
    live = client.get("/api/v1/stats/referrals", headers=coordinator).json()
    assert live["exact"] and live["accepted"]["cells"] == [[6]]
    after = client.get("/api/v1/stats/referrals", headers=analyst).json()
    assert after == before


def test_analyst_answer_is_the_frozen_release_and_hides_small_cells(client, factory, session) -> None:
    for name in ("Embassy", "Lawyers", "Shelter"):
        _partner(session, name)
    headers, made = _refer(client, factory, session, {"Embassy": 2, "Lawyers": 6, "Shelter": 7})
    for r in made[2:9]:  # Lawyers 6 accepted, Shelter 1
        _accept(client, headers, r["id"])
    session.execute(update(ReferralStep).values(on=LAST_MONTH))
    session.commit()
    analyst = factory.headers(factory.user("analyst"))
    got = client.get("/api/v1/stats/referrals", headers=analyst).json()
    assert got["partners"] == ["Embassy", "Lawyers", "Shelter"] and not got["exact"]

    frozen = json.loads(ledger.get_release(session, period=PERIOD).published)[ledger.REFERRALS]
    for measure in ("made", "accepted"):
        assert got[measure]["cells"] == [frozen[measure]["cells"]]
        assert got[measure]["month_totals"] == [frozen[measure]["total"]] == [got[measure]["total"]]
    shown = [
        v
        for m in ("made", "accepted")
        for v in [*sum(got[m]["cells"], []), *got[m]["month_totals"], *got[m]["partner_totals"], got[m]["total"]]
    ]
    assert not [v for v in shown if v is not None and 0 < v < 5]
    # Embassy's 2 and Shelter's 1 accepted are hidden, and so is one more figure: neither is the total less the rest.
    assert got["made"]["cells"][0][0] is None and got["accepted"]["cells"][0][2] is None
    assert got["made"]["cells"][0].count(None) >= 2 or got["made"]["total"] is None
    assert got["accepted"]["cells"][0].count(None) >= 2 or got["accepted"]["total"] is None
