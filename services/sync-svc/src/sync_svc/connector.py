"""Salesforce clients for stored connections: secrets opened only in memory, refreshed sessions sealed again,
every call counted in the account's ledger and retries held back once the budget is mostly spent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from crm_common.db import transaction
from crm_common.errors import HubSpotError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sync_svc.crypto import EncryptionUnavailable, SecretBox
from sync_svc.domain.budget import Budget
from sync_svc.metrics import API_CALLS
from sync_svc.repositories import connections as connection_repo
from sync_svc.salesforce import auth
from sync_svc.salesforce.client import RetryPolicy, SalesforceClient
from sync_svc.settings import Settings

NO_KEY = ("Salesforce connections are unavailable: sync-svc has no encryption key for secrets at rest "
          "(set SYNC_SVC_ENCRYPTION_KEY)")


@dataclass
class OpenConnection:
    """A connection row with its secrets opened, for one cycle or request."""

    row: dict[str, Any]
    credentials: auth.Credentials
    session: auth.SalesforceSession | None


class Connector:
    def __init__(self, *, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession],
                 box: SecretBox | None, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.box = box
        self.http = http

    def require_box(self) -> SecretBox:
        if self.box is None:
            raise HubSpotError(503, NO_KEY)
        return self.box

    # -- sealing -------------------------------------------------------------------------------------------

    def seal_secrets(self, credentials: auth.Credentials) -> bytes:
        return self.require_box().seal({"clientSecret": credentials.client_secret,
                                        "privateKey": credentials.private_key,
                                        "refreshToken": credentials.refresh_token})

    def seal_session(self, session: auth.SalesforceSession) -> bytes:
        return self.require_box().seal({
            "accessToken": session.access_token, "instanceUrl": session.instance_url, "orgId": session.org_id,
            "userId": session.user_id, "issuedAt": session.issued_at.isoformat() if session.issued_at else None})

    def open(self, row: dict[str, Any]) -> OpenConnection:
        box = self.require_box()
        try:
            secrets = box.open(row["secrets"]) if row.get("secrets") is not None else {}
            sealed = box.open(row["session"]) if row.get("session") is not None else None
        except EncryptionUnavailable as exc:
            raise HubSpotError(503, str(exc)) from None
        credentials = auth.Credentials(
            login_url=row["login_url"], flow=row["flow"], client_id=row["client_id"],
            client_secret=secrets.get("clientSecret"), username=row.get("username"),
            private_key=secrets.get("privateKey"), refresh_token=secrets.get("refreshToken"))
        session = None
        if sealed:
            session = auth.SalesforceSession(
                access_token=sealed["accessToken"], instance_url=sealed["instanceUrl"], org_id=sealed["orgId"],
                user_id=sealed["userId"],
                issued_at=datetime.fromisoformat(sealed["issuedAt"]) if sealed.get("issuedAt") else None)
        return OpenConnection(row=row, credentials=credentials, session=session)

    # -- clients -------------------------------------------------------------------------------------------

    def client(self, *, account_id: int, credentials: auth.Credentials, api_version: str,
               session: auth.SalesforceSession | None = None, budget: Budget | None = None,
               persist_sessions: bool = True) -> SalesforceClient:
        holder: dict[str, SalesforceClient] = {}

        async def count(calls: int) -> None:
            API_CALLS.inc(calls)
            async with transaction(self.sessionmaker) as db:
                await connection_repo.count_calls(db, account_id, calls)

        async def keep_session(new_session: auth.SalesforceSession) -> None:
            async with transaction(self.sessionmaker) as db:
                await connection_repo.store_session(db, account_id, self.seal_session(new_session))

        def may_retry() -> bool:
            if budget is None:
                return True
            return Budget(budget.used + holder["client"].calls, budget.cap).retries_allowed

        client = SalesforceClient(
            http=self.http, credentials=credentials, api_version=api_version, session=session, on_call=count,
            on_session=keep_session if persist_sessions else None, may_retry=may_retry,
            retry=RetryPolicy(attempts=self.settings.salesforce_retry_attempts,
                              base_delay=self.settings.salesforce_retry_base_delay),
            max_concurrent_calls=self.settings.salesforce_concurrent_calls)
        holder["client"] = client
        return client

    async def budget(self, db: AsyncSession, row: dict[str, Any]) -> Budget:
        used = await connection_repo.calls_last_day(db, row["account_id"])
        return Budget(used=used, cap=row.get("daily_api_calls"))

    async def for_connection(self, db: AsyncSession, row: dict[str, Any]) -> SalesforceClient:
        opened = self.open(row)
        return self.client(account_id=row["account_id"], credentials=opened.credentials,
                           api_version=row["api_version"], session=opened.session,
                           budget=await self.budget(db, row))
