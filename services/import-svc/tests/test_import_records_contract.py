"""What the import relies on from records-svc's internal API, checked directly."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.xfail(reason="records-svc: with a warm catalog cache, bulk-upsert's staged rows are lost (COPY runs "
                          "before the transaction begins); conftest works around it by disabling the cache",
                   strict=False)
async def test_records_bulk_creates_persist_with_a_warm_catalog(records: httpx.AsyncClient) -> None:
    from records_svc import catalog

    saved = catalog.CATALOG_TTL_SECONDS
    catalog.CATALOG_TTL_SECONDS = 30.0
    try:
        for name in ("First", "Second"):
            answer = await records.post("/internal/v1/records/companies/bulk-upsert",
                                        json={"operation": "UPSERT", "rows": [{"ref": 1, "properties": {"name": name}}]})
            assert answer.status_code == 200
            (result,) = answer.json()["results"]
            assert result["status"] == "CREATED"
            read = await records.get(f"/crm/v3/objects/companies/{result['id']}")
            assert read.status_code == 200, f"{name}: reported CREATED as {result['id']} but not found"
    finally:
        catalog.CATALOG_TTL_SECONDS = saved
