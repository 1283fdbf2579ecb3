"""Salesforce record ids: 15-character case-sensitive ids and their 18-character checksummed form."""

from __future__ import annotations

import re

_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_SHAPE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")


_UPPER_AS_ONE = str.maketrans({**{chr(code): "1" for code in range(ord("A"), ord("Z") + 1)},
                               **{char: "0" for char in "abcdefghijklmnopqrstuvwxyz0123456789"}})


def checksum_suffix(id15: str) -> str:
    """The three characters Salesforce appends so that case-insensitive systems can tell ids apart: per
    5-character chunk, bit i is set when character i is upper case, and the 5-bit number picks A-Z0-5."""
    flags = id15.translate(_UPPER_AS_ONE)
    return (_CHECKSUM_ALPHABET[int(flags[4::-1], 2)] + _CHECKSUM_ALPHABET[int(flags[9:4:-1], 2)]
            + _CHECKSUM_ALPHABET[int(flags[14:9:-1], 2)])


def to_18(record_id: str) -> str:
    """Return the 18-character form; raise ValueError for anything that is not a well-formed id."""
    if not _ID_SHAPE.match(record_id):
        raise ValueError(record_id)
    id15 = record_id[:15]
    expected = checksum_suffix(id15)
    # The checksum exists so case-folding systems can round-trip ids, so it is compared without case.
    if len(record_id) == 18 and record_id[15:].upper() != expected:
        raise ValueError(record_id)
    return id15 + expected


def looks_like_id(value: str) -> bool:
    return bool(_ID_SHAPE.match(value))


def base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(_BASE62[remainder])
    return "".join(reversed(digits)).rjust(width, "0")


_PAIRS = [first + second for first in _BASE62 for second in _BASE62]


class IdGenerator:
    """Issues ids shaped like real ones: key prefix, a pod marker, a base-62 serial, and the checksum."""

    # A large start so serials mix upper and lower case and the checksum is exercised from the first id.
    _FIRST_SERIAL = 62**8 * 40 + 62**5 * 33 + 62**3 * 45 + 12_345

    def __init__(self, pod: str = "5g0") -> None:
        self._pod = pod
        self._serial = self._FIRST_SERIAL
        self._high = -1
        self._high_text = ""

    def next_id(self, key_prefix: str) -> str:
        self._serial += 1
        # Ids are minted on every insert: the upper seven digits change once per 3,844 ids, so they are
        # converted only then and the lower two come from a table.
        high, low = divmod(self._serial, 3844)
        if high != self._high:
            self._high, self._high_text = high, base62(high, 7)
        id15 = key_prefix + self._pod + self._high_text + _PAIRS[low]
        return id15 + checksum_suffix(id15)
