"""The merge limit: HubSpot refuses a merge whose records were involved in more than 250 merges combined.

Counting (HubSpot documents the limit, not the arithmetic, so this is ours): records-svc gives every merge
result a new id and lists in `hs_merged_object_ids` every id absorbed so far, including the ids of
intermediate results. Each merge therefore absorbs exactly two ids, so a record whose list holds n ids is
the result of n / 2 merges. A merge of P and S involves (n_P + n_S) / 2 earlier merges plus itself; it is
refused when that exceeds 250. A chain (merge a fresh record into the last result, again and again)
succeeds 250 times and is refused at the 251st, whichever side the fresh record is on.
"""

from __future__ import annotations

MAX_MERGES = 250
LIMIT_MESSAGE = "Cannot have more than 250 identities on a profile"


def merged_ids(value: str | None) -> set[str]:
    return {v.strip() for v in (value or "").split(";") if v.strip()}


def merges_involved(primary_id: str, primary_merged: str | None, secondary_id: str,
                    secondary_merged: str | None) -> int:
    """How many merges the result would stem from, this one included."""
    ids = (merged_ids(primary_merged) | merged_ids(secondary_merged)) - {primary_id, secondary_id}
    return (len(ids) + 1) // 2 + 1


def over_limit(merges: int) -> bool:
    return merges > MAX_MERGES
