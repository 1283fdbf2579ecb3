"""The Corral objects that sync with Salesforce, and what each needs: its Salesforce objects, the read-only
properties that carry the link (HubSpot's names), how records are matched, and the standard mappings.

Custom objects (the next step) add entries built from their schema rather than this table; everything
downstream reads a `SyncObjectType`, never a literal.
"""

from __future__ import annotations

from dataclasses import dataclass

from sync_svc.domain.rules import SyncRule

LAST_SYNC_PROPERTY = "salesforcelastsynctime"
P = SyncRule.PREFER_SALESFORCE_UNLESS_BLANK
T = SyncRule.TWO_WAY


@dataclass(frozen=True)
class StandardMapping:
    property: str
    salesforce_field: str
    rule: SyncRule = P


@dataclass(frozen=True)
class SyncObjectType:
    name: str  # Corral's plural name, as in the API paths
    object_type_id: str
    salesforce_objects: tuple[str, ...]
    # Salesforce object -> the Corral property holding its record id (read-only, written by sync-svc only).
    link_properties: dict[str, str]
    # Salesforce object -> (property, field) that finds an existing record on the other side before a create
    # (email for people; none for accounts and opportunities, which may share names).
    match_keys: dict[str, tuple[str, str]]
    standard: dict[str, tuple[StandardMapping, ...]]
    # The Salesforce field whose value names a record in messages and settles a lost create.
    name_fields: dict[str, str]

    def link_property(self, salesforce_object: str) -> str:
        return self.link_properties[salesforce_object]

    def match_key(self, salesforce_object: str) -> tuple[str, str] | None:
        return self.match_keys.get(salesforce_object)


_PERSON = (
    StandardMapping("email", "Email", T),
    StandardMapping("firstname", "FirstName"),
    StandardMapping("lastname", "LastName"),
    StandardMapping("phone", "Phone"),
    StandardMapping("mobilephone", "MobilePhone"),
    StandardMapping("jobtitle", "Title"),
    StandardMapping("salutation", "Salutation"),
)

CONTACTS = SyncObjectType(
    name="contacts", object_type_id="0-1", salesforce_objects=("Contact", "Lead"),
    link_properties={"Contact": "salesforcecontactid", "Lead": "salesforceleadid"},
    match_keys={"Contact": ("email", "Email"), "Lead": ("email", "Email")},
    standard={
        "Contact": (*_PERSON,
                    StandardMapping("address", "MailingStreet"), StandardMapping("city", "MailingCity"),
                    StandardMapping("state", "MailingState"), StandardMapping("zip", "MailingPostalCode"),
                    StandardMapping("country", "MailingCountry"), StandardMapping("date_of_birth", "Birthdate")),
        "Lead": (*_PERSON,
                 StandardMapping("company", "Company"), StandardMapping("website", "Website"),
                 StandardMapping("address", "Street"), StandardMapping("city", "City"),
                 StandardMapping("state", "State"), StandardMapping("zip", "PostalCode"),
                 StandardMapping("country", "Country")),
    },
    name_fields={"Contact": "Email", "Lead": "Email"},
)

COMPANIES = SyncObjectType(
    name="companies", object_type_id="0-2", salesforce_objects=("Account",),
    link_properties={"Account": "salesforceaccountid"},
    match_keys={},
    standard={"Account": (
        StandardMapping("name", "Name"), StandardMapping("phone", "Phone"), StandardMapping("website", "Website"),
        StandardMapping("address", "BillingStreet"), StandardMapping("city", "BillingCity"),
        StandardMapping("state", "BillingState"), StandardMapping("zip", "BillingPostalCode"),
        StandardMapping("country", "BillingCountry"), StandardMapping("description", "Description"),
        StandardMapping("numberofemployees", "NumberOfEmployees"),
        StandardMapping("annualrevenue", "AnnualRevenue"),
    )},
    name_fields={"Account": "Name"},
)

DEALS = SyncObjectType(
    name="deals", object_type_id="0-3", salesforce_objects=("Opportunity",),
    link_properties={"Opportunity": "salesforceopportunityid"},
    match_keys={},
    standard={"Opportunity": (
        StandardMapping("dealname", "Name"), StandardMapping("amount", "Amount"),
        StandardMapping("closedate", "CloseDate"), StandardMapping("dealstage", "StageName"),
        StandardMapping("description", "Description"),
    )},
    name_fields={"Opportunity": "Name"},
)

SYNC_OBJECT_TYPES: dict[str, SyncObjectType] = {t.name: t for t in (CONTACTS, COMPANIES, DEALS)}
_ALIASES = {alias: t for t in SYNC_OBJECT_TYPES.values()
            for alias in (t.name, t.name[:-1] if t.name != "companies" else "company", t.object_type_id)}
# Every property only the sync service writes (records-svc refuses them from anyone else).
LINK_PROPERTIES = frozenset({*(p for t in SYNC_OBJECT_TYPES.values() for p in t.link_properties.values()),
                             LAST_SYNC_PROPERTY})


def sync_object_type(name: str) -> SyncObjectType | None:
    """`contacts`, `contact` or `0-1` (as records-svc accepts them)."""
    return _ALIASES.get(name.lower())
