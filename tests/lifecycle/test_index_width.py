"""The blind index follows the data: widths kept in the CipherSweet band, rebuilt in the background by one
leased builder at a time, resumable after a kill, and no look-up or intake missed while it runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date

import pytest
from sqlalchemy import func, select, update

from app.audit.models import AuditEntry
from app.contacts import flagged
from app.contacts.models import Contact
from app.crypto import service as crypto
from app.crypto.keyring import forget_keyrings, get_keyring
from app.crypto.models import BlindIndexEntry, IndexKey
from app.db import unit_of_work
from app.lifecycle import reindex
from tests.conftest import BACKENDS
from tests.factories import Factory
from tests.lifecycle.test_reindex import _record, _seed
from tests.lifecycle.test_reindex import install as install  # the fixture

CONTACT = "contact.handle"


def test_auto_width_keeps_every_size_between_the_bounds() -> None:
    for rows in [*range(8, 5000), 10_000, 100_000, 1_000_000, 16_000_000]:
        bits = reindex.auto_width(rows)
        assert reindex.TARGET <= rows / 2**bits < 2 * reindex.TARGET, rows
        assert not reindex.out_of_bounds(rows, bits)
        # The CipherSweet lower bound with room to spare: it takes halving the rows to reach it.
        assert rows / 2**bits >= 2 * reindex.LOWER
    assert reindex.auto_width(5) == 0
    assert reindex.out_of_bounds(100_000, 12)  # ~24 a bucket: too many candidates
    assert reindex.out_of_bounds(100, 12)  # ~0.02 a bucket: an index value would name one person
    assert not reindex.out_of_bounds(1, 0)  # one bucket is as wide as it gets


def _lookup(engine, settings, handle: str) -> bool:
    with unit_of_work(engine) as session:
        crypto.bind(session, settings=settings, keyring=get_keyring(settings))
        return bool(flagged.handle_matches(session, model=Contact, table="contact", column=CONTACT, value=handle))


def _epochs(engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [(int(e), str(s)) for e, s in conn.execute(select(IndexKey.epoch, IndexKey.state).order_by("epoch"))]


def test_the_widener_moves_a_column_out_of_its_band_back_into_it_and_matches_survive(install) -> None:
    engine, settings = install
    username = _seed(engine, settings)  # 31 contacts and one flagged handle, at the first epoch's 12 bits
    keyring = get_keyring(settings)
    widener = reindex.IndexWidener(engine=engine, settings=settings, keyring=keyring, interval=60)
    result = widener.run_once()
    assert result is not None
    # 31 contacts: 2**2 buckets keep 7-8 in each; one flagged handle and no case: one bucket.
    assert result.widths == {CONTACT: 2, "case.handle": 0, "flagged_handle.handle": 0}
    assert (result.epoch, result.retired_epochs, result.indexed) == (2, [1], 32)
    assert _epochs(engine) == [(2, "active")]
    with engine.connect() as conn:
        counts = dict(conn.execute(select(BlindIndexEntry.bucket, func.count()).group_by(BlindIndexEntry.bucket)).all())
        # Every entry got its sealed normalised value on the way.
        assert conn.scalar(select(func.count()).where(BlindIndexEntry.value_ct.is_(None))) == 0
    assert set(counts) <= {0, 1, 2, 3}
    assert widener.run_once() is None  # in its band now: nothing to do
    forget_keyrings()
    assert _record(engine, settings, username, "89123456789").possible_duplicate is True
    assert _record(engine, settings, username, "@caller_7").possible_duplicate is True
    assert _record(engine, settings, username, "@ENTRAPPER").flagged_handle is True
    assert _record(engine, settings, username, "@caller_99").possible_duplicate is False


def test_a_bucket_mate_with_another_handle_is_left_out_without_opening_its_record(install) -> None:
    engine, settings = install
    _seed(engine, settings)
    reindex.reindex(engine=engine, settings=settings, keyring=get_keyring(settings), bits=4)
    # Widths of 0 bits would be refused by hand; put every contact in one bucket to be sure.
    with unit_of_work(engine) as session:
        crypto.bind(session, settings=settings, keyring=get_keyring(settings))
        session.execute(update(BlindIndexEntry).values(bucket=0))
        session.execute(update(IndexKey).values(bits=0, widths=None))
    forget_keyrings()
    with unit_of_work(engine) as session:
        crypto.bind(session, settings=settings, keyring=get_keyring(settings))
        matches, unsealed = crypto.index_matches(session, column=CONTACT, value="@Caller_3")
        assert unsealed == []
        assert len(matches) == 1
        assert crypto.index_candidates(session, column=CONTACT, value="@caller_3") == matches
        assert crypto.index_matches(session, column=CONTACT, value="@nobody") == ([], [])


def test_a_sealed_value_moved_to_another_subject_matches_nobody(install) -> None:
    engine, settings = install
    _seed(engine, settings)
    reindex.reindex(engine=engine, settings=settings, keyring=get_keyring(settings), bits=4)
    forget_keyrings()
    with unit_of_work(engine) as session:
        crypto.bind(session, settings=settings, keyring=get_keyring(settings))
        (target,) = crypto.index_matches(session, column=CONTACT, value="@caller_5")[0]
        (victim,) = crypto.index_matches(session, column=CONTACT, value="@caller_6")[0]
    # Someone who can write to the database copies caller_5's sealed value and bucket onto caller_6's
    # entry, hoping a look-up for caller_5 then reports caller_6 too.
    with engine.begin() as conn:
        blob, bucket = conn.execute(
            select(BlindIndexEntry.value_ct, BlindIndexEntry.bucket).where(BlindIndexEntry.subject_id == target)
        ).one()
        conn.execute(
            update(BlindIndexEntry).where(BlindIndexEntry.subject_id == victim).values(value_ct=blob, bucket=bucket)
        )
    with unit_of_work(engine) as session:
        crypto.bind(session, settings=settings, keyring=get_keyring(settings))
        matches, unsealed = crypto.index_matches(session, column=CONTACT, value="@caller_5")
        # The copy fails to open under caller_6's key and binding: it is handed to the caller to check,
        # and opening caller_6's record shows another handle.
        assert (matches, unsealed) == ([target], [victim])
        found = flagged.handle_matches(session, model=Contact, table="contact", column=CONTACT, value="@caller_5")
        assert found == [target]


def test_a_second_builder_waits_for_the_lease_and_carries_on_after_it_runs_out(install) -> None:
    engine, settings = install
    _seed(engine, settings)
    keyring = get_keyring(settings)

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt  # the first builder dies after its first batch

    with pytest.raises(KeyboardInterrupt):
        reindex.reindex(engine=engine, settings=settings, keyring=keyring, bits=5, batch_size=10, progress=stop)
    assert _epochs(engine) == [(1, "active"), (2, "building")]
    other = dict(engine=engine, settings=settings, keyring=keyring, auto=True, takeover=False, holder="other")
    assert reindex.reindex(**other) is None  # the lease is still held: nothing built twice
    with engine.begin() as conn:
        conn.execute(update(IndexKey).where(IndexKey.epoch == 2).values(lease_until=int(time.time()) - 1))
    result = reindex.reindex(**other)
    assert result is not None
    assert (result.epoch, result.bits, result.indexed) == (2, 5, 22)  # 10 were built before the death
    assert _epochs(engine) == [(2, "active")]


def test_writers_during_a_rebuild_reach_both_epochs(install) -> None:
    engine, settings = install
    username = _seed(engine, settings)
    keyring = get_keyring(settings)
    seen: list[object] = []

    def intake_mid_build(done: int, total: int) -> None:
        if not seen:
            seen.append(_record(engine, settings, username, "@arrived_mid_build"))

    reindex.reindex(engine=engine, settings=settings, keyring=keyring, bits=6, batch_size=5, progress=intake_mid_build)
    with unit_of_work(engine) as session:
        crypto.bind(session, settings=settings, keyring=keyring)
        assert len(crypto.index_matches(session, column=CONTACT, value="@arrived_mid_build")[0]) == 1
    assert _record(engine, settings, username, "@ARRIVED_MID_BUILD").possible_duplicate is True


BUILDER = """
import sys
from app.config import Settings
from app.crypto.keyring import get_keyring
from app.db import make_engine
from app.lifecycle import reindex

settings = Settings(_env_file=None)
engine = make_engine(settings, serialize_writes=True)
reindex.reindex(engine=engine, settings=settings, keyring=get_keyring(settings), bits=int(sys.argv[1]),
                batch_size=4, pause=float(sys.argv[2]), holder="builder-process")
"""


def _builder(settings, bits: int, pause: float) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HELPLINE_DATA_DIR": str(settings.data_dir),
        "HELPLINE_DATABASE_URL": settings.database_url,
        "HELPLINE_KEY_FILE": str(settings.key_file),
    }
    return subprocess.Popen([sys.executable, "-c", BUILDER, str(bits), str(pause)], env=env)


def test_look_ups_from_another_process_during_a_rebuild_give_the_same_answers(install) -> None:
    engine, settings = install
    username = _seed(engine, settings)
    asked = {f"@caller_{i}": True for i in range(0, 30, 3)} | {"+79123456789": True, "@stranger": False}
    assert {h: _lookup(engine, settings, h) for h in asked} == asked
    builder = _builder(settings, bits=6, pause=0.05)
    during = mid_build = 0
    added: list[str] = []
    try:
        while builder.poll() is None:
            building = len(_epochs(engine)) > 1
            answers = {h: _lookup(engine, settings, h) for h in asked}
            assert answers == asked
            during += 1
            mid_build += building
            if building and len(added) < 3:
                handle = f"@new_during_build_{len(added)}"
                _record(engine, settings, username, handle)
                added.append(handle)
    finally:
        builder.wait(timeout=60)
    assert builder.returncode == 0
    assert mid_build >= 1, "no look-up ran while the building epoch existed"
    assert _epochs(engine)[-1][1] == "active" and len(_epochs(engine)) == 1
    for handle in [*asked, *added]:
        assert _lookup(engine, settings, handle) is (asked.get(handle, True)), handle


def test_a_killed_builder_process_leaves_a_rebuild_the_next_one_finishes(install) -> None:
    engine, settings = install
    _seed(engine, settings)
    builder = _builder(settings, bits=6, pause=0.3)
    try:
        deadline = time.monotonic() + 60
        built = 0
        while built < 8 and time.monotonic() < deadline:
            with engine.connect() as conn:
                built = conn.scalar(select(func.count()).where(BlindIndexEntry.epoch == 2)) or 0
            time.sleep(0.05)
    finally:
        builder.send_signal(signal.SIGKILL)
        builder.wait(timeout=30)
    assert 8 <= built < 32
    assert _epochs(engine) == [(1, "active"), (2, "building")]
    assert _lookup(engine, settings, "@caller_20") is True  # both epochs consulted meanwhile
    # By hand, the rebuild is taken over at once and finished from where the dead builder stopped.
    forget_keyrings()
    result = reindex.reindex(engine=engine, settings=settings, keyring=get_keyring(settings))
    assert result is not None and result.epoch == 2 and result.indexed < 32
    assert _epochs(engine) == [(2, "active")]
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(BlindIndexEntry)) == 32
    assert _lookup(engine, settings, "@caller_20") is True


@pytest.fixture(params=BACKENDS)
def two_servers(request, database_url_factory, tmp_path):
    from tests.support.live_server import LiveServer

    url = database_url_factory(request.param)
    env = {"HELPLINE_INDEX_AUTOWIDTH_SECONDS": "1"}
    first = LiveServer(tmp_path / "one", database_url=url, env=env)
    second = LiveServer(tmp_path / "two", database_url=url, init=False, env={**env, **_same_install(first)})
    second.key_file = first.key_file
    try:
        yield first, second
    finally:
        second.close()
        first.close()


def _same_install(live) -> dict[str, str]:
    return {"HELPLINE_DATA_DIR": str(live.data_dir), "HELPLINE_KEY_FILE": str(live.key_file)}


def test_two_servers_widen_the_index_by_themselves_once_and_answer_alike_meanwhile(two_servers) -> None:
    from app.audit.models import AuditEntry

    first, second = two_servers
    engine, settings = first.engine(), first.settings()
    # Forty callers recorded before the servers start, at the first epoch's 12 bits: 4,096 buckets for
    # forty rows is below the lower bound, so each server's widener wants a narrower index; only one
    # of them may build it.
    with first.session() as session:
        factory = Factory(session)
        worker = factory.user("caseworker")
        for i in range(40):
            factory.contact(worker, handle=f"@widen_{i}")
    token = first.issue_token(worker.username)
    first.start()
    second.start()
    body = {"received_on": str(date.today()), "channel": "telegram", "region": "chechnya", "language": "ru"}
    body |= {"risk": "high", "needs": ["evacuation"]}

    def post(live, handle: str) -> bool:
        with live.client(token) as http:
            answer = http.post("/api/v1/contacts", json={**body, "handle": handle})
        assert answer.status_code == 201, answer.text
        return bool(answer.json()["possible_duplicate"])

    deadline = time.monotonic() + 90
    asked = 0
    while time.monotonic() < deadline:
        with engine.connect() as conn:  # type: ignore[attr-defined]
            states = conn.execute(select(IndexKey.epoch, IndexKey.state, IndexKey.widths)).all()
        if len(states) == 1 and states[0][0] > 1:
            break
        # Meanwhile every repeat is still recognised (looked up beside the servers, adding nothing).
        assert _lookup(engine, settings, f"@WIDEN_{asked % 40}") is True
        asked += 1
        time.sleep(0.1)
    else:
        pytest.fail(f"the index was not rebuilt: {states}")
    assert json.loads(states[0][2])[CONTACT] == reindex.auto_width(40) == 3
    with engine.connect() as conn:  # type: ignore[attr-defined]
        actions = conn.scalars(select(AuditEntry.action).where(AuditEntry.action.like("keys.reindex%"))).all()
        entries = conn.scalar(select(func.count()).where(BlindIndexEntry.epoch == states[0][0]))
    assert sorted(actions) == ["keys.reindex", "keys.reindex_done"]  # one builder, once
    assert entries == 40
    assert post(second, "@widen_7") is True and post(first, "@widen_new") is False


def test_the_widener_estimates_a_wide_column_from_a_slice_of_its_buckets(install) -> None:
    import random
    import uuid

    from sqlalchemy import insert

    engine, settings = install
    rng = random.Random(7)
    rows = [
        {
            "subject_id": uuid.UUID(int=rng.getrandbits(128)),
            "column": CONTACT,
            "epoch": 1,
            "bucket": rng.getrandbits(12),
        }
        for _ in range(20_000)
    ]
    with engine.begin() as conn:
        conn.execute(insert(BlindIndexEntry), rows)
    with unit_of_work(engine) as session:
        crypto.bind(session, settings=settings, keyring=get_keyring(settings))
        active = crypto.active_epoch(session)
        exact = reindex.estimated_rows(session, epoch=active, column=CONTACT, sample=False)
        sampled = reindex.estimated_rows(session, epoch=active, column=CONTACT)
        in_slice = sum(1 for r in rows if r["bucket"] < 2**12 >> reindex.SAMPLE_SHIFT)
        # 20,000 rows at 12 bits is 4.9 a bucket: in the band, whether counted or estimated.
        assert reindex.wanted_widths(session, sample=True) is not None  # the empty case column is out of it
    assert exact == 20_000
    assert sampled == in_slice * 16 and abs(sampled - exact) < exact * 0.25
    assert not reindex.out_of_bounds(sampled, 12)


def test_a_bulk_load_sizes_only_the_columns_that_hold_no_entry_yet(install) -> None:
    engine, settings = install
    username = _seed(engine, settings)  # 31 contacts and one flagged handle, at the first epoch's 12 bits
    keyring = get_keyring(settings)
    expected = {CONTACT: 100_000, "case.handle": 40_000, "flagged_handle.handle": 1}
    with unit_of_work(engine) as session:
        crypto.bind(session, settings=settings, keyring=keyring)
        widths = reindex.size_empty_columns(session, expected=expected, actor="demo-data")
    # Contacts and the known-bad list hold entries: moving them is a rebuild, so they keep 12 bits.
    assert widths == {CONTACT: 12, "case.handle": reindex.auto_width(40_000), "flagged_handle.handle": 12}
    with unit_of_work(engine) as session:
        crypto.bind(session, settings=settings, keyring=keyring)
        assert crypto.active_epoch(session).width("case.handle") == 13
        logged = session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "keys.index_widths")).all()
        assert [json.loads(d)["widths"] for d in logged] == [widths]
        # Already in band for what is coming: nothing to change, nothing audited.
        assert reindex.size_empty_columns(session, expected=expected, actor="demo-data") is None
    assert _record(engine, settings, username, "@caller_3").possible_duplicate is True
