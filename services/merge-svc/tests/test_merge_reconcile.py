"""A merge left PENDING (merge-svc stopped mid-merge) is settled from records-svc's journal."""

from __future__ import annotations

from typing import Any

import httpx

from crm_common.db import transaction
from merge_svc import repository
from merge_svc.reconcile import reconcile_pending

from .helpers import make, next_event, read, subscribed


async def pending_merge(runtime: Any, account_id: int, records: httpx.AsyncClient, primary: str,
                        secondary: str) -> int:
    """What merge-svc has committed when it dies right after asking records-svc to apply."""
    snaps = {role: (await records.get(f"/internal/v1/records/contacts/{rid}/snapshot")).json()
             for role, rid in (("PRIMARY", primary), ("SECONDARY", secondary))}
    async with transaction(runtime.sessionmaker) as session:
        return await repository.insert_pending(
            session, account_id=account_id, object_type_id="0-1", object_type="contacts",
            primary_id=int(primary), secondary_ids=[int(secondary)], properties_to_keep={},
            plan={"properties": {}, "decisions": {}}, merges_involved=1, snapshots=list(snaps.items()))


async def test_pending_merges_are_settled_applied_or_failed(merges: httpx.AsyncClient, records: httpx.AsyncClient,
                                                            merge_app: Any, account_id: int) -> None:
    runtime = merge_app.runtime
    a, b, c, d = [await make(records, "contacts", email=f"rc{i}@example.com") for i in range(4)]
    applied_id = await pending_merge(runtime, account_id, records, a, b)
    applied = await records.post("/internal/v1/merges/apply", json={
        "mergeId": str(applied_id), "objectType": "contacts", "primaryId": a, "secondaryId": b,
        "properties": {"email": "rc0@example.com", "hs_additional_emails": "rc1@example.com"}})
    assert applied.status_code == 200, applied.text
    new_id = applied.json()["id"]
    never_id = await pending_merge(runtime, account_id, records, c, d)

    async with subscribed("record.merged") as queue:
        # Too young: a merge may still be in flight.
        assert (await reconcile_pending(sessionmaker=runtime.sessionmaker, records=runtime.resources.records,
                                        older_than_seconds=3600))["applied"] == 0
        settled = await reconcile_pending(sessionmaker=runtime.sessionmaker, records=runtime.resources.records,
                                          older_than_seconds=0)
        assert settled["applied"] >= 1 and settled["failed"] >= 1
        event = await next_event(queue, {"mergeId": str(applied_id)})
    assert event["data"]["id"] == new_id and sorted(event["data"]["mergedIds"]) == sorted([a, b])

    late = (await merges.get(f"/corral/v1/merges/{applied_id}")).json()
    assert (late["status"], late["mergedObjectId"]) == ("APPLIED", new_id)
    failed = (await merges.get(f"/corral/v1/merges/{never_id}")).json()
    assert failed["status"] == "FAILED" and "never applied" in failed["error"]
    # The settled merge is a normal one: it can be unmerged with the snapshots taken before it.
    undone = await merges.post(f"/corral/v1/merges/{applied_id}/unmerge")
    assert undone.status_code == 200, undone.text
    assert (await read(records, "contacts", b, "email"))["id"] == b
    assert (await read(records, "contacts", c, "email"))["id"] == c
