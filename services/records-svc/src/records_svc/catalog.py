"""The properties an account's object type has: HubSpot's standard ones plus the account's custom ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.errors import HubSpotError
from records_svc import repository
from records_svc.domain.object_types import ObjectType, find_standard_object_type
from records_svc.domain.properties import PropertyDefinition, PropertyOption
from records_svc.domain.standard_properties import STANDARD_PROPERTIES


def resolve_object_type(key: str) -> ObjectType:
    object_type = find_standard_object_type(key)
    if object_type is None:
        raise HubSpotError(400, f"Unable to infer object type from: {key}", category="VALIDATION_ERROR",
                           errors=[{"message": f"Unknown object type {key!r}", "code": "UNKNOWN_OBJECT_TYPE",
                                    "in": "objectType"}])
    return object_type


def definition_from_row(row: dict[str, Any]) -> PropertyDefinition:
    return PropertyDefinition(
        name=row["name"], label=row["label"], type=row["type"], field_type=row["field_type"],
        group_name=row["group_name"], description=row["description"],
        options=tuple(PropertyOption(label=o["label"], value=o["value"], display_order=o.get("displayOrder", -1),
                                     hidden=o.get("hidden", False), description=o.get("description", ""))
                      for o in row["options"]),
        display_order=row["display_order"], has_unique_value=row["has_unique_value"], hidden=row["hidden"],
        form_field=row["form_field"], hubspot_defined=False, archived=row["archived"],
        created_at=row["created_at"], updated_at=row["updated_at"],
        calculated=row.get("calculation_formula") is not None,
    )


@dataclass
class PropertyCatalog:
    object_type: ObjectType
    properties: dict[str, PropertyDefinition]

    def unique_namespaces(self) -> dict[str, str]:
        namespaces = dict(self.object_type.unique_namespaces)
        for prop in self.properties.values():
            if prop.has_unique_value and prop.name not in namespaces:
                namespaces[prop.name] = prop.name
        return namespaces


async def load_catalog(session: AsyncSession, account_id: int, object_type: ObjectType) -> PropertyCatalog:
    properties = dict(STANDARD_PROPERTIES.get(object_type.id, {}))
    for row in await repository.custom_properties(session, account_id, object_type.id):
        properties[row["name"]] = definition_from_row(row)
    return PropertyCatalog(object_type=object_type, properties=properties)
