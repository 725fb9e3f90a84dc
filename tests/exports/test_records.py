"""The record-level counts: the two-query path over covering indexes equals the single joined query."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from app.cases.models import Case
from app.contacts.models import Contact
from app.exports import records

REGIONS = ("chechnya", "moscow", "abroad")
STATUSES = ("new", "evacuated", "closed")


def _contacts(session, user_id, n: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    session.execute(
        insert(Contact.__table__),
        [
            {
                "id": cid,
                "code": f"R-{i:06d}",
                "received_on": date(2025, 11, 20) + timedelta(days=i * 3),
                "channel": ("phone", "signal")[i % 2],
                "region": REGIONS[i % 3],
                "language": "ru",
                "risk": ("low", "high")[(i // 2) % 2],
                "needs": "",
                "possible_duplicate": False,
                "flagged_handle": False,
                "recorded_by_id": user_id,
                "last_activity_on": date(2026, 1, 1),
            }
            for i, cid in enumerate(ids)
        ],
    )
    return ids


def _case(session, user_id, contact_id: uuid.UUID, status: str, code: str) -> None:
    session.execute(
        insert(Case.__table__),
        [
            {
                "id": uuid.uuid4(),
                "code": code,
                "contact_id": contact_id,
                "status": status,
                "region": "moscow",
                "opened_on": date(2026, 1, 1),
                "opened_by_id": user_id,
                "first_contact_on": date(2026, 1, 1),
                "status_on": date(2026, 1, 1),
            }
        ],
    )


def _joined(session) -> Counter:
    sqlite = session.get_bind().dialect.name == "sqlite"
    return records._count_joined(session, sqlite=sqlite, batch=100)


def test_counts_match_the_joined_query_and_leave_out_shredded_contacts(session, factory) -> None:
    user_id = factory.user("caseworker").id
    ids = _contacts(session, user_id, 60)
    for i, cid in enumerate(ids[:40]):
        _case(session, user_id, cid, STATUSES[i % 3], f"C-{i:06d}")
    session.execute(update(Contact).where(Contact.id.in_(ids[50:55])).values(shredded_on=date(2026, 2, 1)))
    counts = records.count_fine(session, batch=7)
    assert counts == _joined(session)
    assert sum(counts.values()) == 55
    assert sum(n for key, n in counts.items() if key[4] == records.NO_CASE) == 15
    assert all(n > 0 for n in counts.values())
    assert ((2025, 11), "chechnya", "phone", "low", "new") in counts  # the first contact, month-level key


def test_each_contact_is_one_row_and_a_second_case_is_refused_by_the_schema(session, factory) -> None:
    user_id = factory.user("caseworker").id
    ids = _contacts(session, user_id, 10)
    for i, cid in enumerate(ids[:4]):
        _case(session, user_id, cid, "new", f"C-{i:06d}")
    # One case per contact is a constraint (migration 0011), so the export never meets two.
    with pytest.raises(IntegrityError), session.begin_nested():
        _case(session, user_id, ids[0], "closed", "C-extra")
    counts = records.count_fine(session)
    assert counts == _joined(session)
    assert sum(counts.values()) == 10
    assert sum(n for key, n in counts.items() if key[4] == records.NO_CASE) == 6


def _contact(session, user_id, day: date, region: str, channel: str, risk: str) -> uuid.UUID:
    cid = uuid.uuid4()
    session.execute(
        insert(Contact.__table__),
        [
            {
                "id": cid,
                "code": f"S-{cid.hex[:8]}",
                "received_on": day,
                "channel": channel,
                "region": region,
                "language": "ru",
                "risk": risk,
                "needs": "",
                "possible_duplicate": False,
                "flagged_handle": False,
                "recorded_by_id": user_id,
                "last_activity_on": day,
            }
        ],
    )
    return cid


def test_contacts_of_one_day_are_told_apart_by_every_column(session, factory) -> None:
    user_id = factory.user("caseworker").id
    day, later = date(2026, 3, 9), date(2026, 3, 30)
    rows = [
        (day, "moscow", "phone", "low", "new"),
        (day, "moscow", "phone", "low", "new"),
        (day, "moscow", "phone", "low", "closed"),
        (day, "moscow", "phone", "low", None),
        (later, "moscow", "phone", "low", None),
        (day, "abroad", "phone", "low", None),
        (day, "moscow", "signal", "low", "new"),
        (day, "moscow", "phone", "high", None),
    ]
    for i, (on, region, channel, risk, status) in enumerate(rows):
        cid = _contact(session, user_id, on, region, channel, risk)
        if status is not None:
            _case(session, user_id, cid, status, f"C-{i:06d}")
    march = (2026, 3)
    expected = Counter(
        {
            (march, "moscow", "phone", "low", "new"): 2,
            (march, "moscow", "phone", "low", "closed"): 1,
            (march, "moscow", "phone", "low", records.NO_CASE): 2,
            (march, "abroad", "phone", "low", records.NO_CASE): 1,
            (march, "moscow", "signal", "low", "new"): 1,
            (march, "moscow", "phone", "high", records.NO_CASE): 1,
        }
    )
    assert records.count_fine(session) == expected
    assert _joined(session) == expected
