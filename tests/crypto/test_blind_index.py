"""Normalisation and truncated blind indexes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.crypto import blind_index
from app.crypto import service as crypto


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("+7 912 345-67-89", "89123456789"),
        ("+7 (912) 345 67 89", "+79123456789"),
        ("@Ivan_Petrov", "ivan_petrov"),
        ("  Ivan Petrov ", "ivanpetrov"),
        ("ＩＶＡＮ", "ivan"),  # full-width letters fold under NFKC
        ("Ахмед@", "ахмед"),
    ],
)
def test_the_same_handle_written_two_ways_normalises_the_same(a: str, b: str) -> None:
    assert blind_index.normalise_handle(a) == blind_index.normalise_handle(b)


def test_phone_numbers_become_e164() -> None:
    assert blind_index.normalise_handle("8 (912) 345-67-89") == "+79123456789"


@pytest.mark.parametrize(("a", "b"), [("+7 912 345-67-89", "+7 912 345-67-88"), ("@ivan", "@ivan2")])
def test_different_handles_stay_different(a: str, b: str) -> None:
    assert blind_index.normalise_handle(a) != blind_index.normalise_handle(b)


@given(st.text(min_size=1, max_size=40), st.integers(min_value=4, max_value=32))
def test_bucket_fits_in_the_configured_bits(value: str, bits: int) -> None:
    key = b"k" * 32
    assert 0 <= blind_index.bucket(key, value, bits=bits) < 2**bits


def test_index_keys_differ_per_column_and_epoch() -> None:
    root = b"r" * 32
    keys = {
        blind_index.derive_index_key(root, column="contact.handle", epoch=1),
        blind_index.derive_index_key(root, column="flagged_handle.handle", epoch=1),
        blind_index.derive_index_key(root, column="contact.handle", epoch=2),
    }
    assert len(keys) == 3


def test_same_phone_two_ways_lands_in_the_same_bucket_and_matches(session) -> None:
    epoch_a, bucket_a = crypto.index_bucket(session, "+7 912 345-67-89", column="contact.handle")
    epoch_b, bucket_b = crypto.index_bucket(session, "89123456789", column="contact.handle")
    assert (epoch_a, bucket_a) == (epoch_b, bucket_b)
    assert crypto.same_handle("+7 912 345-67-89", "89123456789")
    assert not crypto.same_handle("+7 912 345-67-89", "+7 912 345-67-80")


def test_bucket_lookups_find_the_subject(session) -> None:
    subject = crypto.new_subject_id()
    crypto.add_index_entry(session, subject_id=subject, column="contact.handle", value="@someone")
    session.flush()
    assert subject in crypto.index_candidates(session, column="contact.handle", value="SOMEONE")
