"""Values between Corral and Salesforce (pure).

Corral stores every value as a string (numbers as written, booleans `true`/`false`, dates `YYYY-MM-DD`,
datetimes ISO-8601 UTC with milliseconds and `Z`, multi-select options `;`-joined); Salesforce's JSON
carries typed values (`describe` field types). Comparisons happen on `canonical` forms so that `100.0`
and `100`, `2024-05-01T10:00:00.000+0000` and `2024-05-01T10:00:00.000Z`, `B;A` and `A;B`, or an email's
case, never look like changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from crm_common.timestamps import format_timestamp

NUMBER_TYPES = frozenset({"double", "int", "long", "currency", "percent"})
INTEGER_TYPES = frozenset({"int", "long"})
TEXT_TYPES = frozenset({"string", "textarea", "email", "phone", "url", "encryptedstring", "combobox", "picklist",
                        "reference", "id"})


@dataclass(frozen=True)
class ValueKind:
    """What one mapping converts between: the Corral property's type and the Salesforce field's type."""

    property_type: str  # string | number | bool | enumeration | date | datetime
    salesforce_type: str  # describe's `type`
    multi: bool = False  # a multiple-checkboxes property (options `;`-joined)
    email: bool = False  # compared without case (Corral lowercases emails)


class UnconvertibleValue(ValueError):
    pass


def canonical(value: str, kind: ValueKind) -> str:
    """The comparable form of a Corral-form value."""
    if value == "":
        return ""
    if kind.email or kind.salesforce_type == "email":
        return value.strip().lower()
    if kind.property_type == "number":
        return _canonical_number(value)
    if kind.property_type == "bool" or kind.salesforce_type == "boolean":
        lowered = value.strip().lower()
        return {"1": "true", "yes": "true", "0": "false", "no": "false"}.get(lowered, lowered)
    if kind.property_type == "datetime":
        try:
            return format_timestamp(parse_datetime(value))
        except ValueError:
            return value
    if kind.property_type == "date":
        return value[:10]
    if kind.multi or kind.salesforce_type == "multipicklist":
        return ";".join(sorted({part.strip() for part in value.split(";") if part.strip()}))
    return value


def _canonical_number(value: str) -> str:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return value
    if not number.is_finite():
        return value
    if number == number.to_integral_value():
        return str(number.quantize(Decimal(1)))
    return format(number.normalize(), "f")


def from_salesforce(raw: Any, kind: ValueKind) -> str:
    """A Salesforce JSON value as Corral would store it ("" for null)."""
    if raw is None:
        return ""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (int, float)):
        if kind.property_type == "bool":
            return "true" if raw else "false"
        return _canonical_number(repr(raw) if isinstance(raw, float) else str(raw))
    if isinstance(raw, dict | list):
        # Compound fields (address, location) are read-only and never mapped.
        raise UnconvertibleValue(f"a {kind.salesforce_type} value cannot be stored in a Corral property")
    text = str(raw)
    if kind.property_type == "datetime":
        try:
            if len(text) == 10:
                return format_timestamp(datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC))
            return format_timestamp(parse_datetime(text))
        except ValueError:
            raise UnconvertibleValue(f"{text!r} is not a date or datetime") from None
    if kind.property_type == "date":
        try:
            return text[:10] if len(text) == 10 else parse_datetime(text).date().isoformat()
        except ValueError:
            raise UnconvertibleValue(f"{text!r} is not a date") from None
    if kind.property_type == "number":
        return _canonical_number(text)
    if kind.property_type == "bool":
        return canonical(text, kind)
    return text


def to_salesforce(value: str, kind: ValueKind) -> Any:
    """A Corral value as Salesforce's JSON wants it (None clears)."""
    if value == "":
        return None
    sf_type = kind.salesforce_type
    if sf_type == "boolean":
        return value.strip().lower() in ("true", "1", "yes")
    if sf_type in NUMBER_TYPES:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise UnconvertibleValue(f"{value!r} is not a number") from None
        if sf_type in INTEGER_TYPES or number == number.to_integral_value():
            if sf_type in INTEGER_TYPES and number != number.to_integral_value():
                raise UnconvertibleValue(f"{value} is not a whole number")
            return int(number)
        return float(number)
    if sf_type == "date":
        if kind.property_type == "datetime" or len(value) > 10:
            try:
                return parse_datetime(value).date().isoformat()
            except ValueError:
                raise UnconvertibleValue(f"{value!r} is not a datetime") from None
        return value
    if sf_type == "datetime":
        try:
            if len(value) == 10:
                moment = datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
            else:
                moment = parse_datetime(value)
        except ValueError:
            raise UnconvertibleValue(f"{value!r} is not a date or datetime") from None
        return format_timestamp(moment)
    if sf_type == "multipicklist":
        return ";".join(part.strip() for part in value.split(";") if part.strip())
    return value




def parse_datetime(text: str) -> datetime:
    """ISO-8601 with `Z`, `+00:00` or Salesforce's `+0000`; naive input is UTC. Raises ValueError."""
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    elif len(cleaned) > 5 and cleaned[-5] in "+-" and cleaned[-4:].isdigit() and "T" in cleaned:
        cleaned = cleaned[:-2] + ":" + cleaned[-2:]
    moment = datetime.fromisoformat(cleaned)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
