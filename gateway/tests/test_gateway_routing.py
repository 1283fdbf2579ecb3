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
