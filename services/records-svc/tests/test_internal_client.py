"""The shared internal client against the real records-svc: models, paging and quoting hold end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from crm_common.contracts.records import BulkUpsertOptions, RecordsClient, ServiceCallError
from crm_common.http import ServiceClient
from crm_common.settings import DEFAULT_INTERNAL_SECRET


@pytest.fixture
async def client(records_app_client: httpx.AsyncClient) -> AsyncIterator[RecordsClient]:
    transport = records_app_client._transport  # the in-process app, lifespan already running
    http = ServiceClient(base_url="http://records", secret=DEFAULT_INTERNAL_SECRET, caller="test",
                         transport=transport)
    yield RecordsClient(http, retries=1)


async def test_a_bulk_write_its_whole_journal_and_its_snapshots(client: RecordsClient, account_id: int) -> None:
    rows = [{"ref": i, "properties": {"email": f"journal{i}@client.example", "firstname": f"N{i}"}}
            for i in range(25)]
    options = BulkUpsertOptions(operation="UPSERT", idProperty="email", operationId="import:client-test")
    answer = await client.bulk_upsert(account_id, "contacts", options, rows)  # type: ignore[arg-type]
    assert (answer.created, answer.failed) == (25, 0)
    assert [r["status"] for r in answer.results] == ["CREATED"] * 25
    journal = [entry async for entry in client.journal(account_id, "import:client-test", page_size=4)]
    assert sorted(e["recordId"] for e in journal) == sorted(r["id"] for r in answer.results)
    assert {e["kind"] for e in journal} == {"CREATE"}

    snapshot = await client.snapshot(account_id, "contacts", answer.results[0]["id"])
    assert snapshot is not None and snapshot["properties"]["email"] == "journal0@client.example"
    assert await client.snapshot(account_id, "contacts", "999999999") is None
    # An id holding "/" or "?" is sent quoted: it never reads the record through another path or a query.
    for crafted in (f"{answer.results[0]['id']}/../1", f"{answer.results[0]['id']}?archived=true"):
        try:
            assert await client.snapshot(account_id, "contacts", crafted) is None
        except ServiceCallError as refused:
            assert refused.status == 400


async def test_a_refused_bulk_body_raises_the_one_error_type(client: RecordsClient, account_id: int) -> None:
    with pytest.raises(ServiceCallError) as raised:
        await client.bulk_upsert(account_id, "contacts", BulkUpsertOptions(idProperty="firstname"),
                                 [{"ref": 1, "properties": {"firstname": "x"}}])
    assert raised.value.status == 400 and not raised.value.transient
    assert "not a unique property" in raised.value.message
