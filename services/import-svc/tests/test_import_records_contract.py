"""What the import relies on from records-svc's internal API, checked directly."""

from __future__ import annotations

import httpx


async def test_records_bulk_creates_persist_with_a_warm_catalog(records: httpx.AsyncClient) -> None:
    """With a cached catalog, created rows were once reported but never inserted (fixed in 37cb2e9)."""
    for name in ("First", "Second", "Third"):
        answer = await records.post("/internal/v1/records/companies/bulk-upsert",
                                    json={"operation": "UPSERT", "rows": [{"ref": 1, "properties": {"name": name}}]})
        assert answer.status_code == 200
        (result,) = answer.json()["results"]
        assert result["status"] == "CREATED"
        read = await records.get(f"/crm/v3/objects/companies/{result['id']}")
        assert read.status_code == 200, f"{name}: reported CREATED as {result['id']} but not found"
