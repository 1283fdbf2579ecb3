"""Start requests HubSpot refuses with a 4xx: the same here, in HubSpot's error body."""

from __future__ import annotations

import httpx
import orjson

from .conftest import contacts_request, start_import


def assert_error(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR" and body["correlationId"]
    assert fragment in body["message"], body["message"]


async def test_too_many_columns(imports: httpx.AsyncClient) -> None:
    header = ",".join(f"c{i}" for i in range(1000))
    request = contacts_request([("c0", "email")])
    response = await start_import(imports, request, {"contacts.csv": (header + "\n" + "x," * 999 + "x\n").encode()})
    assert_error(response, 400, "fewer than 1,000 columns")


async def test_file_part_must_match_the_file_name(imports: httpx.AsyncClient) -> None:
    request = contacts_request([("Email", "email")], file_name="expected.csv")
    request["files"].append({**request["files"][0], "fileName": "second.csv"})
    response = await start_import(imports, request, {"expected.csv": b"Email\na@b.com\n", "other.csv": b"Email\n"})
    assert_error(response, 400, "second.csv")


async def test_bad_import_requests(imports: httpx.AsyncClient) -> None:
    files = [("files", ("c.csv", b"Email\na@requests-imports.com\n", "text/csv"))]
    response = await imports.post("/crm/v3/imports/", data={"importRequest": "{not json"}, files=files)
    assert_error(response, 400, "Invalid input JSON")
    response = await imports.post("/crm/v3/imports/", files=files)
    assert_error(response, 400, "importRequest")
    bad_type = contacts_request([("Email", "email")], file_name="c.csv")
    bad_type["files"][0]["fileImportPage"]["columnMappings"][0]["columnObjectTypeId"] = "spaceships"
    response = await imports.post("/crm/v3/imports/", data={"importRequest": orjson.dumps(bad_type).decode()},
                                  files=files)
    assert_error(response, 400, "Unable to infer object type from: spaceships")
    bad_op = contacts_request([("Email", "email")], file_name="c.csv", importOperations={"0-1": "MERGE"})
    response = await imports.post("/crm/v3/imports/", data={"importRequest": orjson.dumps(bad_op).decode()},
                                  files=files)
    assert_error(response, 400, "CREATE, UPDATE or UPSERT")
    empty = contacts_request([("Email", "email")], file_name="c.csv")
    response = await start_import(imports, empty, {"c.csv": b""})
    assert_error(response, 400, "empty")


async def test_unknown_import_is_404(imports: httpx.AsyncClient) -> None:
    for path in ("/crm/v3/imports/999999999", "/crm/v3/imports/999999999/errors"):
        response = await imports.get(path)
        assert response.status_code == 404
        assert response.json()["category"] == "OBJECT_NOT_FOUND"
    assert (await imports.post("/crm/v3/imports/999999999/cancel")).status_code == 404


async def test_import_ids_and_cursors_that_are_no_ids_are_400(imports: httpx.AsyncClient) -> None:
    """`abc` was a 404, while `²` and 30 digits were 500s: every id that cannot be one is now a 400."""
    for raw in ("abc", "%C2%B2", "9" * 30, str(2**63)):
        for method, path in (("GET", f"/crm/v3/imports/{raw}"), ("GET", f"/crm/v3/imports/{raw}/errors"),
                             ("POST", f"/crm/v3/imports/{raw}/cancel"), ("POST", f"/crm/v3/imports/{raw}/revert"),
                             ("GET", f"/corral/v1/imports/{raw}/errors.csv")):
            response = await imports.request(method, path)
            assert response.status_code == 400, (method, path, response.text)
            assert response.json()["errors"][0]["in"] == "importId"
    for query in ("after=99999999999999999999", "after=%C2%B2", "before=99999999999999999999"):
        response = await imports.get(f"/crm/v3/imports?{query}")
        assert response.status_code == 400, (query, response.text)
        assert response.json()["errors"][0]["code"] == "INVALID_PAGING_CURSOR"


async def test_requests_without_the_gateway_context_are_refused(import_service: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(transport=import_service._transport, base_url="http://imports") as bare:
        response = await bare.get("/crm/v3/imports/")
    assert response.status_code == 401
