"""Data for the statistics tests, written through the real contacts and cases services."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest

from tests.exports.conftest import export_client  # noqa: F401 - streamed exports share the test session
from tests.factories import Factory

REGIONS = ("chechnya", "dagestan", "ingushetia", "moscow")
CHANNELS = ("phone", "telegram", "signal", "whatsapp")
FIELD_MONTH = date(2026, 3, 1)


def build_field_month(factory: Factory, *, month: date = FIELD_MONTH) -> dict[str, int]:
    """The month from the field: 80 contacts, 50 cases opened from them, 40 of those evacuated in the month."""
    caseworker = factory.user("caseworker")
    coordinator = factory.user("coordinator")
    contacts = []
    for i in range(80):
        contacts.append(
            factory.contact(
                caseworker,
                received_on=month + timedelta(days=i % 20),
                region=REGIONS[i % len(REGIONS)],
                channel=CHANNELS[i % len(CHANNELS)],
                risk="high" if i % 3 else "immediate",
            )
        )
    for i, contact in enumerate(contacts[:50]):
        opened = contact.received_on + timedelta(days=1)
        status = "evacuated" if i < 40 else "verifying"
        factory.case(
            caseworker,
            contact_id=contact.id,
            status=status,
            opened_on=opened,
            on=opened + timedelta(days=i % 7),
            verifier=coordinator,
        )
    return {"contacts": 80, "cases_opened": 50, "evacuated": 40}


@pytest.fixture
def field_month(factory: Factory) -> Callable[..., dict[str, int]]:
    return lambda **kw: build_field_month(factory, **kw)
