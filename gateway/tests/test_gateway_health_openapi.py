"""Readiness across backends, and the merged OpenAPI document with its docs page."""

from __future__ import annotations

from corral_gateway.openapi import merge_documents


async def test_livez(gateway, client) -> None:
    response = await client.get(f"{gateway.url}/livez")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readyz_when_everything_answers(gateway, client) -> None:
    response = await client.get(f"{gateway.url}/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "records": "ok", "imports": "ok", "merges": "ok",
                                         "sync": "ok"}


async def test_readyz_when_a_backend_is_down(degraded_gateway, client) -> None:
    response = await client.get(f"{degraded_gateway.url}/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["sync"].startswith("unavailable")
    assert {k: v for k, v in checks.items() if k != "sync"} == {
        "database": "ok", "records": "ok", "imports": "ok", "merges": "ok"}


def operations(document: dict) -> list[tuple[str, str, dict]]:
    return [(path, method, op) for path, item in document["paths"].items()
            for method, op in item.items() if method in ("get", "post", "put", "patch", "delete")]


async def test_merged_openapi(gateway, client) -> None:
    response = await client.get(f"{gateway.url}/openapi.json")  # no credentials needed
    assert response.status_code == 200
    doc = response.json()
    paths = doc["paths"]
    assert not [p for p in paths if p.startswith("/internal")]
    assert "/crm/v3/objects/{objectType}" in paths
    assert "/corral/v1/merges/{mergeId}" in paths
    assert "/corral/v1/sync/connections" in paths
    assert "/crm/v3/imports" in paths
    assert {"/livez", "/readyz"} <= set(paths)
    # records also declares the merge path, but the gateway sends it to merges: merges' operation wins.
    merge_op = paths["/crm/v3/objects/{objectType}/merge"]["post"]
    assert merge_op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/merges_Thing"}
    listed = paths["/crm/v3/objects/{objectType}"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"] == {"$ref": "#/components/schemas/records_Thing"}

    schemas = doc["components"]["schemas"]
    assert "Thing" not in schemas
    assert set(schemas["records_Thing"]["properties"]) == {"id", "properties"}
    assert set(schemas["merges_Thing"]["properties"]) == {"id", "mergedIds"}
    assert "SharedPaging" in schemas and "records_SharedPaging" not in schemas  # identical: merged once
    refs = {r for r in _refs(doc)}
    assert refs <= {f"#/components/schemas/{name}" for name in schemas}  # no dangling $ref

    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "A Corral access token (`pat-corral-...`)"}
    assert doc["security"] == [{"bearerAuth": []}]
    assert doc["servers"] == [{"url": "/"}]
    for path, method, op in operations(doc):
        if path in ("/livez", "/readyz"):
            assert op["security"] == []
            continue
        assert {"401", "403", "429"} <= set(op["responses"]), (path, method)
        assert ("404" in op["responses"]) or "{" not in path, (path, method)
    assert "Warning" not in doc["info"]["description"]


def _refs(node):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


async def test_openapi_with_a_backend_down_warns(degraded_gateway, client) -> None:
    doc = (await client.get(f"{degraded_gateway.url}/openapi.json")).json()
    assert "sync service is unavailable" in doc["info"]["description"]
    assert "/corral/v1/sync/connections" not in doc["paths"]
    assert "/crm/v3/objects/{objectType}" in doc["paths"]


async def test_docs_page_points_at_the_merged_document(gateway, client) -> None:
    response = await client.get(f"{gateway.url}/docs")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "/openapi.json" in response.text and "swagger" in response.text.lower()


def test_merge_renames_refs_inside_schemas_too() -> None:
    a = {"paths": {"/crm/v3/objects/{t}": {"get": {"responses": {"200": {"content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Outer"}}}}}}}},
        "components": {"schemas": {"Outer": {"properties": {"x": {"$ref": "#/components/schemas/Inner"}}},
                                   "Inner": {"type": "string"}}}}
    b = {"paths": {"/corral/v1/sync/{x}": {"get": {"responses": {"200": {"content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Outer"}}}}}}}},
        "components": {"schemas": {"Outer": {"properties": {"x": {"$ref": "#/components/schemas/Inner"}}},
                                   "Inner": {"type": "integer"}}}}
    doc = merge_documents({"records": a, "sync": b})
    schemas = doc["components"]["schemas"]
    # Inner differs, so each Outer now points at a different Inner: both must be split too.
    assert schemas["records_Outer"]["properties"]["x"] == {"$ref": "#/components/schemas/records_Inner"}
    assert schemas["sync_Outer"]["properties"]["x"] == {"$ref": "#/components/schemas/sync_Inner"}
    assert doc["paths"]["/corral/v1/sync/{x}"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"] == {"$ref": "#/components/schemas/sync_Outer"}
    assert "/crm/v3/objects/{t}" in doc["paths"]
