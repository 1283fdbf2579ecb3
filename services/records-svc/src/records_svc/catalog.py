"""The properties an account's object type has: HubSpot's standard ones plus the account's custom ones."""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from crm_common.errors import HubSpotError
from sqlalchemy.ext.asyncio import AsyncSession

from records_svc import repository
from records_svc.domain.object_types import ObjectType, find_standard_object_type
from records_svc.domain.properties import PropertyDefinition, PropertyOption
from records_svc.domain.standard_properties import CUSTOM_OBJECT_BASE_PROPERTIES, STANDARD_PROPERTIES


async def resolve_object_type(session: AsyncSession, account_id: int, key: str) -> ObjectType:
    """A standard type by id, plural or singular name, or one of the account's custom objects."""
    object_type = find_standard_object_type(key)
    if object_type is not None:
        return object_type
    schema = await repository.find_schema(session, account_id, key)
    if schema is None:
        raise HubSpotError(400, f"Unable to infer object type from: {key}", category="VALIDATION_ERROR",
                           errors=[{"message": f"Unknown object type {key!r}", "code": "UNKNOWN_OBJECT_TYPE",
                                    "in": "objectType"}])
    return object_type_from_schema(schema)


def object_type_from_schema(schema: dict[str, Any]) -> ObjectType:
    primary = schema["primary_display_property"] or "hs_object_id"
    defaults = tuple(dict.fromkeys([primary, *schema["secondary_display_properties"]]))
    return ObjectType(
        id=f"2-{schema['type_number']}", name=schema["name"], singular=schema["name"],
        label_singular=schema["label_singular"], label_plural=schema["label_plural"],
        default_properties=defaults, searchable_properties=tuple(schema["searchable_properties"]) or (primary,),
        required_properties=tuple(schema["required_properties"]), primary_display_property=primary, custom=True,
    )


async def association_targets(session: AsyncSession, account_id: int) -> dict[str, str]:
    """Every name an object type answers to, for `associations.{type}` search filters."""
    from records_svc.domain.object_types import STANDARD_OBJECT_TYPES

    mapping = {}
    for t in STANDARD_OBJECT_TYPES:
        for key in (t.id, t.name, t.singular):
            mapping[key] = t.id
    for schema in await repository.list_schemas(session, account_id):
        type_id = f"2-{schema['type_number']}"
        for key in (type_id, schema["name"], f"p{account_id}_{schema['name']}"):
            mapping[key] = type_id
    return mapping


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
    _unique_namespaces: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    def unique_namespaces(self) -> dict[str, str]:
        """Unique property -> namespace of its claims. Computed once: bulk writes ask per record."""
        if self._unique_namespaces is None:
            namespaces = dict(self.object_type.unique_namespaces)
            for prop in self.properties.values():
                if prop.has_unique_value and prop.name not in namespaces:
                    namespaces[prop.name] = prop.name
            self._unique_namespaces = namespaces
        return dict(self._unique_namespaces)


# Loading an account's custom properties was most of a single-record read, so catalogs are cached per
# database (engine), account and object type. Writes through this process invalidate at once; another
# replica's changes show within CATALOG_TTL_SECONDS, and a property unknown to a cached catalog makes the
# validator reload it before refusing (`refresh_catalog`), so a just-created property is never refused.
CATALOG_TTL_SECONDS = 30.0
_catalogs: weakref.WeakKeyDictionary[Any, dict[tuple[int, str], tuple[float, PropertyCatalog]]] = (
    weakref.WeakKeyDictionary())


def _cache(session: AsyncSession) -> dict[tuple[int, str], tuple[float, PropertyCatalog]]:
    engine = session.bind.sync_engine  # type: ignore[union-attr]
    return _catalogs.setdefault(engine, {})


async def load_catalog(session: AsyncSession, account_id: int, object_type: ObjectType) -> PropertyCatalog:
    cache = _cache(session)
    cached = cache.get((account_id, object_type.id))
    if cached and cached[0] > time.monotonic() and cached[1].object_type == object_type:
        return cached[1]
    return await refresh_catalog(session, account_id, object_type)


async def refresh_catalog(session: AsyncSession, account_id: int, object_type: ObjectType) -> PropertyCatalog:
    properties = dict(STANDARD_PROPERTIES.get(object_type.id, CUSTOM_OBJECT_BASE_PROPERTIES))
    for row in await repository.custom_properties(session, account_id, object_type.id):
        properties[row["name"]] = definition_from_row(row)
    catalog = PropertyCatalog(object_type=object_type, properties=properties)
    _cache(session)[(account_id, object_type.id)] = (time.monotonic() + CATALOG_TTL_SECONDS, catalog)
    return catalog


def invalidate_catalog(session: AsyncSession, account_id: int, object_type_id: str) -> None:
    _cache(session).pop((account_id, object_type_id), None)


async def catalog_knowing(session: AsyncSession, account_id: int, object_type: ObjectType,
                          names: Iterable[str]) -> PropertyCatalog:
    """The catalog, reloaded once if it does not know one of `names` (created on another replica)."""
    catalog = await load_catalog(session, account_id, object_type)
    if any(name not in catalog.properties for name in names):
        catalog = await refresh_catalog(session, account_id, object_type)
    return catalog
