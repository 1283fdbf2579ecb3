"""aiosalesforce (async, httpx) against the in-process app through httpx.ASGITransport."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiosalesforce import ClientCredentialsFlow, Salesforce
from aiosalesforce.exceptions import DuplicatesDetectedError, NotFoundError, SalesforceError
from fastapi import FastAPI

from .conftest import BASE_URL, CLIENT_ID, CLIENT_SECRET, SalesforceApi


@pytest.fixture
async def aio_sf(emulator_app: FastAPI) -> AsyncIterator[Salesforce]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator_app)) as client:
        yield Salesforce(client, base_url=BASE_URL, auth=ClientCredentialsFlow(CLIENT_ID, CLIENT_SECRET),
                         version="60.0")


async def test_query_iterates_every_page(aio_sf: Salesforce, sf: SalesforceApi) -> None:
    for number in range(5):
        await sf.create("Lead", {"LastName": f"Lead {number}", "Company": "Acme"})
    names = [record["LastName"] async for record in
             aio_sf.query("SELECT Id, LastName FROM Lead WHERE Company = 'acme' ORDER BY LastName")]
    assert names == [f"Lead {number}" for number in range(5)]


async def test_crud_and_upsert(aio_sf: Salesforce, sf: SalesforceApi) -> None:
    await sf.admin("POST", "/objects/Account/fields",
                   json={"name": "Erp_Id__c", "type": "string", "externalId": True, "unique": True})
    account_id = await aio_sf.sobject.create("Account", {"Name": "Async Inc"})
    record = await aio_sf.sobject.get("Account", account_id, fields=["Name", "Owner.Username"])
    assert record["Name"] == "Async Inc"
    assert record["Owner"]["Username"] == "integration@corral-emulator.example"
    await aio_sf.sobject.update("Account", account_id, {"Erp_Id__c": "ERP-1"})
    upserted = await aio_sf.sobject.upsert("Account", "ERP-1", external_id_field="Erp_Id__c",
                                           data={"Name": "Async Renamed"})
    assert upserted.id == account_id and upserted.created is False
    created = await aio_sf.sobject.upsert("Account", "ERP-2", external_id_field="Erp_Id__c", data={"Name": "New"})
    assert created.created is True
    await aio_sf.sobject.delete("Account", account_id)
    with pytest.raises(NotFoundError):
        await aio_sf.sobject.get("Account", account_id)


async def test_composite_with_references(aio_sf: Salesforce) -> None:
    async with aio_sf.composite(all_or_none=True) as composite:
        account = composite.sobject.create("Account", {"Name": "Composite Co"})
        # str(): aiosalesforce's Reference is a str subclass whose raw value lacks the @{...} wrapper, and
        # orjson serialises that raw value, so the reference must be rendered explicitly.
        contact = composite.sobject.create("Contact", {"LastName": "Ref", "AccountId": str(account.reference.id)})
        lookup = composite.query("SELECT Account.Name FROM Contact WHERE LastName = 'Ref'")
    assert account.status_code == 201 and contact.status_code == 201
    assert lookup.records[0]["Account"]["Name"] == "Composite Co"


async def test_composite_all_or_none_rolls_back(aio_sf: Salesforce, sf: SalesforceApi) -> None:
    async with aio_sf.composite(all_or_none=True) as composite:
        good = composite.sobject.create("Account", {"Name": "Rolled Back"})
        bad = composite.sobject.create("Contact", {"FirstName": "No last name"})
    assert bad.status_code == 400 and good.status_code == 400
    assert good.response_body[0]["errorCode"] == "PROCESSING_HALTED"
    count = await sf.query("SELECT COUNT() FROM Account WHERE Name = 'Rolled Back'")
    assert count.json()["totalSize"] == 0


async def test_reauthenticates_after_server_side_expiry(aio_sf: Salesforce, sf: SalesforceApi) -> None:
    await sf.create("Account", {"Name": "Before expiry"})
    assert [r async for r in aio_sf.query("SELECT Id FROM Account WHERE Name = 'Before expiry'")]
    await sf.admin("POST", "/tokens/expire")
    rows = [r async for r in aio_sf.query("SELECT Id FROM Account WHERE Name = 'Before expiry'")]
    assert len(rows) == 1


async def test_errors_surface_as_client_exceptions(aio_sf: Salesforce) -> None:
    with pytest.raises(SalesforceError) as raised:
        await aio_sf.sobject.create("Contact", {"LastName": "x" * 81})
    assert raised.value.error_code == "STRING_TOO_LONG"


async def test_duplicates_detected_parse_into_client_exception(aio_sf: Salesforce, sf: SalesforceApi) -> None:
    await sf.admin("POST", "/duplicate-rules", json={"object": "Lead", "fields": ["Email", "Company"]})
    original = await aio_sf.sobject.create("Lead", {"LastName": "A", "Company": "Acme", "Email": "a@acme.test"})
    with pytest.raises(DuplicatesDetectedError) as raised:
        await aio_sf.sobject.create("Lead", {"LastName": "B", "Company": "ACME", "Email": "a@acme.test"})
    assert [duplicate["id"] for duplicate in raised.value.duplicates] == [original]
