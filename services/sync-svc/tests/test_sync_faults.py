"""Faults during a sync, values Salesforce refuses, the API budget, and what the status and events say."""

from __future__ import annotations

import asyncpg
import httpx
from crm_common.settings import to_plain_url

from .helpers import admin, connect_and_start, eventually, queued, run, sf_query, wait_queued

BASE = "/corral/v1/salesforce"


async def make_contacts(sync: httpx.AsyncClient, records: httpx.AsyncClient, count: int, prefix: str) -> list[str]:
    response = await records.post("/crm/v3/objects/contacts/batch/create", json={"inputs": [
        {"properties": {"email": f"{prefix}{i}@example.com", "lastname": f"{prefix}{i}"}} for i in range(count)]})
    assert response.status_code in (200, 201), response.text
    await wait_queued(sync, count)
    return [r["id"] for r in response.json()["results"]]


async def errors(sync: httpx.AsyncClient, **params: str) -> list[dict]:
    response = await sync.get(f"{BASE}/errors", params=params)
    assert response.status_code == 200, response.text
    return response.json()["results"]


async def test_request_limit_exceeded_pauses_and_catches_up(sync, records, salesforce):
    await connect_and_start(sync, ("contacts", "Contact"))
    await make_contacts(sync, records, 3, "limit")
    await admin(salesforce, "POST", "/faults", json={"kind": "REQUEST_LIMIT_EXCEEDED", "times": 1})
    summary = await run(sync)
    assert summary["stopped"] == "REQUEST_LIMIT_EXCEEDED"
    status = (await sync.get(f"{BASE}/sync/status")).json()
    assert status["state"] == "PAUSED_API_LIMIT" and status["queuedChanges"] == 3
    [error] = await errors(sync, category="API_LIMIT")
    assert error["code"] == "REQUEST_LIMIT_EXCEEDED" and "TotalRequests" in error["message"]
    summary = await run(sync)  # a person asks: it tries again, the org answers, the sync resumes
    assert summary["outbound"]["contacts"]["created"] == 3
    assert (await sync.get(f"{BASE}/sync/status")).json()["state"] == "RUNNING"
    assert await errors(sync, category="API_LIMIT") == []
    assert len(await sf_query(salesforce, "SELECT Id FROM Contact")) == 3


async def test_locked_rows_unavailable_and_expired_session_lose_nothing(sync, sync_app, records, salesforce):
    await connect_and_start(sync, ("contacts", "Contact"))
    await make_contacts(sync, records, 6, "lock")
    await admin(salesforce, "POST", "/faults", json={"kind": "UNABLE_TO_LOCK_ROW", "perRecord": True, "times": 4,
                                                     "pathContains": "/composite/sobjects"})
    await admin(salesforce, "POST", "/faults", json={"kind": "SERVICE_UNAVAILABLE", "times": 1,
                                                     "pathContains": "/composite"})
    await admin(salesforce, "POST", "/tokens/expire")
    summary = await run(sync)
    assert summary["outbound"]["contacts"]["created"] == 6
    rows = await sf_query(salesforce, "SELECT Id, Email FROM Contact")
    assert len(rows) == 6 and len({r["Email"] for r in rows}) == 6
    # Rows still locked after the retries wait in the queue and go once the lock is gone, never twice.
    await make_contacts(sync, records, 2, "stuck")
    await admin(salesforce, "POST", "/faults", json={"kind": "UNABLE_TO_LOCK_ROW", "perRecord": True, "times": -1,
                                                     "pathContains": "/composite/sobjects"})
    summary = await run(sync)
    assert summary["outbound"]["contacts"]["failed"] == 2
    transient = await errors(sync, category="CONNECTION")
    assert len(transient) == 2 and all(e["transient"] and e["code"] == "UNABLE_TO_LOCK_ROW" for e in transient)
    await admin(salesforce, "DELETE", "/faults")
    conn = await asyncpg.connect(to_plain_url(sync_app.database_url))
    try:
        await conn.execute("UPDATE outbound_queue SET next_attempt_at = now()")
    finally:
        await conn.close()
    await run(sync)
    rows = await sf_query(salesforce, "SELECT Id, Email FROM Contact")
    assert len(rows) == 8 and len({r["Email"] for r in rows}) == 8
    assert [e for e in await errors(sync) if e["code"] == "UNABLE_TO_LOCK_ROW"] == []


async def test_refused_values_land_in_errors_by_category_and_clear_when_fixed(sync, records, salesforce):
    await connect_and_start(sync, ("contacts", "Contact"))
    await records.post("/crm/v3/properties/contacts", json={
        "name": "tier", "label": "Tier", "type": "enumeration", "fieldType": "select", "groupName": "contactinformation",
        "options": [{"label": "Gold", "value": "Gold"}, {"label": "Tin", "value": "Tin"}]})
    await admin(salesforce, "POST", "/objects/Contact/fields", json={
        "name": "Tier__c", "type": "picklist", "restrictedPicklist": True, "picklistValues": ["Gold"]})
    mapped = await sync.post(f"{BASE}/objects/contacts/mappings",
                             json={"property": "tier", "salesforceField": "Tier__c", "syncRule": "TWO_WAY"})
    assert mapped.status_code == 201, mapped.text
    await admin(salesforce, "POST", "/validation-rules", json={
        "object": "Contact", "condition": "Title = 'Forbidden'", "message": "Title may not be Forbidden"})
    await admin(salesforce, "POST", "/duplicate-rules", json={"object": "Contact", "fields": ["LastName", "Phone"]})
    await admin(salesforce, "POST", "/records/Contact", json={"fields": {"LastName": "Twin", "Phone": "12345"}})
    cases = {
        "picklist@example.com": ({"lastname": "P", "tier": "Tin"}, "PROPERTY_VALUES",
                                 "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", {"tier": "Gold"}),
        "long@example.com": ({"lastname": "L", "jobtitle": "x" * 200}, "PROPERTY_VALUES", "STRING_TOO_LONG",
                             {"jobtitle": "short"}),
        "rule@example.com": ({"lastname": "R", "jobtitle": "Forbidden"}, "CUSTOM_CODE",
                             "FIELD_CUSTOM_VALIDATION_EXCEPTION", {"jobtitle": "Allowed"}),
        "dup@example.com": ({"lastname": "Twin", "phone": "12345"}, "DUPLICATES", "DUPLICATES_DETECTED",
                            {"lastname": "Unique"}),
        "required@example.com": ({"firstname": "NoLast"}, "PROPERTY_VALUES", "REQUIRED_FIELD_MISSING",
                                 {"lastname": "Given"}),
    }
    ids = {}
    for email, (properties, *_rest) in cases.items():
        response = await records.post("/crm/v3/objects/contacts", json={"properties": {"email": email, **properties}})
        ids[email] = response.json()["id"]

    async def all_queued() -> bool:
        return await queued(sync) == len(cases)

    await eventually(all_queued)
    summary = await run(sync)
    assert summary["outbound"]["contacts"]["failed"] == 5
    found = {e["recordId"]: e for e in await errors(sync)}
    for email, (_, category, code, _) in cases.items():
        error = found[ids[email]]
        assert (error["category"], error["code"], error["direction"]) == (category, code, "OUTBOUND"), error
        assert error["message"]
    assert "Title may not be Forbidden" in found[ids["rule@example.com"]]["message"]
    assert [e["recordId"] for e in await errors(sync, category="CUSTOM_CODE")] == [ids["rule@example.com"]]
    for email, (*_, fix) in cases.items():
        await records.patch(f"/crm/v3/objects/contacts/{ids[email]}", json={"properties": fix})
    await eventually(all_queued)
    summary = await run(sync)
    assert summary["outbound"]["contacts"]["created"] == 5
    assert await errors(sync) == []
    assert len(await sf_query(salesforce, "SELECT Id FROM Contact WHERE Email != null")) == 5
    retry = await sync.post(f"{BASE}/errors/999999/retry")
    assert retry.status_code == 404


async def test_budget_pauses_at_the_cap_and_resumes_when_the_window_moves(sync, sync_app, records, salesforce,
                                                                         account_id):
    await connect_and_start(sync, ("contacts", "Contact"))
    used = (await sync.get(f"{BASE}/sync/status")).json()["apiCalls"]["last24h"]
    assert used >= 2  # connect and start called /limits
    budget = await sync.put(f"{BASE}/budget", json={"dailyApiCalls": used})
    assert budget.json()["apiCalls"] == {"last24h": used, "dailyBudget": used, "remaining": 0}
    await make_contacts(sync, records, 2, "budget")
    summary = await run(sync)
    assert summary["skipped"] == "PAUSED_API_LIMIT" and summary["apiCalls"] == 0
    status = (await sync.get(f"{BASE}/sync/status")).json()
    assert status["state"] == "PAUSED_API_LIMIT" and status["queuedChanges"] == 2
    assert status["errors"] == {"API_LIMIT": 1}
    assert (await sync.put(f"{BASE}/budget", json={"dailyApiCalls": 0})).status_code == 400
    # A day later the calls leave the rolling window.
    conn = await asyncpg.connect(to_plain_url(sync_app.database_url))
    try:
        await conn.execute("UPDATE api_calls SET minute = minute - interval '25 hours' WHERE account_id = $1",
                           account_id)
    finally:
        await conn.close()
    summary = await run(sync)
    assert summary["outbound"]["contacts"]["created"] == 2
    status = (await sync.get(f"{BASE}/sync/status")).json()
    assert status["state"] == "RUNNING" and status["errors"] == {}
    assert status["apiCalls"]["last24h"] == summary["apiCalls"]


async def test_internal_status_answers_what_merge_svc_asks(sync):
    assert (await sync.get("/internal/v1/sync/status", params={"objectType": "companies"})).json()["syncEnabled"] \
        is False
    await connect_and_start(sync, ("companies", "Account"))
    for name in ("companies", "company", "0-2"):
        answer = (await sync.get("/internal/v1/sync/status", params={"objectType": name})).json()
        assert answer["syncEnabled"] is True
    assert (await sync.get("/internal/v1/sync/status", params={"objectType": "deals"})).json()["syncEnabled"] is False
    await sync.put(f"{BASE}/objects/companies", json={"salesforceObject": "Account", "enabled": False})
    assert (await sync.get("/internal/v1/sync/status", params={"objectType": "companies"})).json()["syncEnabled"] \
        is False
