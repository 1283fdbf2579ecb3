"""Object types: HubSpot's standard ones, addressed by plural name, singular name or type id."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crm_common.object_types import STANDARD_BY_ID, find_standard


@dataclass(frozen=True)
class ObjectType:
    id: str
    name: str  # plural, as in /crm/v3/objects/contacts
    singular: str
    label_singular: str
    label_plural: str
    # Returned by GET when the caller names no properties.
    default_properties: tuple[str, ...]
    # Scanned by search `query`.
    searchable_properties: tuple[str, ...]
    required_properties: tuple[str, ...] = ()
    primary_display_property: str = "hs_object_id"
    last_modified_property: str = "hs_lastmodifieddate"
    # Unique identities stored in `unique_values`: property -> namespace. Email and additional
    # emails share one namespace so no address can belong to two contacts in any role.
    unique_namespaces: dict[str, str] = field(default_factory=dict)
    custom: bool = False


ACTIVITY_DEFAULTS = ("hs_timestamp", "hubspot_owner_id")


def _standard(type_id: str, **rules: Any) -> ObjectType:
    """A standard type: its id and names from crm_common's table (the one every service reads), its rules here."""
    names = STANDARD_BY_ID[type_id]
    return ObjectType(id=type_id, name=names.name, singular=names.singular, **rules)


STANDARD_OBJECT_TYPES: tuple[ObjectType, ...] = (
    _standard(
        "0-1", label_singular="Contact", label_plural="Contacts",
        default_properties=("firstname", "lastname", "email"),
        searchable_properties=("firstname", "lastname", "email", "phone", "hs_additional_emails", "company",
                               "mobilephone"),
        primary_display_property="email", last_modified_property="lastmodifieddate",
        unique_namespaces={"email": "email", "hs_additional_emails": "email"},
    ),
    _standard(
        "0-2", label_singular="Company", label_plural="Companies",
        default_properties=("name", "domain"),
        searchable_properties=("name", "domain", "hs_additional_domains", "website", "phone"),
        primary_display_property="name",
    ),
    _standard(
        "0-3", label_singular="Deal", label_plural="Deals",
        default_properties=("dealname", "amount", "closedate", "pipeline", "dealstage"),
        searchable_properties=("dealname",),
        required_properties=("dealname", "pipeline", "dealstage"),
        primary_display_property="dealname",
    ),
    _standard(
        "0-5", label_singular="Ticket", label_plural="Tickets",
        default_properties=("subject", "content", "hs_pipeline", "hs_pipeline_stage", "hs_ticket_priority"),
        searchable_properties=("subject", "content"),
        required_properties=("subject", "hs_pipeline", "hs_pipeline_stage"),
        primary_display_property="subject",
    ),
    _standard(
        "0-7", label_singular="Product", label_plural="Products",
        default_properties=("name", "description", "price"),
        searchable_properties=("name", "description", "hs_sku"),
        primary_display_property="name",
    ),
    _standard(
        "0-8", label_singular="Line item", label_plural="Line items",
        default_properties=("name", "quantity", "price", "amount"),
        searchable_properties=("name",),
        primary_display_property="name",
    ),
    _standard(
        "0-48", label_singular="Call", label_plural="Calls",
        default_properties=ACTIVITY_DEFAULTS + ("hs_call_title", "hs_call_body"),
        searchable_properties=("hs_call_title", "hs_call_body"), required_properties=("hs_timestamp",),
        primary_display_property="hs_call_title",
    ),
    _standard(
        "0-49", label_singular="Email", label_plural="Emails",
        default_properties=ACTIVITY_DEFAULTS + ("hs_email_subject", "hs_email_text"),
        searchable_properties=("hs_email_subject", "hs_email_text"), required_properties=("hs_timestamp",),
        primary_display_property="hs_email_subject",
    ),
    _standard(
        "0-47", label_singular="Meeting", label_plural="Meetings",
        default_properties=ACTIVITY_DEFAULTS + ("hs_meeting_title", "hs_meeting_body"),
        searchable_properties=("hs_meeting_title", "hs_meeting_body"), required_properties=("hs_timestamp",),
        primary_display_property="hs_meeting_title",
    ),
    _standard(
        "0-46", label_singular="Note", label_plural="Notes",
        default_properties=ACTIVITY_DEFAULTS + ("hs_note_body",),
        searchable_properties=("hs_note_body",), required_properties=("hs_timestamp",),
        primary_display_property="hs_note_body",
    ),
    _standard(
        "0-27", label_singular="Task", label_plural="Tasks",
        default_properties=ACTIVITY_DEFAULTS + ("hs_task_subject", "hs_task_status"),
        searchable_properties=("hs_task_subject", "hs_task_body"), required_properties=("hs_timestamp",),
        primary_display_property="hs_task_subject",
    ),
)

_BY_ID: dict[str, ObjectType] = {t.id: t for t in STANDARD_OBJECT_TYPES}


def find_standard_object_type(key: str) -> ObjectType | None:
    """By any name of crm_common's table (the one the gateway decides scopes by), in any case."""
    standard = find_standard(key)
    return None if standard is None else _BY_ID[standard.id]


ACTIVITY_TYPE_IDS = frozenset({"0-48", "0-49", "0-47", "0-46", "0-27"})
