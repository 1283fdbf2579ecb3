"""Record ids: the 18-character case checksum and the shape of generated ids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from salesforce_emulator import ids

# The first pair is Salesforce's documented example; the others are worked by hand from the algorithm
# (per 5-character chunk, bit i set when character i is upper case, indexing A-Z0-5).
KNOWN = [
    ("001A0000006Vm9r", "001A0000006Vm9rIAC"),
    ("003i000001lFZGF", "003i000001lFZGFAA4"),  # lFZGF -> bits 1..4 -> 30 -> '4'
    ("00Q5000000abcde", "00Q5000000abcdeEAA"),  # 00Q50 -> bit 2 -> 4 -> 'E'
    ("ABCDEABCDEABCDE", "ABCDEABCDEABCDE555"),  # all upper -> 31 -> '5'
]


@pytest.mark.parametrize(("short", "long"), KNOWN)
def test_known_ids_get_salesforce_checksum(short: str, long: str) -> None:
    assert ids.to_18(short) == long
    assert ids.to_18(long) == long


def test_checksum_is_case_insensitive_but_must_match() -> None:
    assert ids.to_18("001A0000006Vm9riac") == "001A0000006Vm9rIAC"
    with pytest.raises(ValueError):
        ids.to_18("001A0000006Vm9rAAA")


@pytest.mark.parametrize("bad", ["", "001", "001A0000006Vm9r1", "001A0000006Vm9-", "001A0000006Vm9rIACX"])
def test_malformed_ids_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        ids.to_18(bad)


def test_generated_ids_carry_prefix_and_valid_checksum() -> None:
    generator = ids.IdGenerator()
    issued = [generator.next_id("003") for _ in range(500)]
    assert len(set(issued)) == 500
    for record_id in issued:
        assert len(record_id) == 18 and record_id.startswith("003")
        assert ids.to_18(record_id[:15]) == record_id
    assert any(c.islower() for record_id in issued for c in record_id[3:15])


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=15, max_size=15))
def test_ids_differing_only_in_case_get_different_checksums(id15: str) -> None:
    long_id = ids.to_18(id15)
    swapped = id15.swapcase()
    if swapped != id15:
        assert ids.to_18(swapped).lower() != long_id.lower()
