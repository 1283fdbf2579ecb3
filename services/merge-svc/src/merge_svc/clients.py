"""The two services merge-svc calls: records-svc (snapshots, apply, unapply) and sync-svc (sync status)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from crm_common.errors import HubSpotError
from crm_common.http import ServiceClient

SYNC_UNREACHABLE = ("Companies cannot be merged right now: the Salesforce sync status could not be checked "
                    "(sync service unreachable); retry shortly")


def _raise_for(response: httpx.Response) -> None:
    """records-svc answers HubSpot error bodies: pass its status, category and message through."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    status = response.status_code if response.status_code < 500 else 502
    raise HubSpotError(status, body.get("message") or f"records service answered {response.status_code}",
                       category=body.get("category") if status < 500 else None, errors=body.get("errors"))


class RecordsClient:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def _call(self, method: str, url: str, *, account_id: int, **kwargs: Any) -> httpx.Response:
        try:
            return await self.client.request(method, url, account_id=account_id, **kwargs)
        except httpx.InvalidURL:
            raise HubSpotError(400, "The object type or record id in the path is not valid") from None
        except httpx.TimeoutException:
            raise HubSpotError(504, "The records service did not answer in time; the merge may or may not have "
                                    "been applied (see GET /corral/v1/merges?recordId=...)") from None
        except httpx.HTTPError as exc:
            raise HubSpotError(503, f"The records service is unreachable: {exc.__class__.__name__}") from None

    async def snapshot(self, *, account_id: int, object_type: str, record_id: str) -> dict[str, Any] | None:
        """None when the record does not exist in the account."""
        # Path segments are quoted: a type or id straight from a client's URL may hold any character.
        path = f"/internal/v1/records/{quote(object_type, safe='')}/{quote(str(record_id), safe='')}/snapshot"
        response = await self._call("GET", path, account_id=account_id)
        if response.status_code == 404:
            return None
        _raise_for(response)
        return response.json()

    async def apply(self, *, account_id: int, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._call("POST", "/internal/v1/merges/apply", account_id=account_id, json=body)
        _raise_for(response)
        return response.json()

    async def unapply(self, *, account_id: int, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._call("POST", "/internal/v1/merges/unapply", account_id=account_id, json=body)
        _raise_for(response)
        return response.json()

    async def aclose(self) -> None:
        await self.client.aclose()


class SyncClient:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def sync_enabled(self, *, account_id: int, object_type: str) -> bool:
        try:
            response = await self.client.request("GET", "/internal/v1/sync/status", account_id=account_id,
                                                 params={"objectType": object_type})
        except httpx.HTTPError:
            raise HubSpotError(503, SYNC_UNREACHABLE) from None
        if response.status_code >= 400:
            raise HubSpotError(503, SYNC_UNREACHABLE)
        return bool(response.json().get("syncEnabled"))

    async def aclose(self) -> None:
        await self.client.aclose()



async def _journal(client: ServiceClient, *, account_id: int, operation_id: str) -> list[dict[str, Any]]:
    response = await client.request("GET", f"/internal/v1/operations/{quote(operation_id, safe='')}/journal",
                                    account_id=account_id, params={"limit": 100})
    _raise_for(response)
    return response.json().get("results") or []


async def merge_journal(records: RecordsClient, *, account_id: int, merge_id: int) -> list[dict[str, Any]]:
    """records-svc's journal of one merge (`merge:<id>`): empty when it never applied."""
    return await _journal(records.client, account_id=account_id, operation_id=f"merge:{merge_id}")
