"""Describe documents: the single source of truth for metadata responses and for validating writes.

Each object is described once, in the vocabulary of Salesforce's describe call; the describe endpoints
serialise these definitions and the record store validates every write against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

STRING_TYPES = {"string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "combobox",
                "encryptedstring"}
SOAP_TYPES = {
    "id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int", "long": "xsd:long",
    "double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double", "date": "xsd:date",
    "datetime": "xsd:dateTime", "time": "xsd:time", "base64": "xsd:base64Binary", "anyType": "xsd:anyType",
}
SYSTEM_FIELD_NAMES = ("Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
                      "SystemModstamp")


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str
    label: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    defaulted_on_create: bool = False
    custom: bool = False
    external_id: bool = False
    unique: bool = False
    calculated: bool = False
    auto_number: bool = False
    name_field: bool = False
    picklist_values: tuple[str, ...] = ()
    restricted_picklist: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    cascade_delete: bool = False
    default_value: Any = None
    child_relationship_name: str | None = None  # the parent's name for its children, when not the plural

    @property
    def required_on_create(self) -> bool:
        return self.createable and not self.nillable and not self.defaulted_on_create

    @property
    def display_label(self) -> str:
        return self.label or self.name

    def describe(self) -> dict[str, Any]:
        is_text = self.type in STRING_TYPES
        return {
            "aggregatable": self.type not in ("textarea", "multipicklist"),
            "autoNumber": self.auto_number,
            "byteLength": self.length * 3 if is_text else (18 if self.type in ("id", "reference") else 0),
            "calculated": self.calculated,
            "cascadeDelete": self.cascade_delete,
            "caseSensitive": False,
            "controllerName": None,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.default_value,
            "defaultedOnCreate": self.defaulted_on_create,
            "dependentPicklist": False,
            "deprecatedAndHidden": False,
            "digits": self.precision if self.type in ("int", "long") else 0,
            "externalId": self.external_id,
            "filterable": self.type != "textarea",
            "groupable": self.type not in ("textarea", "double", "currency", "percent", "datetime"),
            "idLookup": self.name == "Id" or self.external_id or self.unique,
            "label": self.display_label,
            "length": self.length if is_text else (18 if self.type in ("id", "reference") else 0),
            "name": self.name,
            "nameField": self.name_field,
            "nillable": self.nillable,
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": value, "validFor": None, "value": value}
                for value in self.picklist_values
            ],
            "polymorphicForeignKey": len(self.reference_to) > 1,
            "precision": self.precision if self.type in ("double", "currency", "percent") else 0,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "restrictedPicklist": self.restricted_picklist,
            "scale": self.scale,
            "soapType": SOAP_TYPES.get(self.type, "xsd:string"),
            "sortable": self.type not in ("textarea", "multipicklist"),
            "type": self.type,
            "unique": self.unique,
            "updateable": self.updateable,
        }


@dataclass
class SObjectDef:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: dict[str, FieldDef]
    custom: bool = False
    has_owner: bool = True
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    replicateable: bool = True
    _by_lower: dict[str, FieldDef] = field(default_factory=dict, repr=False)
    _relationships: dict[str, FieldDef] = field(default_factory=dict, repr=False)
    record_template: dict[str, Any] = field(default_factory=dict, repr=False)
    _lookup_fields: list[FieldDef] = field(default_factory=list, repr=False)
    required_fields: list[FieldDef] = field(default_factory=list, repr=False)
    cascade_fields: list[FieldDef] = field(default_factory=list, repr=False)
    integrity_fields: list[FieldDef] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        # A new row starts as a copy of this: every field present (null unless it has a default).
        self.record_template = {name: definition.default_value for name, definition in self.fields.items()}
        self._by_lower = {name.lower(): definition for name, definition in self.fields.items()}
        self._lookup_fields = [f for f in self.fields.values() if f.external_id or f.unique]
        # Precomputed so that a write only visits the fields that can fail these checks.
        self.required_fields = [f for f in self.fields.values() if f.required_on_create]
        self.cascade_fields = [f for f in self.fields.values() if f.cascade_delete and f.type == "reference"]
        self.integrity_fields = [f for f in self.fields.values()
                                 if (f.type == "reference" and f.createable) or f.unique]
        self._relationships = {
            definition.relationship_name.lower(): definition
            for definition in self.fields.values() if definition.relationship_name
        }

    def field(self, name: str) -> FieldDef | None:
        return self._by_lower.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        return self._relationships.get(name.lower())

    def add_field(self, definition: FieldDef) -> None:
        self.fields[definition.name] = definition
        self.reindex()

    @property
    def lookup_fields(self) -> list[FieldDef]:
        """Fields that identify a record besides Id (external ids and unique fields)."""
        return self._lookup_fields

    def urls(self, version: str) -> dict[str, str]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}

    def global_entry(self, version: str) -> dict[str, Any]:
        return {
            "activateable": False, "createable": self.createable, "custom": self.custom,
            "customSetting": False, "deletable": self.deletable, "deprecatedAndHidden": False,
            "feedEnabled": False, "hasSubtypes": False, "isSubtype": False, "keyPrefix": self.key_prefix,
            "label": self.label, "labelPlural": self.label_plural, "layoutable": True, "mergeable": False,
            "mruEnabled": True, "name": self.name, "queryable": True, "replicateable": self.replicateable,
            "retrieveable": True, "searchable": True, "triggerable": True, "undeletable": self.deletable,
            "updateable": self.updateable, "urls": self.urls(version),
        }


def _system_fields(has_owner: bool) -> list[FieldDef]:
    audit = {"createable": False, "updateable": False, "nillable": False, "defaulted_on_create": True}
    fields = [
        FieldDef("Id", "id", "Record ID", createable=False, updateable=False, nillable=False,
                 defaulted_on_create=True),
        FieldDef("IsDeleted", "boolean", "Deleted", **audit),
        FieldDef("CreatedDate", "datetime", "Created Date", **audit),
        FieldDef("CreatedById", "reference", "Created By ID", reference_to=("User",),
                 relationship_name="CreatedBy", **audit),
        FieldDef("LastModifiedDate", "datetime", "Last Modified Date", **audit),
        FieldDef("LastModifiedById", "reference", "Last Modified By ID", reference_to=("User",),
                 relationship_name="LastModifiedBy", **audit),
        FieldDef("SystemModstamp", "datetime", "System Modstamp", **audit),
    ]
    if has_owner:
        fields.append(FieldDef("OwnerId", "reference", "Owner ID", nillable=False, defaulted_on_create=True,
                               reference_to=("User",), relationship_name="Owner"))
    return fields


def _text(name: str, label: str, length: int, kind: str = "string", **extra: Any) -> FieldDef:
    return FieldDef(name, kind, label, length=length, **extra)


def _picklist(name: str, label: str, values: tuple[str, ...], restricted: bool = False, **extra: Any) -> FieldDef:
    return FieldDef(name, "picklist", label, length=255, picklist_values=values, restricted_picklist=restricted,
                    **extra)


def _make(name: str, label: str, plural: str, prefix: str, fields: list[FieldDef], has_owner: bool = True,
          custom: bool = False) -> SObjectDef:
    all_fields = _system_fields(has_owner) + fields
    return SObjectDef(name, label, plural, prefix, {f.name: f for f in all_fields}, custom=custom,
                      has_owner=has_owner)


_INDUSTRIES = ("Agriculture", "Banking", "Construction", "Education", "Electronics", "Energy", "Finance",
               "Healthcare", "Manufacturing", "Media", "Retail", "Technology", "Telecommunications", "Other")
_LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
_STAGES = ("Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
           "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost")
_COMPUTED = {"createable": False, "updateable": False, "calculated": True}


def _address(prefix: str, label_prefix: str) -> list[FieldDef]:
    return [
        _text(f"{prefix}Street", f"{label_prefix} Street", 255, "textarea"),
        _text(f"{prefix}City", f"{label_prefix} City", 40),
        _text(f"{prefix}State", f"{label_prefix} State/Province", 80),
        _text(f"{prefix}PostalCode", f"{label_prefix} Zip/Postal Code", 20),
        _text(f"{prefix}Country", f"{label_prefix} Country", 80),
    ]


def standard_objects() -> dict[str, SObjectDef]:
    """Fresh copies of the standard objects (a store mutates its own when custom fields are added)."""
    account = _make("Account", "Account", "Accounts", "001", [
        _text("Name", "Account Name", 255, nillable=False, name_field=True),
        _text("AccountNumber", "Account Number", 40),
        _text("Site", "Account Site", 80),
        _picklist("Type", "Account Type", ("Prospect", "Customer - Direct", "Customer - Channel",
                                           "Channel Partner / Reseller", "Installation Partner",
                                           "Technology Partner", "Other")),
        FieldDef("ParentId", "reference", "Parent Account ID", reference_to=("Account",), relationship_name="Parent",
                 child_relationship_name="ChildAccounts"),
        *_address("Billing", "Billing"),
        *_address("Shipping", "Shipping"),
        _text("Phone", "Account Phone", 40, "phone"),
        _text("Fax", "Account Fax", 40, "phone"),
        _text("Website", "Website", 255, "url"),
        _picklist("Industry", "Industry", _INDUSTRIES),
        FieldDef("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
        FieldDef("NumberOfEmployees", "int", "Employees", precision=8),
        _picklist("Rating", "Rating", ("Hot", "Warm", "Cold"), restricted=True),
        _picklist("AccountSource", "Account Source", _LEAD_SOURCES),
        _text("Description", "Account Description", 32000, "textarea"),
    ])
    person_fields = [
        _picklist("Salutation", "Salutation", ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")),
        _text("FirstName", "First Name", 40),
        _text("LastName", "Last Name", 80, nillable=False),
        _text("Name", "Full Name", 121, name_field=True, **_COMPUTED),
        _text("Email", "Email", 80, "email"),
        _text("Phone", "Phone", 40, "phone"),
        _text("MobilePhone", "Mobile Phone", 40, "phone"),
        _text("Title", "Title", 128),
        _picklist("LeadSource", "Lead Source", _LEAD_SOURCES),
        FieldDef("HasOptedOutOfEmail", "boolean", "Email Opt Out", nillable=False, defaulted_on_create=True,
                 default_value=False),
        FieldDef("DoNotCall", "boolean", "Do Not Call", nillable=False, defaulted_on_create=True,
                 default_value=False),
        _text("Description", "Description", 32000, "textarea"),
    ]
    contact = _make("Contact", "Contact", "Contacts", "003", [
        *person_fields,
        FieldDef("AccountId", "reference", "Account ID", reference_to=("Account",), relationship_name="Account",
                 cascade_delete=True),
        FieldDef("ReportsToId", "reference", "Reports To ID", reference_to=("Contact",),
                 relationship_name="ReportsTo", child_relationship_name="DirectReports"),
        _text("Department", "Department", 80),
        FieldDef("Birthdate", "date", "Birthdate"),
        *_address("Mailing", "Mailing"),
    ])
    lead = _make("Lead", "Lead", "Leads", "00Q", [
        *person_fields,
        _text("Company", "Company", 255, nillable=False),
        _picklist("Status", "Lead Status", ("Open - Not Contacted", "Working - Contacted", "Closed - Converted",
                                            "Closed - Not Converted"), restricted=True, nillable=False,
                  defaulted_on_create=True, default_value="Open - Not Contacted"),
        _picklist("Industry", "Industry", _INDUSTRIES),
        _picklist("Rating", "Rating", ("Hot", "Warm", "Cold")),
        _text("Website", "Website", 255, "url"),
        FieldDef("NumberOfEmployees", "int", "Employees", precision=8),
        FieldDef("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
        *_address("", ""),
        FieldDef("IsConverted", "boolean", "Converted", nillable=False, defaulted_on_create=True,
                 updateable=False, default_value=False),
        FieldDef("ConvertedAccountId", "reference", "Converted Account ID", reference_to=("Account",),
                 relationship_name="ConvertedAccount", createable=False, updateable=False),
        FieldDef("ConvertedContactId", "reference", "Converted Contact ID", reference_to=("Contact",),
                 relationship_name="ConvertedContact", createable=False, updateable=False),
    ])
    opportunity = _make("Opportunity", "Opportunity", "Opportunities", "006", [
        _text("Name", "Name", 120, nillable=False, name_field=True),
        FieldDef("AccountId", "reference", "Account ID", reference_to=("Account",), relationship_name="Account",
                 cascade_delete=True),
        FieldDef("Amount", "currency", "Amount", precision=18, scale=2),
        FieldDef("CloseDate", "date", "Close Date", nillable=False),
        _picklist("StageName", "Stage", _STAGES, restricted=True, nillable=False),
        FieldDef("Probability", "percent", "Probability (%)", precision=3, scale=0, defaulted_on_create=True),
        _picklist("Type", "Opportunity Type", ("Existing Customer - Upgrade", "Existing Customer - Replacement",
                                               "Existing Customer - Downgrade", "New Customer")),
        _picklist("LeadSource", "Lead Source", _LEAD_SOURCES),
        _text("NextStep", "Next Step", 255),
        _text("Description", "Description", 32000, "textarea"),
        FieldDef("IsClosed", "boolean", "Closed", nillable=False, defaulted_on_create=True, **_COMPUTED),
        FieldDef("IsWon", "boolean", "Won", nillable=False, defaulted_on_create=True, **_COMPUTED),
    ])
    user = _make("User", "User", "Users", "005", [
        _text("Username", "Username", 80, nillable=False, unique=True),
        _text("FirstName", "First Name", 40),
        _text("LastName", "Last Name", 80, nillable=False),
        _text("Name", "Full Name", 121, name_field=True, **_COMPUTED),
        _text("Email", "Email", 128, "email", nillable=False),
        _text("Alias", "Alias", 8, nillable=False),
        FieldDef("IsActive", "boolean", "Active", nillable=False, defaulted_on_create=True, default_value=True),
        _text("Title", "Title", 80),
        _text("Department", "Department", 80),
        _picklist("TimeZoneSidKey", "Time Zone", ("America/Los_Angeles", "America/New_York", "Europe/London",
                                                   "Europe/Paris", "GMT"), restricted=True, nillable=False,
                  defaulted_on_create=True, default_value="GMT"),
    ], has_owner=False)
    user.deletable = False
    return {definition.name: definition for definition in (account, contact, lead, opportunity, user)}


def custom_field_from_spec(spec: dict[str, Any]) -> FieldDef:
    """Build a custom field from an admin request written with describe's own keys (camelCase)."""
    name = spec["name"]
    if not name.endswith("__c"):
        raise ValueError(f"custom field names end with __c: {name}")
    kind = spec.get("type", "string")
    reference_to = tuple(spec.get("referenceTo", ()))
    relationship = spec.get("relationshipName") or (name[:-3] + "__r" if kind == "reference" else None)
    length = spec.get("length", 255 if kind in STRING_TYPES and kind != "textarea" else 32768
                      if kind == "textarea" else 0)
    return FieldDef(
        name=name, type=kind, label=spec.get("label", name[:-3].replace("_", " ")), length=length,
        precision=spec.get("precision", 18 if kind in ("double", "currency", "percent") else 0),
        scale=spec.get("scale", 0), nillable=spec.get("nillable", not spec.get("required", False)),
        createable=spec.get("createable", True), updateable=spec.get("updateable", True),
        defaulted_on_create=spec.get("defaultedOnCreate", kind == "boolean"), custom=True,
        external_id=spec.get("externalId", False), unique=spec.get("unique", False),
        calculated=spec.get("calculated", False), picklist_values=tuple(spec.get("picklistValues", ())),
        restricted_picklist=spec.get("restrictedPicklist", False), reference_to=reference_to,
        relationship_name=relationship, cascade_delete=spec.get("cascadeDelete", False),
        default_value=spec.get("defaultValue", False if kind == "boolean" else None),
        child_relationship_name=spec.get("childRelationshipName"),
    )


def custom_object_from_spec(spec: dict[str, Any], key_prefix: str) -> SObjectDef:
    name = spec["name"]
    if not name.endswith("__c"):
        raise ValueError(f"custom object names end with __c: {name}")
    label = spec.get("label", name[:-3].replace("_", " "))
    name_field = FieldDef("Name", "string", f"{label} Name", length=80, nillable=spec.get("nameNillable", True),
                          name_field=True)
    definition = _make(name, label, spec.get("labelPlural", label + "s"), key_prefix, [name_field], custom=True)
    for field_spec in spec.get("fields", []):
        definition.add_field(custom_field_from_spec(field_spec))
    return definition


def with_field(definition: FieldDef, **changes: Any) -> FieldDef:
    return replace(definition, **changes)
