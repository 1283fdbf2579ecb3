"""HubSpot's standard object types and every name each one answers to: one table for every service.

The gateway decides scopes by it and records-svc resolves paths by it, so a name that reaches the
records of a type always needs that type's scope (`lineitems` once reached line items with the custom
objects' scope because only records-svc knew the spelling). Names are matched case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StandardObjectType:
    id: str
    name: str  # plural, as in /crm/v3/objects/contacts
    singular: str
    import_name: str  # HubSpot's upper-case name in imports and error objects (CONTACT, LINE_ITEM)
    # Further spellings HubSpot's SDKs and older APIs use.
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.id, self.name, self.singular, *self.aliases)


STANDARD_OBJECT_TYPES: tuple[StandardObjectType, ...] = (
    StandardObjectType("0-1", "contacts", "contact", "CONTACT"),
    StandardObjectType("0-2", "companies", "company", "COMPANY"),
    StandardObjectType("0-3", "deals", "deal", "DEAL"),
    StandardObjectType("0-5", "tickets", "ticket", "TICKET"),
    StandardObjectType("0-7", "products", "product", "PRODUCT"),
    StandardObjectType("0-8", "line_items", "line_item", "LINE_ITEM", aliases=("lineitems", "lineitem")),
    StandardObjectType("0-27", "tasks", "task", "TASK"),
    StandardObjectType("0-46", "notes", "note", "NOTE"),
    StandardObjectType("0-47", "meetings", "meeting", "MEETING"),
    StandardObjectType("0-48", "calls", "call", "CALL"),
    StandardObjectType("0-49", "emails", "email", "EMAIL"),
)

# The types code singles out by rule, named: `CONTACT` says what "0-1" does not.
CONTACT = "0-1"
COMPANY = "0-2"
DEAL = "0-3"
TICKET = "0-5"
PRODUCT = "0-7"
LINE_ITEM = "0-8"

STANDARD_BY_ID: dict[str, StandardObjectType] = {t.id: t for t in STANDARD_OBJECT_TYPES}
_BY_NAME: dict[str, StandardObjectType] = {name.lower(): t for t in STANDARD_OBJECT_TYPES for name in t.names}


def find_standard(key: str) -> StandardObjectType | None:
    """The standard type `key` names (type id, plural, singular or alias, any case), or None."""
    return _BY_NAME.get(key.lower())
