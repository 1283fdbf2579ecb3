"""The import request, normalised (pure: no I/O).

HubSpot's `importRequest` JSON has two generations of keys (`columnObjectTypeId`/`columnType` and
the older `columnObjectType: "CONTACT"`/`idColumnType`/`ignored`); both become one `ImportPlan`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crm_common.inputs import abridged, as_id
from crm_common.object_types import find_standard

# Activities and line items are created, never updated, by an import.
CREATE_ONLY_TYPES = frozenset({"0-8", "0-27", "0-46", "0-47", "0-48", "0-49"})
OPERATIONS = frozenset({"CREATE", "UPDATE", "UPSERT"})
# The property that identifies a record of a type when a row has no record id.
NATURAL_KEYS = {"0-1": "email", "0-2": "domain"}


class InvalidImportRequest(Exception):
    pass


def object_type_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    if text[:2] == "2-" and as_id(text[2:]) is not None:
        return text
    found = find_standard(text)
    if found is None:
        raise InvalidImportRequest(f"Unable to infer object type from: {abridged(text)}")
    return found.id


@dataclass
class ColumnMapping:
    index: int
    name: str
    object_type_id: str | None = None
    property_name: str | None = None
    column_type: str = "STANDARD"  # STANDARD | HUBSPOT_OBJECT_ID | HUBSPOT_ALTERNATE_ID | FLEXIBLE_ASSOCIATION_LABEL | ASSOCIATION_KEYS | IGNORED
    to_object_type_id: str | None = None
    association_type_id: int | None = None
    association_category: str = "HUBSPOT_DEFINED"
    identifier: bool = False  # associationIdentifierColumn: the common column of a two-file import
    keep_existing: bool = False  # "don't overwrite existing values" for this column
    new_property: dict[str, Any] | None = None  # create this custom property before importing

    @property
    def ignored(self) -> bool:
        return self.column_type == "IGNORED"

    @property
    def is_foreign_key(self) -> bool:
        return (self.to_object_type_id is not None and self.property_name is None
                and self.column_type != "FLEXIBLE_ASSOCIATION_LABEL")

    @property
    def is_label(self) -> bool:
        return self.column_type == "FLEXIBLE_ASSOCIATION_LABEL"

    @property
    def is_property(self) -> bool:
        return (not self.ignored and self.object_type_id is not None and self.property_name is not None
                and not self.is_label)


@dataclass
class FilePlan:
    position: int
    file_name: str
    file_format: str
    has_header: bool
    columns: list[ColumnMapping]

    def object_types(self) -> list[str]:
        seen: list[str] = []
        for c in self.columns:
            if c.is_property and c.object_type_id not in seen:
                seen.append(c.object_type_id)  # type: ignore[arg-type]
        return seen


@dataclass
class ImportPlan:
    name: str
    operations: dict[str, str]
    date_format: str
    time_zone: str | None
    number_format: Any
    files: list[FilePlan]
    keep_existing_all: bool = False
    skip_unmapped: bool = False
    create_companies_from_domains: bool = False
    marketable: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def operation(self, type_id: str) -> str:
        if type_id in CREATE_ONLY_TYPES:
            return "CREATE"
        return self.operations.get(type_id, "UPSERT")

    def mapped_object_type_ids(self) -> list[str]:
        out: list[str] = []
        for f in self.files:
            for c in f.columns:
                for t in (c.object_type_id, c.to_object_type_id):
                    if t and t not in out and not c.ignored:
                        out.append(t)
        return out

    def identifier_property(self, type_id: str) -> str:
        """The property a foreign-key column's values are matched on, for records of `type_id`."""
        for f in self.files:
            for c in f.columns:
                if c.identifier and c.object_type_id == type_id and c.property_name:
                    return c.property_name
        return NATURAL_KEYS.get(type_id, "hs_object_id")


def _column(raw: dict[str, Any], index: int) -> ColumnMapping:
    legacy_type = raw.get("columnObjectType")
    type_id = object_type_id(raw.get("columnObjectTypeId") or legacy_type)
    to_type = object_type_id(raw.get("toColumnObjectTypeId") or raw.get("toColumnObjectType"))
    column_type = str(raw.get("columnType") or raw.get("idColumnType") or "STANDARD").upper()
    if raw.get("ignored") or raw.get("doNotImport") or column_type in ("IGNORED", "DO_NOT_IMPORT"):
        column_type = "IGNORED"
    prop = raw.get("propertyName")
    if column_type == "HUBSPOT_OBJECT_ID" and not prop:
        prop = "hs_object_id"
    foreign = raw.get("foreignKeyType") or {}
    assoc_id = foreign.get("associationTypeId", raw.get("associationTypeId"))
    if type_id is None and prop is None and not to_type:
        column_type = "IGNORED"
    return ColumnMapping(
        index=index,
        name=str(raw.get("columnName", "")).strip(),
        object_type_id=type_id,
        property_name=prop,
        column_type=column_type,
        to_object_type_id=to_type,
        association_type_id=int(assoc_id) if assoc_id is not None else None,
        association_category=str(foreign.get("associationCategory", raw.get("associationCategory",
                                                                            "HUBSPOT_DEFINED"))),
        identifier=bool(raw.get("associationIdentifierColumn")),
        keep_existing=bool(raw.get("doNotOverwrite") or raw.get("keepExisting") or raw.get("dontOverwrite")),
        new_property=raw.get("createNewProperty") if isinstance(raw.get("createNewProperty"), dict)
        else ({} if raw.get("createNewProperty") else None),
    )


def parse_plan(raw: dict[str, Any]) -> ImportPlan:
    if not isinstance(raw, dict):
        raise InvalidImportRequest("importRequest must be a JSON object")
    files_raw = raw.get("files")
    if not isinstance(files_raw, list) or not files_raw:
        raise InvalidImportRequest("importRequest.files must list at least one file")
    date_format = str(raw.get("dateFormat") or "MONTH_DAY_YEAR").upper()
    if date_format not in ("MONTH_DAY_YEAR", "DAY_MONTH_YEAR", "YEAR_MONTH_DAY"):
        raise InvalidImportRequest(f"dateFormat {date_format} is not one of MONTH_DAY_YEAR, DAY_MONTH_YEAR, "
                                   f"YEAR_MONTH_DAY")
    operations: dict[str, str] = {}
    for key, value in (raw.get("importOperations") or {}).items():
        op = str(value).upper()
        if op not in OPERATIONS:
            raise InvalidImportRequest(f"importOperations.{key} must be CREATE, UPDATE or UPSERT")
        operations[object_type_id(key) or key] = op
    files = []
    for position, f in enumerate(files_raw):
        if not isinstance(f, dict) or not f.get("fileName"):
            raise InvalidImportRequest("every entry of importRequest.files needs a fileName")
        page = f.get("fileImportPage") or {}
        mappings = page.get("columnMappings") or []
        if not isinstance(mappings, list):
            raise InvalidImportRequest("fileImportPage.columnMappings must be a list")
        columns = [_column(m, i) for i, m in enumerate(mappings)]
        files.append(FilePlan(position=position, file_name=str(f["fileName"]),
                              file_format=str(f.get("fileFormat") or "").upper(),
                              has_header=bool(page.get("hasHeader", True)), columns=columns))
    return ImportPlan(
        name=str(raw.get("name") or ""),
        operations=operations,
        date_format=date_format,
        time_zone=raw.get("timeZone"),
        number_format=raw.get("numberFormat") or raw.get("countryCode") or raw.get("locale"),
        files=files,
        keep_existing_all=bool(raw.get("doNotOverwrite") or raw.get("keepExistingValues")),
        skip_unmapped=bool(raw.get("skipUnmappedColumns", True)),
        create_companies_from_domains=bool(raw.get("createCompaniesFromEmailDomains")
                                           or raw.get("associateContactsWithCompaniesByDomain")),
        marketable=raw.get("marketableContactImport"),
        raw=raw,
    )


def bind_columns(file_plan: FilePlan, header: list[str] | None) -> list[ColumnMapping]:
    """Each mapping gets the position of its column in the file: by header name, else in order."""
    if not header or not file_plan.has_header:
        return file_plan.columns
    positions: dict[str, int] = {}
    for i, name in enumerate(header):
        positions.setdefault(name.strip().lower(), i)
    bound = []
    for mapping in file_plan.columns:
        where = positions.get(mapping.name.lower()) if mapping.name else None
        if where is None:
            where = mapping.index
        mapping.index = where
        bound.append(mapping)
    return bound
