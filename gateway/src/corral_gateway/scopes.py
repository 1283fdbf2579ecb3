"""Scopes, HubSpot private-app style, and which scope an object type needs.

HubSpot gives activities (calls, emails, meetings, notes, tasks) no scopes of their own: they sit
under the contacts scopes, and tickets / commerce objects use one scope for read and write.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm_common.object_types import find_standard

ALL_SCOPES: tuple[str, ...] = (
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "tickets",
    "e-commerce",
    "crm.objects.custom.read",
    "crm.objects.custom.write",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "crm.schemas.companies.read",
    "crm.schemas.companies.write",
    "crm.schemas.deals.read",
    "crm.schemas.deals.write",
    "crm.schemas.custom.read",
    "crm.schemas.custom.write",
    "crm.import",
    "crm.objects.owners.read",
    "corral.merges",
    "corral.sync",
    "corral.sync.read",
    "corral.sync.write",
)

# A scope that grants others: tokens made before Salesforce sync had read and write scopes hold
# `corral.sync`, which keeps granting both.
IMPLIED_SCOPES: dict[str, tuple[str, ...]] = {"corral.sync": ("corral.sync.read", "corral.sync.write")}


def granted(scopes: tuple[str, ...] | list[str]) -> frozenset[str]:
    """A token's scopes with the ones they imply."""
    out = set(scopes)
    for scope in scopes:
        out.update(IMPLIED_SCOPES.get(scope, ()))
    return frozenset(out)


@dataclass(frozen=True)
class ScopePair:
    read: str
    write: str

    def for_access(self, write: bool) -> str:
        return self.write if write else self.read


@dataclass(frozen=True)
class ObjectFamily:
    """What a group of object types needs: scopes for its records and for its properties/schema."""

    objects: ScopePair
    schemas: ScopePair


def _pair(prefix: str) -> ScopePair:
    return ScopePair(f"{prefix}.read", f"{prefix}.write")


CONTACTS = ObjectFamily(_pair("crm.objects.contacts"), _pair("crm.schemas.contacts"))
COMPANIES = ObjectFamily(_pair("crm.objects.companies"), _pair("crm.schemas.companies"))
DEALS = ObjectFamily(_pair("crm.objects.deals"), _pair("crm.schemas.deals"))
TICKETS = ObjectFamily(ScopePair("tickets", "tickets"), ScopePair("tickets", "tickets"))
COMMERCE = ObjectFamily(ScopePair("e-commerce", "e-commerce"), ScopePair("e-commerce", "e-commerce"))
CUSTOM = ObjectFamily(_pair("crm.objects.custom"), _pair("crm.schemas.custom"))

# By type id; every name of a standard type comes from crm_common's one table (records-svc resolves paths
# with the same table, so no spelling reaches a type's records without the type's scope).
FAMILY_BY_TYPE_ID: dict[str, ObjectFamily] = {
    "0-1": CONTACTS, "0-2": COMPANIES, "0-3": DEALS, "0-5": TICKETS, "0-7": COMMERCE, "0-8": COMMERCE,
    # Activities
    "0-27": CONTACTS, "0-46": CONTACTS, "0-47": CONTACTS, "0-48": CONTACTS, "0-49": CONTACTS,
}


def family_of(object_type: str) -> ObjectFamily:
    """Custom objects are `2-<n>` or their own name: anything that names no standard type is custom."""
    standard = find_standard(object_type)
    return CUSTOM if standard is None else FAMILY_BY_TYPE_ID[standard.id]


def parse_scopes(raw: str | None) -> list[str]:
    """`a,b,c` → validated list; None or empty → every scope."""
    if raw is None or not raw.strip():
        return list(ALL_SCOPES)
    scopes = [s.strip() for s in raw.split(",") if s.strip()]
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(unknown)} (known: {', '.join(ALL_SCOPES)})")
    return list(dict.fromkeys(scopes))
