"""The routing table and scope rules, as a table of public calls."""

from __future__ import annotations

import pytest
from corral_gateway.routing import resolve

C_R, C_W = "crm.objects.contacts.read", "crm.objects.contacts.write"


@pytest.mark.parametrize(
    ("method", "path", "backend", "scopes"),
    [
        ("POST", "/crm/v3/objects/contacts/merge", "merges", [C_W]),
        ("POST", "/crm/v3/objects/0-2/merge", "merges", ["crm.objects.companies.write"]),
        ("GET", "/crm/v3/objects/contacts/merge", "records", [C_R]),  # a record with id "merge"
        ("POST", "/crm/v3/objects/contacts/merge/extra", "records", [C_W]),
        ("POST", "/crm/v3/imports", "imports", ["crm.import"]),
        ("GET", "/crm/v3/imports/", "imports", ["crm.import"]),
        ("GET", "/crm/v3/imports/12/errors", "imports", ["crm.import"]),
        ("POST", "/corral/v1/capture/vcard", "imports", ["crm.import"]),
        ("GET", "/corral/v1/merges/7", "merges", ["corral.merges"]),
        ("GET", "/corral/v1/duplicates", "merges", ["corral.merges"]),
        ("PUT", "/corral/v1/sync/connections/1", "sync", ["corral.sync.write"]),
        ("GET", "/corral/v1/salesforce/connection", "sync", ["corral.sync.read"]),
        ("PUT", "/corral/v1/salesforce/connection", "sync", ["corral.sync.write"]),
        ("POST", "/corral/v1/salesforce/sync/run", "sync", ["corral.sync.write"]),
        ("GET", "/corral/v1/salesforce/errors", "sync", ["corral.sync.read"]),
        ("GET", "/crm/v3/objects/contacts", "records", [C_R]),
        ("GET", "/crm/v3/objects/contact/1", "records", [C_R]),
        ("GET", "/crm/v3/objects/0-1/1", "records", [C_R]),
        ("POST", "/crm/v3/objects/contacts", "records", [C_W]),
        ("PATCH", "/crm/v3/objects/contacts/1", "records", [C_W]),
        ("DELETE", "/crm/v3/objects/contacts/1", "records", [C_W]),
        ("POST", "/crm/v3/objects/contacts/search", "records", [C_R]),
        ("POST", "/crm/v3/objects/contacts/batch/read", "records", [C_R]),
        ("POST", "/crm/v3/objects/contacts/batch/upsert", "records", [C_W]),
        ("GET", "/crm/v3/objects/deals", "records", ["crm.objects.deals.read"]),
        ("GET", "/crm/v3/objects/tickets", "records", ["tickets"]),
        ("POST", "/crm/v3/objects/0-5", "records", ["tickets"]),
        ("GET", "/crm/v3/objects/line_items", "records", ["e-commerce"]),
        ("GET", "/crm/v3/objects/product", "records", ["e-commerce"]),
        ("POST", "/crm/v3/objects/notes", "records", [C_W]),
        ("GET", "/crm/v3/objects/0-48", "records", [C_R]),
        ("GET", "/crm/v3/objects/2-1234", "records", ["crm.objects.custom.read"]),
        ("POST", "/crm/v3/objects/cars", "records", ["crm.objects.custom.write"]),
        ("GET", "/crm/v3/properties/contacts", "records", ["crm.schemas.contacts.read"]),
        ("POST", "/crm/v3/properties/2-9", "records", ["crm.schemas.custom.write"]),
        ("GET", "/crm-object-schemas/v3/schemas", "records", ["crm.schemas.custom.read"]),
        ("POST", "/crm-object-schemas/v3/schemas", "records", ["crm.schemas.custom.write"]),
        ("GET", "/crm/v4/objects/contacts/1/associations/companies", "records",
         [C_R, "crm.objects.companies.read"]),
        ("PUT", "/crm/v4/objects/contacts/1/associations/default/deals/2", "records",
         [C_W, "crm.objects.deals.write"]),
        ("POST", "/crm/v4/associations/contacts/companies/batch/read", "records",
         [C_R, "crm.objects.companies.read"]),
        ("GET", "/crm/associations/v4/contacts/deals/labels", "records", [C_R, "crm.objects.deals.read"]),
        ("POST", "/crm/v3/associations/contacts/companies/batch/create", "records",
         [C_W, "crm.objects.companies.write"]),
        ("GET", "/crm/v3/pipelines/deals", "records", ["crm.objects.deals.read"]),
        ("GET", "/crm/v3/owners", "records", ["crm.objects.owners.read"]),
        ("GET", "/corral/v1/records/contacts/1/history", "records", [C_R]),
    ],
)
def test_route_table(method: str, path: str, backend: str, scopes: list[str]) -> None:
    resolution = resolve(method, path)
    assert resolution is not None
    assert (resolution.backend, resolution.required_scopes) == (backend, scopes)


@pytest.mark.parametrize("path", [
    "/internal/records/apply", "/internal", "/", "/crm", "/crm/v3", "/crm/v3/unknown", "/foo/bar",
    "/crm/v3/objects/../../internal/x", "/crm/v3/objects/./contacts", "/crm/v3/importsx",
])
def test_unrouted_paths(path: str) -> None:
    assert resolve("GET", path) is None


# Every spelling records-svc resolves to a standard type needs that type's scope: a token with only the
# custom-object scopes once created line items through `lineitems` / `LINEITEMS`.
EXPECTED_FAMILY = {"0-1": "crm.objects.contacts", "0-2": "crm.objects.companies", "0-3": "crm.objects.deals",
                   "0-5": "tickets", "0-7": "e-commerce", "0-8": "e-commerce", "0-27": "crm.objects.contacts",
                   "0-46": "crm.objects.contacts", "0-47": "crm.objects.contacts", "0-48": "crm.objects.contacts",
                   "0-49": "crm.objects.contacts"}


def _spellings(name: str) -> set[str]:
    return {name, name.upper(), name.capitalize(), name.swapcase()}


@pytest.mark.parametrize("write", [False, True])
def test_every_name_of_every_standard_type_needs_that_types_scope(write: bool) -> None:
    from crm_common.object_types import STANDARD_OBJECT_TYPES
    from records_svc.domain.object_types import find_standard_object_type

    assert {t.id for t in STANDARD_OBJECT_TYPES} == set(EXPECTED_FAMILY)
    method = "POST" if write else "GET"
    for object_type in STANDARD_OBJECT_TYPES:
        family = EXPECTED_FAMILY[object_type.id]
        wanted = family if "." not in family else f"{family}.{'write' if write else 'read'}"
        for name in object_type.names:
            for spelling in _spellings(name):
                # records-svc serves this spelling as this type ...
                served = find_standard_object_type(spelling)
                assert served is not None and served.id == object_type.id, spelling
                # ... so the gateway asks for this type's scope on every route that names it.
                for path in (f"/crm/v3/objects/{spelling}", f"/crm/v3/objects/{spelling}/1",
                             f"/crm/v4/objects/{spelling}/1/associations/companies"):
                    resolution = resolve(method, path)
                    assert resolution is not None and wanted in resolution.required_scopes, (path, resolution)
                    assert not any("custom" in s for s in resolution.required_scopes), (path, resolution)


def test_line_item_aliases_named_in_the_report() -> None:
    for name in ("lineitems", "LINEITEMS", "line_items", "0-8", "Line_Item", "lineitem"):
        assert resolve("POST", f"/crm/v3/objects/{name}").required_scopes == ["e-commerce"], name  # type: ignore[union-attr]
    assert resolve("POST", "/crm/v3/objects/line-items").required_scopes == ["crm.objects.custom.write"]  # type: ignore[union-attr]
