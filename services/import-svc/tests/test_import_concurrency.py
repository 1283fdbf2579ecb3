"""Imports racing each other: one company per domain however many race on it, and no account starves another."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from crm_common.testing import signed_headers

from .conftest import contacts_request, search_all, start_import, wait_final

DOMAINS = 50


def domain_file(rows: int, tag: str) -> bytes:
    return ("Email,Company domain\n" + "".join(
        f"p{i}@{tag}.example,co{i % DOMAINS}.{tag}.example\n" for i in range(rows))).encode()


REQUEST = {"name": "race", "files": [{"fileName": "c.csv", "fileImportPage": {"hasHeader": True, "columnMappings": [
    {"columnObjectTypeId": "0-1", "columnName": "Email", "propertyName": "email"},
    {"columnObjectTypeId": "0-2", "columnName": "Company domain", "propertyName": "domain"}]}}]}


async def companies_per_contact(records: httpx.AsyncClient, contact_ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for start in range(0, len(contact_ids), 1000):
        answer = await records.post("/crm/v4/associations/contacts/companies/batch/read",
                                    json={"inputs": [{"id": i} for i in contact_ids[start:start + 1000]]})
        assert answer.status_code in (200, 207), answer.text
        for item in answer.json()["results"]:
            out[str(item["from"]["id"])] = len({str(t["toObjectId"]) for t in item["to"]})
    return out


async def test_imports_racing_on_the_same_domains_create_one_company_each(
        import_app_factory: Any, private_database: str, records_app: Any, new_account: Callable[[], int]) -> None:
    """Four imports of the same rows at once, three rounds: 50 domains are 50 companies, one per contact."""
    rows = 600
    async with import_app_factory(database_url=private_database, worker_batch_size=100, worker_concurrency=4,
                                  max_processing_per_account=4) as service:
        for round_ in range(3):
            account_id = new_account()
            service.headers.update(signed_headers(account_id))
            content = domain_file(rows, f"race{round_}")
            started = await asyncio.gather(*(start_import(service, REQUEST, {"c.csv": content}) for _ in range(4)))
            finished = await asyncio.gather(*(wait_final(service, s.json()["id"], timeout=120) for s in started))
            assert {f["state"] for f in finished} == {"DONE"}
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=records_app), base_url="http://records",
                                         headers=signed_headers(account_id), timeout=60) as records:
                companies = await search_all(records, "companies", ["domain"])
                contacts = await search_all(records, "contacts", ["email"])
                assert len(companies) == DOMAINS, f"round {round_}: {len(companies)} companies"
                assert len({c["properties"]["domain"] for c in companies}) == DOMAINS
                assert len(contacts) == rows
                linked = await companies_per_contact(records, [c["id"] for c in contacts])
                assert set(linked.values()) == {1}, f"round {round_}: contacts with several companies"
            # Between them, the four imports created each record once.
            assert sum(f["metadata"]["counters"]["CREATED_OBJECTS"] for f in finished) == rows + DOMAINS


async def test_one_accounts_imports_never_starve_another_account(import_app_factory: Any, private_database: str,
                                                                 account_id: int, new_account: Callable[[], int]) -> None:
    """Account A fills both worker slots with three long imports; account B's small one still runs soon."""
    big = contacts_request([("Email", "email")])
    async with import_app_factory(database_url=private_database, worker_batch_size=10, worker_concurrency=2) as service:
        service.headers.update(signed_headers(account_id))
        heavy = [(await start_import(service, big, {"c.csv": ("Email\n" + "".join(
            f"a{n}-{i}@busy.example\n" for i in range(400))).encode()})).json()["id"] for n in range(3)]
        for _ in range(200):  # both slots taken by account A
            states = [(await service.get(f"/crm/v3/imports/{i}")).json()["state"] for i in heavy]
            if states.count("PROCESSING") >= 2:
                break
            await asyncio.sleep(0.05)
        other = signed_headers(new_account())
        service.headers.update(other)
        small_id = (await start_import(service, big, {"c.csv": b"Email\nb@patient.example\n"})).json()["id"]
        done = await wait_final(service, small_id, timeout=120)
        assert done["state"] == "DONE"
        service.headers.update(signed_headers(account_id))
        states = [(await service.get(f"/crm/v3/imports/{i}")).json()["state"] for i in heavy]
        # Without turns, B would wait for two of A's imports to finish (FIFO after the first).
        assert states.count("DONE") <= 1, states
        for i in heavy:
            await wait_final(service, i, timeout=180)
