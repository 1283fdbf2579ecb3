"""Value validation rules (pure, no I/O)."""

from __future__ import annotations

import string

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st
from records_svc.domain.properties import (
    InvalidValue,
    normalize_date,
    normalize_datetime,
    normalize_domain,
    normalize_email,
    normalize_number,
)

_local = st.text(string.ascii_letters + string.digits + ".-_+'!#", min_size=1, max_size=70)
_domain = st.text(string.ascii_lowercase + string.digits + ".-", min_size=1, max_size=30)
_tld = st.sampled_from(["com", "io", "c", "local", "test", "x1", "museum", "", "invalid"])


@settings(max_examples=2000, deadline=None)
@given(_local, _domain, _tld)
def test_fast_email_check_agrees_with_email_validator(local: str, domain: str, tld: str) -> None:
    address = f"{local}@{domain}.{tld}" if tld else f"{local}@{domain}"
    try:
        ours = normalize_email(address)
    except InvalidValue:
        ours = None
    try:
        reference = validate_email(address, check_deliverability=False, allow_smtputf8=True).normalized.lower()
    except EmailNotValidError:
        reference = None
    assert ours == reference


@pytest.mark.parametrize(("raw", "expected"), [
    ("https://www.Example.com/path?q=1", "example.com"), ("sub.example.co.uk", "sub.example.co.uk")])
def test_domains_are_normalised(raw: str, expected: str) -> None:
    assert normalize_domain(raw) == expected


def test_numbers_dates_and_datetimes() -> None:
    assert normalize_number("+1.5e3") == "1500"
    with pytest.raises(InvalidValue):
        normalize_number("1,5")
    assert normalize_date("1709251200000") == "2024-03-01"
    with pytest.raises(InvalidValue):
        normalize_date("1709251200001")
    assert normalize_datetime("2024-03-01T10:00:00+02:00") == "2024-03-01T08:00:00.000Z"
    with pytest.raises(InvalidValue):
        normalize_datetime("31/31/2024")
