"""What the import relies on from records-svc's internal API, checked directly."""

from __future__ import annotations

import httpx
from crm_common.contracts.records import split_by_key


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


def test_parallel_parts_keep_every_row_of_one_key_together_and_in_order() -> None:
    rows = [{"ref": i, "properties": {"email": f"p{i % 700}@x.com" if i % 3 else f"P{i % 700}@X.COM "}}
            for i in range(5_000)]
    rows += [{"ref": 10_000 + i, "properties": {"firstname": "no key"}} for i in range(100)]
    parts = split_by_key(rows, "email", 2)
    assert len(parts) == 2 and sorted(r["ref"] for p in parts for r in p) == [r["ref"] for r in rows]
    owner = {}
    for index, part in enumerate(parts):
        assert [r["ref"] for r in part] == sorted(r["ref"] for r in part)  # file order kept inside a part
        for row in part:
            email = row["properties"].get("email")
            if email:
                assert owner.setdefault(email.strip().lower(), index) == index
    assert split_by_key(rows[:1_500], "email", 2) == [rows[:1_500]]  # too small to split
