"""Routing through the real gateway process, pass-through, request ids, rate limits, failures."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid

import httpx
import pytest

from .test_gateway_auth import assert_hubspot_error

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.mark.parametrize(
    ("method", "path", "service"),
    [
        ("POST", "/crm/v3/objects/contacts/merge", "merges"),
        ("POST", "/crm/v3/imports/", "imports"),
        ("GET", "/crm/v3/imports", "imports"),
        ("GET", "/crm/v3/imports/", "imports"),
        ("GET", "/crm/v3/imports/5/errors", "imports"),
        ("POST", "/corral/v1/capture/vcard", "imports"),
        ("GET", "/corral/v1/merges/1", "merges"),
        ("GET", "/corral/v1/duplicates", "merges"),
        ("GET", "/corral/v1/sync/connections/1", "sync"),
        ("GET", "/crm/v3/objects/contacts/1", "records"),
        ("GET", "/crm/v3/properties/contacts", "records"),
        ("GET", "/crm-object-schemas/v3/schemas", "records"),
        ("GET", "/crm/v4/objects/contacts/1/associations/companies", "records"),
        ("GET", "/crm/associations/v4/contacts/companies/labels", "records"),
        ("POST", "/crm/v3/associations/contacts/companies/batch/read", "records"),
        ("GET", "/crm/v3/pipelines/deals", "records"),
        ("GET", "/corral/v1/records/contacts/1/history", "records"),
    ],
)
async def test_each_prefix_reaches_its_service(gateway, client, make_token, method, path, service) -> None:
    token = await make_token()
    response = await client.request(method, f"{gateway.url}{path}", headers=token.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["service"] == service
    if "path" in body:  # POST /crm/v3/imports reaches the imports echo's upload route instead
        # Services serve a trailing slash as the same route (HubSpot does): the path arrives without it.
        assert (body["method"], body["path"]) == (method, path.rstrip("/"))


@pytest.mark.parametrize("path", ["/internal/records/apply-merge", "/internal/merges/plan", "/nope",
                                  "/crm/v3/unknown/thing"])
async def test_internal_and_unknown_paths_are_404(gateway, client, make_token, path) -> None:
    token = await make_token()
    for headers in (token.headers, {}):
        response = await client.post(f"{gateway.url}{path}", headers=headers)
        if path.startswith("/internal") or headers:
            assert_hubspot_error(response, 404, "OBJECT_NOT_FOUND")
            assert "service" not in response.json()
        else:
            assert response.status_code == 401  # unknown paths ask for credentials first


async def test_method_query_body_status_and_headers_pass_through(gateway, client, make_token) -> None:
    token = await make_token()
    response = await client.patch(
        f"{gateway.url}/crm/v3/objects/contacts/7",
        params=[("properties", "email"), ("properties", "firstname"), ("status", "201"),
                ("location", "/crm/v3/objects/contacts/7"), ("retry_after", "3"), ("q", "a b&c")],
        headers={**token.headers, "X-Custom": "kept", "Content-Type": "application/json"},
        content=b'{"properties":{"email":"a@b.c"}}',
    )
    assert response.status_code == 201
    assert response.headers["location"] == "/crm/v3/objects/contacts/7"
    assert response.headers["retry-after"] == "3"
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["method"] == "PATCH"
    assert body["query"] == ("properties=email&properties=firstname&status=201&"
                             "location=%2Fcrm%2Fv3%2Fobjects%2Fcontacts%2F7&retry_after=3&q=a+b%26c")
    assert json.loads(body["body"]) == {"properties": {"email": "a@b.c"}}
    assert body["headers"]["x-custom"] == "kept"
    assert body["headers"]["content-type"] == "application/json"
    assert "authorization" not in body["headers"]
    assert body["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert body["headers"]["x-forwarded-host"] == gateway.url.removeprefix("http://")
    assert body["headers"]["host"] != body["headers"]["x-forwarded-host"]


async def test_request_id_is_propagated_and_is_the_correlation_id(gateway, client, make_token) -> None:
    token = await make_token()
    rid = f"client-{uuid.uuid4()}"
    ok = await client.get(f"{gateway.url}/crm/v3/objects/contacts", headers={**token.headers, "X-Request-Id": rid})
    assert ok.headers["x-request-id"] == rid
    assert ok.json()["headers"]["x-request-id"] == rid  # the service logs under the same id
    assert ok.headers.get_list("x-request-id") == [rid]

    refused = await client.get(f"{gateway.url}/crm/v3/objects/contacts", headers={"X-Request-Id": rid})
    assert refused.json()["correlationId"] == rid

    insane = await client.get(f"{gateway.url}/crm/v3/objects/contacts",
                              headers={**token.headers, "X-Request-Id": "bad id\twith junk" + "x" * 200})
    fresh = insane.headers["x-request-id"]
    assert UUID_RE.fullmatch(fresh) and insane.json()["headers"]["x-request-id"] == fresh

    generated = await client.get(f"{gateway.url}/crm/v3/objects/contacts", headers=token.headers)
    assert UUID_RE.fullmatch(generated.headers["x-request-id"])


async def test_rolling_rate_limit(gateway, client, make_token) -> None:
    token = await make_token(rate_limit=3)
    url = f"{gateway.url}/crm/v3/objects/contacts"
    remaining = []
    for _ in range(3):
        response = await client.get(url, headers=token.headers)
        assert response.status_code == 200
        assert response.headers["X-HubSpot-RateLimit-Max"] == "3"
        assert response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert response.headers["X-HubSpot-RateLimit-Daily"] == "1000000"
        remaining.append(response.headers["X-HubSpot-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]

    limited = await client.get(url, headers=token.headers)
    assert limited.status_code == 429
    body = limited.json()
    rid = limited.headers["x-request-id"]
    assert body == {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": rid,
        "category": "RATE_LIMITS",
        "policyName": "TEN_SECONDLY_ROLLING",
        "requestId": rid,
    }
    assert 1 <= int(limited.headers["Retry-After"]) <= 10
    assert limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert limited.headers["X-HubSpot-RateLimit-Daily-Remaining"] == str(1_000_000 - 3)

    other = await make_token(rate_limit=3)  # limits are per token
    assert (await client.get(url, headers=other.headers)).status_code == 200


async def test_daily_limit_and_unlimited_tokens(gateway, client, make_token) -> None:
    url = f"{gateway.url}/crm/v3/objects/contacts"
    daily = await make_token(rate_limit=0, daily_limit=2)
    assert [(await client.get(url, headers=daily.headers)).status_code for _ in range(3)] == [200, 200, 429]
    limited = await client.get(url, headers=daily.headers)
    assert limited.json()["policyName"] == "DAILY"
    assert limited.json()["message"] == "You have reached your daily limit."
    assert 1 <= int(limited.headers["Retry-After"]) <= 86_400
    assert "X-HubSpot-RateLimit-Max" not in limited.headers

    unlimited = await make_token(rate_limit=0, daily_limit=0)
    statuses = {(await client.get(url, headers=unlimited.headers)).status_code for _ in range(250)}
    assert statuses == {200}  # 250 > the default 190 per 10 s


async def test_backend_down_is_503_naming_the_service(degraded_gateway, client, make_token) -> None:
    token = await make_token()
    response = await client.get(f"{degraded_gateway.url}/corral/v1/sync/connections", headers=token.headers)
    body = assert_hubspot_error(response, 503, "SERVICE_UNAVAILABLE")
    assert "sync" in body["message"]
    ok = await client.get(f"{degraded_gateway.url}/crm/v3/objects/contacts", headers=token.headers)
    assert ok.status_code == 200


async def test_backend_timeout_is_504(degraded_gateway, client, make_token) -> None:
    token = await make_token()
    response = await client.get(f"{degraded_gateway.url}/crm/v3/objects/contacts", params={"sleep": "1.5"},
                                headers=token.headers)
    body = assert_hubspot_error(response, 504, "GATEWAY_TIMEOUT")
    assert "records" in body["message"]


async def test_access_log_line(gateway, client, make_token) -> None:
    token = await make_token()
    rid = f"log-{uuid.uuid4()}"
    await client.get(f"{gateway.url}/crm/v3/objects/contacts", headers={**token.headers, "X-Request-Id": rid})
    deadline = time.monotonic() + 5  # the line is written just after the response is sent
    while True:
        lines = [json.loads(line) for line in gateway.log_lines() if rid in line]
        access = [line for line in lines if line.get("event") == "request"]
        if access or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert len(access) == 1
    entry = access[0]
    assert (entry["method"], entry["path"], entry["status"], entry["account_id"], entry["request_id"]) == (
        "GET", "/crm/v3/objects/contacts", 200, token.record.account_id, rid)
    assert entry["duration_ms"] >= 0


@pytest.mark.parametrize("raw_path", [
    "/crm/v3/objects/%2e%2e/%2e%2e/%2e%2e/internal/records/apply-merge",
    "/crm/v3/objects/contacts%2F..%2F..%2F..%2Finternal%2Frecords%2Fapply-merge",
])
async def test_dot_segments_never_reach_a_service(gateway, client, make_token, raw_path) -> None:
    token = await make_token()
    url = httpx.URL(gateway.url).copy_with(raw_path=raw_path.encode())
    response = await client.get(url, headers=token.headers)
    assert_hubspot_error(response, 404, "OBJECT_NOT_FOUND")
    assert "service" not in response.json()


async def test_encoded_slash_in_an_id_is_forwarded_encoded(gateway, client, make_token) -> None:
    token = await make_token()
    url = httpx.URL(gateway.url).copy_with(raw_path=b"/crm/v3/objects/contacts/a%2Fb")
    response = await client.get(url, headers=token.headers)
    assert response.status_code == 200
    assert response.json()["path"] == "/crm/v3/objects/contacts/a/b"  # decoded by the service, one segment raw
