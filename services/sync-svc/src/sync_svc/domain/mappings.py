"""Field mappings checked against both sides' definitions (pure).

A Corral property arrives as records-svc's property JSON (`name, label, type, fieldType, options,
calculated, modificationMetadata`), a Salesforce field as its describe entry (`name, label, type, length,
createable, updateable, nillable, defaultedOnCreate, calculated, picklistValues, restrictedPicklist`).
`check_mapping` refuses what cannot work with a message naming both sides; `mapping_warnings` and
`object_warnings` tell what will fail later, record by record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sync_svc.domain.rules import SyncRule
from sync_svc.domain.values import ValueKind

MAX_MAPPINGS_PER_OBJECT = 500

# HubSpot's table (knowledge.hubspot.com, "Map HubSpot properties to Salesforce fields"), by Corral field
# type. Single-line text also takes Salesforce's text-like types (email, phone, url), number takes currency
# and percent: they travel as text and numbers.
_SINGLE_LINE = frozenset({"string", "textarea", "email", "phone", "url", "encryptedstring", "combobox"})
COMPATIBLE_TYPES: dict[str, frozenset[str]] = {
    "select": frozenset({"picklist", "reference"}),
    "radio": frozenset({"picklist", "reference"}),
    "checkbox": frozenset({"multipicklist"}),
    "booleancheckbox": frozenset({"boolean"}),
    "number": frozenset({"double", "int", "long", "currency", "percent"}),
    "text": _SINGLE_LINE,
    "phonenumber": _SINGLE_LINE,
    "textarea": frozenset({"textarea"}),
    "html": frozenset({"textarea"}),
    "date": frozenset({"date", "datetime"}),
}
FIELD_TYPE_NAMES = {
    "select": "dropdown select", "radio": "radio select", "checkbox": "multiple checkboxes",
    "booleancheckbox": "single checkbox", "number": "number", "text": "single-line text",
    "phonenumber": "phone number (single-line text)", "textarea": "multi-line text", "html": "rich text",
    "date": "date picker", "calculation_equation": "calculated", "file": "file",
}
# Properties holding Corral users (HubSpot's "user" field type): never mappable.
USER_PROPERTIES = frozenset({"hubspot_owner_id", "hs_created_by_user_id", "hs_updated_by_user_id",
                             "hs_all_owner_ids", "hubspot_team_id"})
# Salesforce's text fields shorter than this get a length warning (Corral allows 65,536 characters).
SHORT_TEXT = 255


class MappingRefused(Exception):
    """Why a mapping cannot be made; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str, *, code: str = "INVALID_MAPPING") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(frozen=True)
class ExistingMapping:
    id: int
    property: str
    salesforce_field: str
    rule: SyncRule


def field_type_name(field_type: str) -> str:
    return FIELD_TYPE_NAMES.get(field_type, field_type)


def is_user_property(prop: dict[str, Any]) -> bool:
    return (prop.get("name") in USER_PROPERTIES or prop.get("fieldType") == "user"
            or str(prop.get("referencedObjectType") or "").upper() == "OWNER")


def required_on_create(field: dict[str, Any]) -> bool:
    """Salesforce's rule: createable, not nillable and not defaulted on create."""
    return bool(field.get("createable")) and not field.get("nillable", True) and not field.get("defaultedOnCreate")


def writable_in_salesforce(field: dict[str, Any]) -> bool:
    return bool(field.get("createable") or field.get("updateable")) and not field.get("calculated")


def value_kind(prop: dict[str, Any], field: dict[str, Any]) -> ValueKind:
    return ValueKind(property_type=str(prop.get("type")), salesforce_type=str(field.get("type")),
                     multi=prop.get("type") == "enumeration" and prop.get("fieldType") == "checkbox",
                     email=prop.get("name") == "email" or field.get("type") == "email")


def check_mapping(*, object_label: str, salesforce_object: str, prop: dict[str, Any] | None, property_name: str,
                  field: dict[str, Any] | None, field_name: str, rule: SyncRule,
                  existing: Iterable[ExistingMapping], replacing: int | None = None) -> None:
    """Raise MappingRefused for a mapping that cannot work; `replacing` is the id of the mapping being edited."""
    others = [m for m in existing if m.id != replacing]
    if replacing is None and len(others) >= MAX_MAPPINGS_PER_OBJECT:
        raise MappingRefused(400, f"{object_label} already have {MAX_MAPPINGS_PER_OBJECT} field mappings, the most "
                                  "an object may have; delete or reuse one first", code="TOO_MANY_MAPPINGS")
    if prop is None:
        raise MappingRefused(400, f"There is no {object_label.removesuffix('s')} "
                                  f"property named {property_name!r}", code="PROPERTY_NOT_FOUND")
    if field is None:
        raise MappingRefused(400, f"Salesforce's {salesforce_object} has no field named {field_name!r}",
                             code="FIELD_NOT_FOUND")
    for mapping in others:
        if mapping.property == prop["name"]:
            raise MappingRefused(409, f"The property {prop['name']} is already mapped to {salesforce_object}."
                                      f"{mapping.salesforce_field} (mapping {mapping.id}); a property syncs with "
                                      "one field", code="PROPERTY_ALREADY_MAPPED")
        if mapping.salesforce_field.lower() == str(field["name"]).lower():
            raise MappingRefused(409, f"Salesforce's {salesforce_object}.{field['name']} is already mapped to the "
                                      f"property {mapping.property} (mapping {mapping.id}); a field syncs with one "
                                      "property", code="FIELD_ALREADY_MAPPED")
    if is_user_property(prop):
        raise MappingRefused(400, f"{prop['name']} is a user property (it holds Corral users); user properties "
                                  "cannot be mapped to Salesforce fields", code="USER_PROPERTY")
    field_type = str(prop.get("fieldType"))
    sf_type = str(field.get("type"))
    allowed = COMPATIBLE_TYPES.get(field_type, frozenset())
    if prop.get("type") == "bool":
        allowed = COMPATIBLE_TYPES["booleancheckbox"]
    if sf_type not in allowed:
        accepted = ", ".join(sorted(allowed)) or "no Salesforce type"
        raise MappingRefused(400, f"Type mismatch: the property {prop['name']} is {field_type_name(field_type)} "
                                  f"and Salesforce's {salesforce_object}.{field['name']} is {sf_type}; "
                                  f"{field_type_name(field_type)} maps to {accepted}", code="TYPE_MISMATCH")
    if rule is SyncRule.DONT_SYNC:
        return
    read_only_property = bool(prop.get("calculated") or (prop.get("modificationMetadata") or {}).get("readOnlyValue"))
    if read_only_property:
        raise MappingRefused(400, f"The property {prop['name']} is read-only in Corral, so no value from Salesforce "
                                  "can be written into it; map it with DONT_SYNC or choose another property",
                             code="READ_ONLY_PROPERTY")
    if rule.writes_salesforce and not writable_in_salesforce(field):
        raise MappingRefused(400, f"Salesforce's {salesforce_object}.{field['name']} is read-only (a formula or "
                                  f"system field), so {rule.value} cannot write it; use ALWAYS_SALESFORCE",
                             code="READ_ONLY_FIELD")


def mapping_warnings(*, salesforce_object: str, prop: dict[str, Any] | None, field: dict[str, Any] | None,
                     rule: SyncRule) -> list[str]:
    """What will fail later for some records with this mapping."""
    if prop is None or field is None:
        return ["The property or the Salesforce field of this mapping no longer exists; it syncs nothing"]
    warnings: list[str] = []
    name = f"{salesforce_object}.{field['name']}"
    if required_on_create(field) and rule in (SyncRule.DONT_SYNC, SyncRule.ALWAYS_SALESFORCE):
        warnings.append(f"{name} is required to create a {salesforce_object} but this mapping never writes it: "
                        f"records created from Corral will fail with REQUIRED_FIELD_MISSING")
    if not rule.writes_salesforce:
        return warnings
    if field.get("type") in ("picklist", "multipicklist") and field.get("restrictedPicklist"):
        allowed = {str(v.get("value", "")).lower() for v in field.get("picklistValues") or [] if v.get("active", True)}
        missing = [str(o.get("value")) for o in prop.get("options") or [] if str(o.get("value", "")).lower() not in allowed]
        if missing:
            shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            warnings.append(f"{name} is a restricted picklist without the options {shown}: records holding them "
                            "will be refused (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST)")
    length = field.get("length") or 0
    if field.get("type") in _SINGLE_LINE and 0 < length < SHORT_TEXT:
        warnings.append(f"{name} holds at most {length} characters: longer values of {prop['name']} will be "
                        "refused (STRING_TOO_LONG)")
    return warnings


def object_warnings(*, salesforce_object: str, fields: Iterable[dict[str, Any]],
                    mapped: dict[str, SyncRule]) -> list[str]:
    """Required Salesforce fields that no mapping writes (`mapped`: field name -> rule)."""
    by_lower = {k.lower(): v for k, v in mapped.items()}
    out = []
    for field in fields:
        if not required_on_create(field) or field.get("type") in ("reference", "id"):
            continue
        rule = by_lower.get(str(field["name"]).lower())
        if rule is None:
            out.append(f"{salesforce_object}.{field['name']} is required to create a {salesforce_object} and no "
                       "property is mapped to it: records created from Corral will fail with REQUIRED_FIELD_MISSING")
    return out
