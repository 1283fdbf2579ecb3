"""Property definitions and value validation (pure: no I/O).

Values are stored as HubSpot returns them: strings. Validation also normalises them, so stored
values compare and sort correctly: dates as YYYY-MM-DD, datetimes as ISO-8601 UTC with
milliseconds, booleans as true/false, emails and domains lowercased.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from crm_common.timestamps import format_timestamp
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

MAX_STRING_LENGTH = 65_536
MAX_UNIQUE_PROPERTIES = 10

FIELD_TYPES_BY_TYPE: dict[str, frozenset[str]] = {
    "string": frozenset({"text", "textarea", "file", "html", "phonenumber", "calculation_equation"}),
    "number": frozenset({"number", "calculation_equation"}),
    "bool": frozenset({"booleancheckbox", "calculation_equation"}),
    "enumeration": frozenset({"select", "radio", "checkbox", "booleancheckbox", "calculation_equation"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date"}),
}


@dataclass(frozen=True)
class PropertyOption:
    label: str
    value: str
    display_order: int = -1
    hidden: bool = False
    description: str = ""


@dataclass(frozen=True)
class PropertyDefinition:
    name: str
    label: str
    type: str
    field_type: str
    group_name: str
    description: str = ""
    options: tuple[PropertyOption, ...] = ()
    display_order: int = -1
    has_unique_value: bool = False
    hidden: bool = False
    form_field: bool = True
    read_only_value: bool = False
    hubspot_defined: bool = True
    calculated: bool = False
    archived: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Values with special normalisation beyond their type.
    value_kind: str = field(default="")  # "email", "emails", "domain", "domains"
    # The one service that may write the value (its name in the signed auth context), e.g. the Salesforce
    # ids only sync-svc sets; empty: any trusted writer.
    written_by: str = ""

    @property
    def multi_valued(self) -> bool:
        return self.field_type == "checkbox" and self.type == "enumeration"


class InvalidValue(Exception):
    """A value a property cannot hold; `code` is HubSpot's error name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_EPOCH_MS = re.compile(r"^-?\d{9,14}$")


def value_to_text(raw: Any) -> str:
    """JSON values as HubSpot accepts them: strings, numbers and booleans all become strings."""
    if raw is None:
        return ""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, (int, float, Decimal)):
        return str(raw)
    if isinstance(raw, str):
        return raw
    raise InvalidValue("INVALID_VALUE", f"{raw!r} is not a string, number or boolean")


def normalize_value(prop: PropertyDefinition, raw: Any) -> str:
    """Check and normalise one value; '' means "clear"."""
    text = value_to_text(raw)
    if text == "":
        return ""
    if len(text) > MAX_STRING_LENGTH:
        raise InvalidValue("INVALID_STRING_LENGTH",
                           f"{prop.name} is {len(text)} characters long; the limit is {MAX_STRING_LENGTH}")
    kind = prop.value_kind
    if kind == "email":
        return normalize_email(text)
    if kind == "emails":
        return ";".join(normalize_email(part) for part in _split_multi(text))
    if kind == "domain":
        return normalize_domain(text)
    if kind == "domains":
        return ";".join(normalize_domain(part) for part in _split_multi(text))
    if prop.type == "string":
        return text
    if prop.type == "number":
        return normalize_number(text)
    if prop.type == "bool":
        return normalize_bool(text)
    if prop.type == "enumeration":
        return normalize_enumeration(prop, text)
    if prop.type == "date":
        return normalize_date(text)
    if prop.type == "datetime":
        return normalize_datetime(text)
    return text


def _split_multi(text: str) -> list[str]:
    return [part.strip() for part in text.split(";") if part.strip()]


# Plain ASCII addresses (nearly all of them) are checked by one regex with email-validator's rules; the
# library, ~50x slower per address, handles the rest (quoted parts, internationalised domains, errors).
_SIMPLE_EMAIL = re.compile(
    r"^(?=.{1,254}$)(?=[^@]{1,64}@)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_SPECIAL_USE_SUFFIXES = tuple("." + name for name in SPECIAL_USE_DOMAIN_NAMES)


def normalize_email(text: str) -> str:
    candidate = text.strip()
    if _SIMPLE_EMAIL.match(candidate):
        domain = candidate.rsplit("@", 1)[1].lower()
        if "--" not in domain and not ("." + domain).endswith(_SPECIAL_USE_SUFFIXES):
            return candidate.lower()
    try:
        result = validate_email(candidate, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidValue("INVALID_EMAIL", f"Email address {candidate} is invalid: {exc}") from None
    return result.normalized.lower()


_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")


def normalize_domain(text: str) -> str:
    domain = text.strip().lower()
    domain = re.sub(r"^[a-z][a-z0-9+.-]*://", "", domain)
    domain = domain.split("/", 1)[0].split("?", 1)[0].split(":", 1)[0]
    if domain.startswith("www."):
        domain = domain[4:]
    if not _DOMAIN.match(domain):
        raise InvalidValue("INVALID_DOMAIN", f"{text} is not a valid domain")
    return domain


def normalize_number(text: str) -> str:
    candidate = text.strip()
    if not _NUMBER.match(candidate):
        raise InvalidValue("INVALID_DECIMAL", f"{text} was not a valid number.")
    try:
        number = Decimal(candidate)
    except InvalidOperation:
        raise InvalidValue("INVALID_DECIMAL", f"{text} was not a valid number.") from None
    if not number.is_finite():
        raise InvalidValue("INVALID_DECIMAL", f"{text} was not a valid number.")
    if "e" in candidate.lower():
        candidate = format(number, "f")
    return candidate.lstrip("+")


def normalize_bool(text: str) -> str:
    lowered = text.strip().lower()
    if lowered in {"true", "yes", "1"}:
        return "true"
    if lowered in {"false", "no", "0"}:
        return "false"
    raise InvalidValue("INVALID_BOOLEAN", f"{text} is not a valid boolean: use true or false")


def normalize_enumeration(prop: PropertyDefinition, text: str) -> str:
    if prop.field_type == "booleancheckbox":
        return normalize_bool(text)
    allowed = {o.value for o in prop.options}
    by_lower = {o.value.lower(): o.value for o in prop.options}
    by_label = {o.label.lower(): o.value for o in prop.options}
    # A leading ';' appends to the stored values (HubSpot's multi-checkbox rule); keep it.
    append = prop.multi_valued and text.startswith(";")
    parts = _split_multi(text) if prop.multi_valued else [text.strip()]
    out = []
    for part in parts:
        value = part if part in allowed else by_lower.get(part.lower()) or by_label.get(part.lower())
        if value is None:
            listing = ", ".join(o.value for o in prop.options)
            raise InvalidValue("INVALID_OPTION",
                               f"{part} was not one of the allowed options: [{listing}]")
        out.append(value)
    joined = ";".join(out)
    return ";" + joined if append else joined


def normalize_date(text: str) -> str:
    candidate = text.strip()
    if _EPOCH_MS.match(candidate):
        moment = datetime.fromtimestamp(int(candidate) / 1000, tz=UTC)
        if moment.time() != datetime.min.time():
            raise InvalidValue("INVALID_DATE", f"{text} is not midnight UTC; a date property takes a day")
        return moment.date().isoformat()
    try:
        if len(candidate) == 10:
            return date.fromisoformat(candidate).isoformat()
        moment = _parse_iso_datetime(candidate)
    except ValueError:
        raise InvalidValue("INVALID_DATE", f"{text} is not a valid date (use YYYY-MM-DD)") from None
    return moment.date().isoformat()


def normalize_datetime(text: str) -> str:
    candidate = text.strip()
    try:
        if _EPOCH_MS.match(candidate):
            moment = datetime.fromtimestamp(int(candidate) / 1000, tz=UTC)
        elif len(candidate) == 10:
            moment = datetime.combine(date.fromisoformat(candidate), datetime.min.time(), tzinfo=UTC)
        else:
            moment = _parse_iso_datetime(candidate)
    except (ValueError, OverflowError, OSError):
        raise InvalidValue("INVALID_DATETIME",
                           f"{text} is not a valid datetime (use ISO-8601 or epoch milliseconds)") from None
    return format_timestamp(moment)


def _parse_iso_datetime(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def unique_values_of(prop: PropertyDefinition, value: str) -> list[str]:
    """The values a unique property claims: additional emails claim each address."""
    if value == "":
        return []
    if prop.value_kind == "emails":
        return [v for v in value.lstrip(";").split(";") if v]
    return [value]


def with_options(prop: PropertyDefinition, options: list[dict[str, Any]]) -> PropertyDefinition:
    return replace(prop, options=tuple(
        PropertyOption(label=o["label"], value=o["value"], display_order=o.get("displayOrder", -1),
                       hidden=o.get("hidden", False), description=o.get("description", ""))
        for o in options))
