"""Every error code of the reference, provoked the way a client would, with Salesforce's status and body."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from salesforce_emulator import ids
from salesforce_emulator.app import create_app
from salesforce_emulator.settings import EmulatorSettings

from .conftest import API, BASE_URL, SalesforceApi, fetch_token


def single_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, list) and len(body) == 1, body
    assert body[0]["errorCode"] == code
    assert isinstance(body[0]["message"], str) and body[0]["message"]
    return body[0]


async def test_invalid_session_for_unknown_token(sf: SalesforceApi) -> None:
    response = await sf.client.get("/services/data/v60.0/limits", headers={"Authorization": "Bearer nope"})
    error = single_error(response, 401, "INVALID_SESSION_ID")
    assert error["message"] == "Session expired or invalid"


async def test_invalid_session_after_token_lifetime() -> None:
    app = create_app(EmulatorSettings(token_ttl_seconds=60))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
        sf = SalesforceApi(client, await fetch_token(client))
        assert (await sf.get("/limits")).status_code == 200
        app.state.org.clock.advance(61)
        single_error(await sf.get("/limits"), 401, "INVALID_SESSION_ID")


async def test_request_limit_exceeded_when_daily_allowance_is_spent(sf: SalesforceApi) -> None:
    await sf.admin("PUT", "/limits", json={"DailyApiRequests": 3})
    for _ in range(3):
        assert (await sf.get("/limits")).status_code == 200
    response = await sf.get("/limits")
    error = single_error(response, 403, "REQUEST_LIMIT_EXCEEDED")
    assert error["message"] == "TotalRequests Limit exceeded."
    assert response.headers["Sforce-Limit-Info"] == "api-usage=3/3"


async def test_request_limit_exceeded_fault(sf: SalesforceApi) -> None:
    await sf.admin("POST", "/faults", json={"kind": "REQUEST_LIMIT_EXCEEDED", "times": 1})
    single_error(await sf.query("SELECT Id FROM Account"), 403, "REQUEST_LIMIT_EXCEEDED")
    assert (await sf.query("SELECT Id FROM Account")).status_code == 200


async def test_invalid_field_in_query_and_in_write(sf: SalesforceApi) -> None:
    error = single_error(await sf.query("SELECT Id, Bacon__c FROM Account"), 400, "INVALID_FIELD")
    assert "No such column 'Bacon__c' on entity 'Account'" in error["message"]
    assert "ERROR at Row:1:Column:12" in error["message"]
    error = single_error(await sf.post("/sobjects/Account", json={"Name": "x", "Bacon__c": 1}), 400, "INVALID_FIELD")
    assert error["message"] == "No such column 'Bacon__c' on sobject of type Account"


async def test_malformed_query(sf: SalesforceApi) -> None:
    error = single_error(await sf.query("SELEKT Id FROM Account"), 400, "MALFORMED_QUERY")
    assert error["message"] == "unexpected token: SELEKT"
    error = single_error(await sf.query("SELECT Id FROM Account WHERE Name = "), 400, "MALFORMED_QUERY")
    assert error["message"].endswith("unexpected token: <EOF>")


async def test_not_found_for_unknown_object_and_missing_row(sf: SalesforceApi) -> None:
    error = single_error(await sf.get("/sobjects/Bogus__c/describe"), 404, "NOT_FOUND")
    assert error["message"] == "The requested resource does not exist"
    single_error(await sf.get(f"/sobjects/Account/{ids.to_18('001000000000001')}"), 404, "NOT_FOUND")


async def test_entity_is_deleted(sf: SalesforceApi) -> None:
    account_id = await sf.create("Account", {"Name": "Doomed"})
    assert (await sf.delete(f"/sobjects/Account/{account_id}")).status_code == 204
    error = single_error(await sf.delete(f"/sobjects/Account/{account_id}"), 404, "ENTITY_IS_DELETED")
    assert error["message"] == "entity is deleted"
    single_error(await sf.get(f"/sobjects/Account/{account_id}"), 404, "ENTITY_IS_DELETED")
    single_error(await sf.patch(f"/sobjects/Account/{account_id}", json={"Name": "x"}), 404, "ENTITY_IS_DELETED")


async def test_duplicate_value_on_unique_field(sf: SalesforceApi) -> None:
    await sf.admin("POST", "/objects/Contact/fields",
                   json={"name": "Ext__c", "type": "string", "externalId": True, "unique": True})
    first = await sf.create("Contact", {"LastName": "A", "Ext__c": "K-1"})
    response = await sf.post("/sobjects/Contact", json={"LastName": "B", "Ext__c": "k-1"})
    error = single_error(response, 400, "DUPLICATE_VALUE")
    assert error["message"] == f"duplicate value found: Ext__c duplicates value on record with id: {first}"


async def test_required_field_missing_on_create_and_on_clearing(sf: SalesforceApi) -> None:
    error = single_error(await sf.post("/sobjects/Contact", json={"FirstName": "Ada"}), 400, "REQUIRED_FIELD_MISSING")
    assert error == {"message": "Required fields are missing: [LastName]", "errorCode": "REQUIRED_FIELD_MISSING",
                     "fields": ["LastName"]}
    contact_id = await sf.create("Contact", {"LastName": "Present"})
    single_error(await sf.patch(f"/sobjects/Contact/{contact_id}", json={"LastName": None}), 400,
                 "REQUIRED_FIELD_MISSING")


async def test_restricted_picklist(sf: SalesforceApi) -> None:
    response = await sf.post("/sobjects/Account", json={"Name": "Acme", "Rating": "Terrible"})
    error = single_error(response, 400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
    assert error["message"] == "Rating: bad value for restricted picklist field: Terrible"
    assert error["fields"] == ["Rating"]
    assert (await sf.post("/sobjects/Account", json={"Name": "Acme", "Rating": "Hot"})).status_code == 201


async def test_string_too_long(sf: SalesforceApi) -> None:
    response = await sf.post("/sobjects/Contact", json={"LastName": "x" * 81})
    error = single_error(response, 400, "STRING_TOO_LONG")
    assert error["fields"] == ["LastName"] and "max length=80" in error["message"]


async def test_malformed_id(sf: SalesforceApi) -> None:
    error = single_error(await sf.get("/sobjects/Account/001A0000006Vm9rAAA"), 400, "MALFORMED_ID")
    assert error["message"] == "Record ID: id value of incorrect type: 001A0000006Vm9rAAA"
    contact_id = await sf.create("Contact", {"LastName": "Wrong object"})
    single_error(await sf.get(f"/sobjects/Account/{contact_id}"), 400, "MALFORMED_ID")
    single_error(await sf.post("/sobjects/Contact", json={"LastName": "x", "AccountId": "not-an-id"}), 400,
                 "MALFORMED_ID")


async def test_invalid_field_for_insert_update(sf: SalesforceApi) -> None:
    response = await sf.post("/sobjects/Contact", json={"LastName": "x", "Name": "y", "CreatedDate": "2024-01-01"})
    error = single_error(response, 400, "INVALID_FIELD_FOR_INSERT_UPDATE")
    assert error["fields"] == ["Name", "CreatedDate"]
    assert error["message"].startswith("Unable to create fields: Name, CreatedDate.")


async def test_invalid_email_address(sf: SalesforceApi) -> None:
    error = single_error(await sf.post("/sobjects/Contact", json={"LastName": "x", "Email": "not an email"}), 400,
                         "INVALID_EMAIL_ADDRESS")
    assert error["message"] == "Email: invalid email address: not an email"


async def test_invalid_cross_reference_key(sf: SalesforceApi) -> None:
    missing_account = ids.to_18("001000000000042")
    single_error(await sf.post("/sobjects/Contact", json={"LastName": "x", "AccountId": missing_account}), 400,
                 "INVALID_CROSS_REFERENCE_KEY")
    contact_id = await sf.create("Contact", {"LastName": "Not an account"})
    single_error(await sf.post("/sobjects/Contact", json={"LastName": "x", "AccountId": contact_id}), 400,
                 "INVALID_CROSS_REFERENCE_KEY")


async def test_json_parser_error(sf: SalesforceApi) -> None:
    response = await sf.post("/sobjects/Account", content=b"{not json", headers={"Content-Type": "application/json"})
    single_error(response, 400, "JSON_PARSER_ERROR")
    response = await sf.post("/sobjects/Account", json={"Name": "x", "NumberOfEmployees": "many"})
    error = single_error(response, 400, "JSON_PARSER_ERROR")
    assert "Cannot deserialize instance of int from VALUE_STRING value many" in error["message"]


async def test_field_custom_validation_exception(sf: SalesforceApi) -> None:
    await sf.admin("POST", "/validation-rules", json={
        "object": "Opportunity", "condition": "Amount < 0", "message": "Amount cannot be negative",
        "field": "Amount"})
    body = {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-01", "Amount": -5}
    error = single_error(await sf.post("/sobjects/Opportunity", json=body), 400, "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    assert error["message"] == "Amount cannot be negative" and error["fields"] == ["Amount"]
    assert (await sf.post("/sobjects/Opportunity", json={**body, "Amount": 5})).status_code == 201


async def test_unable_to_lock_row_fault_is_retryable(sf: SalesforceApi) -> None:
    await sf.admin("POST", "/faults", json={"kind": "UNABLE_TO_LOCK_ROW", "method": "PATCH", "times": 1})
    contact_id = await sf.create("Contact", {"LastName": "Locked"})
    single_error(await sf.patch(f"/sobjects/Contact/{contact_id}", json={"Title": "x"}), 400, "UNABLE_TO_LOCK_ROW")
    assert (await sf.patch(f"/sobjects/Contact/{contact_id}", json={"Title": "x"})).status_code == 204


async def test_service_unavailable_and_latency_faults(sf: SalesforceApi) -> None:
    await sf.admin("POST", "/faults", json={"kind": "SERVICE_UNAVAILABLE", "pathContains": "/limits"})
    assert (await sf.get("/limits")).status_code == 503
    await sf.admin("POST", "/faults", json={"kind": "LATENCY", "latencyMs": 150})
    started = time.perf_counter()
    assert (await sf.get("/limits")).status_code == 200
    assert time.perf_counter() - started >= 0.15


async def test_invalid_type(sf: SalesforceApi) -> None:
    error = single_error(await sf.query("SELECT Id FROM Bogus"), 400, "INVALID_TYPE")
    assert "sObject type 'Bogus' is not supported." in error["message"]


async def test_invalid_query_locator(sf: SalesforceApi) -> None:
    single_error(await sf.get("/query/01g000000000000AAA-2"), 400, "INVALID_QUERY_LOCATOR")


async def test_all_or_none_operation_rolled_back(sf: SalesforceApi) -> None:
    response = await sf.post("/composite/sobjects", json={"allOrNone": True, "records": [
        {"attributes": {"type": "Account"}, "Name": "Would be kept"},
        {"attributes": {"type": "Account"}, "Name": "Bad", "Rating": "Terrible"}]})
    assert response.status_code == 200
    first, second = response.json()
    assert first == {"id": None, "success": False, "errors": [{
        "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "message": "Record rolled back because not all records were valid and the request was using AllOrNone "
                   "header", "fields": []}]}
    assert second["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    count = await sf.query("SELECT COUNT() FROM Account WHERE Name = 'Would be kept'")
    assert count.json()["totalSize"] == 0


async def test_exceeded_id_limit(sf: SalesforceApi) -> None:
    records = [{"attributes": {"type": "Account"}, "Name": f"n{i}"} for i in range(201)]
    error = single_error(await sf.post("/composite/sobjects", json={"records": records}), 400, "EXCEEDED_ID_LIMIT")
    assert error["message"] == "record limit reached. cannot submit more than 200 records into this call"
    await sf.admin("PUT", "/limits", json={"replicationIdLimit": 1})
    await sf.create("Account", {"Name": "one"})
    await sf.create("Account", {"Name": "two"})
    window = {"start": "2020-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}
    now = (await sf.admin("GET", "/state")).json()["now"]
    window["start"] = now[:11] + "00:00:00Z"
    single_error(await sf.get("/sobjects/Account/updated", params=window), 400, "EXCEEDED_ID_LIMIT")


async def test_unknown_route_and_method_use_salesforce_error_shape(sf: SalesforceApi) -> None:
    single_error(await sf.get("/no/such/resource"), 404, "NOT_FOUND")
    single_error(await sf.request("PUT", "/sobjects/Account"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize("url", [f"{API}/sobjects/Account/describe", f"{API}/limits", f"{API}/sobjects/Nope/describe",
                                 "/services/data", "/livez", "/services/oauth2/userinfo"])
async def test_every_response_carries_limit_info(sf: SalesforceApi, url: str) -> None:
    response = await sf.client.get(url, headers=sf.headers())
    assert response.status_code in (200, 404)
    assert response.headers["Sforce-Limit-Info"].startswith("api-usage=")


async def test_unable_to_lock_row_per_record_inside_a_collection(sf: SalesforceApi) -> None:
    await sf.admin("POST", "/faults", json={"kind": "UNABLE_TO_LOCK_ROW", "perRecord": True, "times": 1,
                                            "pathContains": "/composite/sobjects"})
    response = await sf.post("/composite/sobjects", json={"records": [
        {"attributes": {"type": "Account"}, "Name": "locked"}, {"attributes": {"type": "Account"}, "Name": "fine"}]})
    assert response.status_code == 200
    locked, fine = response.json()
    assert locked["success"] is False and locked["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert fine["success"] is True


_KEYS = st.sampled_from(["Name", "LastName", "Email", "AccountId", "Id", "attributes", "records", "allOrNone",
                         "NumberOfEmployees", "CloseDate", "Rating", "ids", "fields", "compositeRequest", "type",
                         "method", "url", "body", "referenceId", "operation", "object", "query"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_KEYS | st.text(max_size=6), children,
                                                                      max_size=4),
    max_leaves=10)
_WRITE_PATHS = ["/sobjects/Account", "/sobjects/Contact", "/composite/sobjects", "/composite",
                "/composite/sobjects/Contact", "/jobs/ingest", "/jobs/query"]


@pytest.mark.parametrize(("method", "path", "body", "code"), [
    ("PATCH", "/composite/sobjects", {"records": [None]}, "JSON_PARSER_ERROR"),
    ("PATCH", "/composite/sobjects", {"records": [{"attributes": {"type": ["Account"]}, "Id": "x"}]}, "INVALID_TYPE"),
    ("POST", "/composite/sobjects/Account", {"ids": True, "fields": ["Name"]}, "JSON_PARSER_ERROR"),
], ids=["update row not an object", "type not text", "retrieve ids not a list"])
async def test_collection_rows_of_the_wrong_type_are_refused_not_crashed(sf: SalesforceApi, method: str, path: str,
                                                                         body: dict, code: str) -> None:
    """Found by running the fuzz test below with 3,000 examples: each answered 500."""
    response = await sf.request(method, path, content=orjson.dumps(body), headers={"Content-Type": "application/json"})
    assert response.status_code < 500, response.text
    answer = response.json()
    errors = answer[0]["errors"] if "errors" in answer[0] else [answer[0]]
    assert (errors[0].get("statusCode") or errors[0].get("errorCode")) == code, answer


@pytest.mark.parametrize(("path", "body"), [
    ("/jobs/query", {"query": True}),
    ("/jobs/query", {"operation": ["query"], "query": "SELECT Id FROM Account"}),
    ("/jobs/query", {"query": "SELECT Id FROM Account", "columnDelimiter": ["COMMA"]}),
    ("/jobs/ingest", {"object": "Account", "operation": {"insert": 1}}),
    ("/jobs/ingest", {"object": "Account", "operation": "upsert", "externalIdFieldName": 7}),
], ids=["query not text", "operation a list", "delimiter a list", "operation an object", "external id a number"])
async def test_bulk_jobs_with_values_of_the_wrong_type_are_refused_as_invalid_jobs(sf: SalesforceApi, path: str,
                                                                                   body: dict) -> None:
    """Found by the fuzz test below: these reached the SOQL tokenizer or a set lookup and answered 500."""
    response = await sf.request("POST", path, content=orjson.dumps(body), headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()[0]["errorCode"] == "INVALIDJOB"


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(_WRITE_PATHS), method=st.sampled_from(["POST", "PATCH", "DELETE", "GET"]),
       body=_JSON, parameter=st.text(max_size=30))
async def test_arbitrary_input_never_causes_a_server_error(sf: SalesforceApi, path: str, method: str, body: object,
                                                          parameter: str) -> None:
    response = await sf.request(method, path, content=orjson.dumps(body), headers={"Content-Type": "application/json"},
                                params={"q": parameter, "ids": parameter, "fields": parameter})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert {"errorCode", "message"} <= set(response.json()[0])


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(condition=st.text(max_size=60))
async def test_arbitrary_where_clauses_fail_as_query_errors(sf: SalesforceApi, condition: str) -> None:
    response = await sf.query(f"SELECT Id FROM Account WHERE {condition}")
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()[0]["errorCode"] in ("MALFORMED_QUERY", "INVALID_FIELD", "INVALID_QUERY_FILTER_OPERATOR")


async def test_duplicates_detected_by_a_duplicate_rule(sf: SalesforceApi) -> None:
    await sf.admin("POST", "/duplicate-rules", json={"object": "Contact", "fields": ["Email"]})
    first = await sf.create("Contact", {"LastName": "A", "Email": "same@example.com"})
    response = await sf.post("/sobjects/Contact", json={"LastName": "B", "Email": "SAME@example.com"})
    error = single_error(response, 400, "DUPLICATES_DETECTED")
    assert error["message"] == "Use one of these records?"
    match = error["duplicateResult"]["matchResults"][0]
    assert [record["record"]["Id"] for record in match["matchRecords"]] == [first]
    allowed = await sf.post("/sobjects/Contact", json={"LastName": "B", "Email": "same@example.com"},
                            headers={"Sforce-Duplicate-Rule-Header": "allowSave=true"})
    assert allowed.status_code == 201
    again = await sf.post("/sobjects/Contact", json={"LastName": "C", "Email": "same@example.com"})
    assert again.status_code == 400  # the header applied to its own request only
