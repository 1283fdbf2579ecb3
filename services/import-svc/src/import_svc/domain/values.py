"""Turning spreadsheet text into the values records-svc takes (pure: no I/O).

Dates arrive in the import's date format (MONTH_DAY_YEAR by default) and leave as ISO-8601;
numbers arrive in a country's format ("1.234,5" in Germany) and leave as plain decimals.
records-svc validates everything else (emails, options, lengths) and names HubSpot's error types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_common.timestamps import format_timestamp

DATE_FORMATS = ("MONTH_DAY_YEAR", "DAY_MONTH_YEAR", "YEAR_MONTH_DAY")


class CouldNotParse(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class NumberFormat:
    decimal: str = "."
    thousands: str = ","


# Separators by country (ISO 3166 alpha-2); anything not listed uses the US/UK style.
_COMMA_DECIMAL_DOT_GROUP = {"DE", "AT", "NL", "BE", "IT", "ES", "PT", "BR", "DK", "ID", "TR", "AR", "CL", "CO",
                            "GR", "RO", "HR", "SI", "RS", "VN", "UY", "PY"}
_COMMA_DECIMAL_SPACE_GROUP = {"FR", "SE", "NO", "FI", "PL", "CZ", "SK", "HU", "RU", "UA", "BG", "LT", "LV", "EE",
                              "ZA", "CA-FR"}
_DOT_DECIMAL_APOSTROPHE_GROUP = {"CH", "LI"}


def number_format_for(spec: object) -> NumberFormat:
    """From a country code ("DE"), a locale ("de-DE") or explicit separators."""
    if isinstance(spec, dict):
        return NumberFormat(decimal=str(spec.get("decimalSeparator", ".")),
                            thousands=str(spec.get("thousandsSeparator", spec.get("groupingSeparator", ","))))
    if not spec:
        return NumberFormat()
    code = str(spec).replace("_", "-").split("-")[-1].upper()
    if code in _COMMA_DECIMAL_DOT_GROUP:
        return NumberFormat(decimal=",", thousands=".")
    if code in _COMMA_DECIMAL_SPACE_GROUP:
        return NumberFormat(decimal=",", thousands=" ")
    if code in _DOT_DECIMAL_APOSTROPHE_GROUP:
        return NumberFormat(decimal=".", thousands="'")
    return NumberFormat()


_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def convert_number(text: str, fmt: NumberFormat) -> str:
    candidate = text.strip().replace("\u00a0", " ").replace("\u202f", " ")
    if candidate.endswith("%"):
        candidate = candidate[:-1].strip()
    for symbol in ("$", "€", "£", "¥", "CHF"):
        candidate = candidate.replace(symbol, "")
    candidate = candidate.strip()
    if fmt.thousands:
        candidate = candidate.replace(fmt.thousands, "")
        if fmt.thousands == " ":
            candidate = candidate.replace(" ", "")
    if fmt.decimal != ".":
        candidate = candidate.replace(fmt.decimal, ".")
    if not _PLAIN_NUMBER.match(candidate):
        raise CouldNotParse("COULD_NOT_PARSE_NUMBER", f"{text} was not a valid number.")
    return candidate.lstrip("+")


_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_SPLIT_DATE = re.compile(r"^(\d{1,4})[/.\-](\d{1,2})[/.\-](\d{1,4})$")
_EPOCH_MS = re.compile(r"^-?\d{11,14}$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?\s*([AaPp][Mm])?$")


def _year(value: str) -> int:
    year = int(value)
    if len(value) <= 2:
        year += 2000 if year < 70 else 1900
    return year


def parse_day(text: str, date_format: str) -> date:
    candidate = text.strip()
    match = _ISO_DATE.match(candidate)
    try:
        if match:
            return date(int(match[1]), int(match[2]), int(match[3]))
        match = _SPLIT_DATE.match(candidate)
        if match:
            a, b, c = match[1], match[2], match[3]
            if len(a) == 4 or date_format == "YEAR_MONTH_DAY":
                return date(_year(a), int(b), int(c))
            if date_format == "DAY_MONTH_YEAR":
                return date(_year(c), int(b), int(a))
            return date(_year(c), int(a), int(b))
    except ValueError:
        pass
    raise CouldNotParse("COULD_NOT_PARSE_DATE",
                        f"{text} could not be parsed as a date in the format {date_format}")


def _split_date_time(text: str) -> tuple[str, str]:
    candidate = text.strip()
    if "T" in candidate[:11] and _ISO_DATE.match(candidate.split("T", 1)[0]):
        return tuple(candidate.split("T", 1))  # type: ignore[return-value]
    parts = candidate.split(None, 1)
    return (parts[0], parts[1] if len(parts) > 1 else "")


def convert_date(text: str, date_format: str) -> str:
    candidate = text.strip()
    if _EPOCH_MS.match(candidate):
        return candidate
    day_text, _ = _split_date_time(candidate)
    return parse_day(day_text, date_format).isoformat()


def convert_datetime(text: str, date_format: str, time_zone: ZoneInfo | None) -> str:
    candidate = text.strip()
    if _EPOCH_MS.match(candidate):
        return candidate
    day_text, time_text = _split_date_time(candidate)
    day = parse_day(day_text, date_format)
    hour = minute = second = micro = 0
    tz = time_zone or UTC
    if time_text:
        time_text = time_text.strip()
        if time_text.endswith("Z") or re.search(r"[+-]\d{2}:?\d{2}$", time_text):
            try:
                moment = datetime.fromisoformat(f"{day.isoformat()}T{time_text.replace('Z', '+00:00')}")
            except ValueError:
                raise CouldNotParse("COULD_NOT_PARSE_DATE", f"{text} could not be parsed as a date and time") from None
            return format_timestamp(moment)
        match = _TIME.match(time_text)
        if not match:
            raise CouldNotParse("COULD_NOT_PARSE_DATE", f"{text} could not be parsed as a date and time")
        hour, minute = int(match[1]), int(match[2])
        second = int(match[3] or 0)
        micro = int((match[4] or "0").ljust(6, "0"))
        if match[5]:
            if hour > 12:
                raise CouldNotParse("COULD_NOT_PARSE_DATE", f"{text} could not be parsed as a date and time")
            hour = hour % 12 + (12 if match[5].lower() == "pm" else 0)
    try:
        moment = datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        raise CouldNotParse("COULD_NOT_PARSE_DATE", f"{text} could not be parsed as a date and time") from None
    return format_timestamp(moment)


def zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def convert(text: str, prop_type: str, *, date_format: str, number_format: NumberFormat,
            time_zone: ZoneInfo | None) -> str:
    """One cell for a property of `prop_type`; raises CouldNotParse."""
    if text == "":
        return text
    if prop_type == "date":
        return convert_date(text, date_format)
    if prop_type == "datetime":
        return convert_datetime(text, date_format, time_zone)
    if prop_type == "number":
        return convert_number(text, number_format)
    return text


def guess_date_format(samples: list[str]) -> str | None:
    """The date format that parses every sample, preferring the first that fits uniquely."""
    fits = []
    for fmt in DATE_FORMATS:
        try:
            for s in samples:
                parse_day(_split_date_time(s)[0], fmt)
        except CouldNotParse:
            continue
        fits.append(fmt)
    return fits[0] if fits else None


# OWASP's list: besides = + - @, a leading TAB or CR lets spreadsheets read what follows as a formula.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(value: str) -> str:
    """Spreadsheet formula injection: a cell starting with = + - @ TAB or CR is shown as text."""
    return "'" + value if value[:1] in FORMULA_LEADS else value
