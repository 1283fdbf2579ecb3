"""The internal clients' rules: what is retried and how long it waits, the one error type, quoted paths."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from crm_common.contracts.base import ServiceCallError, retry_after_seconds
from crm_common.contracts.records import RecordsClient
from crm_common.http import ServiceClient


def client_answering(answers: list[Callable[[httpx.Request], httpx.Response]], seen: list[httpx.Request],
                     **kw: int) -> RecordsClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1](request)

    http = ServiceClient(base_url="http://records", secret="s", caller="test", transport=httpx.MockTransport(handle))
    return RecordsClient(http, **kw)


def status(code: int, headers: dict[str, str] | None = None, **body: object) -> Callable[[httpx.Request],
                                                                                         httpx.Response]:
    return lambda request: httpx.Response(code, headers=headers, json=body or {"message": f"answered {code}"})


def unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


async def test_a_transient_conflict_waits_as_long_as_retry_after_says_then_succeeds() -> None:
    seen: list[httpx.Request] = []
    records = client_answering([status(409, {"Retry-After": "0.3"}, message="busy", category="CONFLICT"),
                                status(200, matches={"a@x.com": ["7"]})], seen)
    started = time.monotonic()
    assert await records.resolve(1, "contacts", "email", ["a@x.com"]) == {"a@x.com": ["7"]}
    assert len(seen) == 2 and time.monotonic() - started >= 0.3


async def test_a_refusal_is_not_retried_and_keeps_the_services_reason() -> None:
    seen: list[httpx.Request] = []
    records = client_answering([status(409, message="contact 1 was already merged into 2", category="CONFLICT")],
                               seen)
    with pytest.raises(ServiceCallError) as raised:
        await records.resolve(1, "contacts", "email", ["a@x.com"])
    assert len(seen) == 1
    error = raised.value
    assert (error.status, error.category, error.transient) == (409, "CONFLICT", False)
    assert error.to_hubspot().status == 409 and "already merged" in error.to_hubspot().message


async def test_an_unreachable_service_is_tried_again_then_reported_as_unavailable() -> None:
    seen: list[httpx.Request] = []
    records = client_answering([unreachable], seen, retries=3)
    with pytest.raises(ServiceCallError) as raised:
        await records.resolve(1, "contacts", "email", ["a@x.com"])
    assert len(seen) == 3
    assert raised.value.status == 503 and raised.value.transient
    assert raised.value.to_hubspot().status == 503 and "unreachable" in raised.value.to_hubspot().message


async def test_outages_then_success_and_a_5xx_answer_becomes_a_502_for_our_caller() -> None:
    seen: list[httpx.Request] = []
    records = client_answering([unreachable, status(503), status(200, matches={})], seen)
    assert await records.resolve(1, "contacts", "email", ["a@x.com"]) == {}
    assert len(seen) == 3
    seen.clear()
    failing = client_answering([status(500, message="internal error")], seen, retries=2)
    with pytest.raises(ServiceCallError) as raised:
        await failing.resolve(1, "contacts", "email", ["a@x.com"])
    assert len(seen) == 2 and raised.value.to_hubspot().status == 502


async def test_every_path_segment_is_quoted() -> None:
    seen: list[httpx.Request] = []
    records = client_answering([status(404)], seen)
    assert await records.snapshot(1, "contacts/../merges", "1?x=2#3") is None
    assert seen[0].url.raw_path == b"/internal/v1/records/contacts%2F..%2Fmerges/1%3Fx%3D2%233/snapshot"
    seen.clear()
    await client_answering([status(200, results=[])], seen).journal_page(1, "import:1/../../x")
    assert seen[0].url.raw_path.startswith(b"/internal/v1/operations/import%3A1%2F..%2F..%2Fx/journal?")


async def test_the_journal_is_read_page_after_page_to_the_end() -> None:
    entries = [{"id": str(i), "recordId": "9", "objectTypeId": "0-1", "kind": "UPDATE", "oldValues": None,
                "newValues": {"n": str(i)}, "association": None, "createdAt": None, "undoneAt": None}
               for i in range(1, 8)]

    def page(request: httpx.Request) -> httpx.Response:
        after, limit = int(request.url.params["after"]), int(request.url.params["limit"])
        rest = [e for e in entries if int(e["id"]) > after]
        body: dict[str, object] = {"results": rest[:limit]}
        if len(rest) > limit:
            body["paging"] = {"next": {"after": rest[limit - 1]["id"]}}
        return httpx.Response(200, json=body)

    seen: list[httpx.Request] = []
    records = client_answering([page], seen)
    read = [entry["id"] async for entry in records.journal(1, "import:5", page_size=3)]
    assert read == [str(i) for i in range(1, 8)]
    assert len(seen) == 3


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 55 <= (retry_after_seconds(later) or 0) <= 61
