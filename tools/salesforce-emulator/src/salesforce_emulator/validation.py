"""Checks one write against the describe documents, field by field, in the order Salesforce reports errors."""

from __future__ import annotations

import math
import re
from typing import Any

from salesforce_emulator import ids
from salesforce_emulator.clock import format_datetime, parse_datetime
from salesforce_emulator.errors import SalesforceError
from salesforce_emulator.schema import STRING_TYPES, FieldDef, SObjectDef

# Salesforce's own check is looser than RFC 5322 but rejects the usual mistakes (no @, spaces, no domain dot).
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?Z?$")
_IGNORED_KEYS = {"attributes"}


def _deserialize_error(kind: str, value: Any) -> SalesforceError:
    token = "VALUE_STRING" if isinstance(value, str) else "VALUE_NUMBER_INT" if isinstance(value, int) else \
        "VALUE_TRUE" if value is True else "VALUE_FALSE" if value is False else "START_OBJECT"
    return SalesforceError(400, "JSON_PARSER_ERROR",
                           f"Cannot deserialize instance of {kind} from {token} value {value} or request may be "
                           "missing a required field")


def coerce_value(field: FieldDef, value: Any) -> Any:
    """Convert one JSON value to its stored wire form, raising the error Salesforce gives for it."""
    if value is None:
        return None
    kind = field.type
    if kind in STRING_TYPES:
        if isinstance(value, (bool, dict, list)):
            raise _deserialize_error("string", value)
        text = value if isinstance(value, str) else str(value)
        if field.length and len(text) > field.length:
            raise SalesforceError(400, "STRING_TOO_LONG",
                                  f"{field.display_label}: data value too large: {text} (max length={field.length})",
                                  [field.name])
        if kind == "email" and text and not _EMAIL.match(text):
            raise SalesforceError(400, "INVALID_EMAIL_ADDRESS", f"{field.display_label}: invalid email address: "
                                                                f"{text}", [field.name])
        if field.restricted_picklist and text:
            chosen = text.split(";") if kind == "multipicklist" else [text]
            for choice in chosen:
                if choice not in field.picklist_values:
                    raise SalesforceError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                          f"{field.display_label}: bad value for restricted picklist field: {choice}",
                                          [field.name])
        return text if text != "" else None
    if kind in ("id", "reference"):
        if not isinstance(value, str):
            raise _deserialize_error("id", value)
        if value == "":
            return None
        try:
            return ids.to_18(value)
        except ValueError:
            raise SalesforceError(400, "MALFORMED_ID",
                                  f"{field.display_label}: id value of incorrect type: {value}", [field.name]) from None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _deserialize_error("boolean", value)
    if kind in ("int", "long"):
        if isinstance(value, bool):
            raise _deserialize_error(kind, value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise _deserialize_error(kind, value)
    if kind in ("double", "currency", "percent"):
        if isinstance(value, bool):
            raise _deserialize_error("double", value)
        if isinstance(value, (int, float)):
            number = float(value)
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise _deserialize_error("double", value) from None
        if not math.isfinite(number):
            raise _deserialize_error("double", value)
        integer_digits = field.precision - field.scale if field.precision else 0
        if integer_digits and abs(number) >= 10 ** integer_digits:
            raise SalesforceError(400, "NUMBER_OUTSIDE_VALID_RANGE",
                                  f"{field.display_label}: value outside of valid range on numeric field: {value}",
                                  [field.name])
        return round(number, field.scale) if field.scale else (int(number) if number.is_integer() else number)
    if kind == "date":
        if isinstance(value, str):
            candidate = value[:10]
            if _DATE.match(candidate):
                try:
                    parse_datetime(candidate + "T00:00:00Z")
                    return candidate
                except ValueError:
                    pass
        raise _deserialize_error("date", value)
    if kind == "datetime":
        if isinstance(value, str):
            try:
                return format_datetime(parse_datetime(value))
            except ValueError:
                pass
        raise _deserialize_error("datetime", value)
    if kind == "time":
        if isinstance(value, str) and (match := _TIME.match(value)):
            hours, minutes, seconds, millis = match.groups()
            return f"{hours}:{minutes}:{seconds or '00'}.{(millis or '0').ljust(3, '0')}Z"
        raise _deserialize_error("time", value)
    return value


def normalise_write(sobject: SObjectDef, payload: dict[str, Any], *, creating: bool,
                    allow_system_fields: bool = False) -> dict[str, Any]:
    """Map the payload's field names to describe names and coerce values; reject unknown/read-only fields."""
    if not isinstance(payload, dict):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of SObject from START_ARRAY")
    resolved: list[tuple[FieldDef, Any]] = []
    for key, value in payload.items():
        if key in _IGNORED_KEYS:
            continue
        field = sobject.field(key)
        if field is None:
            raise SalesforceError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {sobject.name}")
        resolved.append((field, value))
    if not allow_system_fields:
        # The whole write is refused when any field is read-only, naming every such field at once.
        read_only = [field.name for field, _ in resolved
                     if not (field.createable if creating else field.updateable)]
        if read_only:
            verb = "create" if creating else "update"
            raise SalesforceError(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                                  f"Unable to {verb} fields: {', '.join(read_only)}. Please check the security "
                                  "settings of this field and verify that it is read/write for your profile or "
                                  "permission set.", read_only)
    return {field.name: coerce_value(field, value) for field, value in resolved}


def missing_required(sobject: SObjectDef, record: dict[str, Any], touched: set[str] | None = None) -> SalesforceError | None:
    """Required = createable, not nillable, not defaulted on create; on update only touched fields count."""
    missing = [
        field.name for field in sobject.required_fields
        if record.get(field.name) is None
        and (touched is None or field.name in touched)
    ]
    if missing:
        return SalesforceError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                               missing)
    return None
