"""Service-to-service HTTP: pooled httpx clients that sign the caller's auth context."""

from __future__ import annotations

import httpx

from crm_common.auth import AUTH_HEADER, REQUEST_ID_HEADER, AuthContext, sign_context
from crm_common.logging import current_request_id


class ServiceClient:
    """Calls another service's internal API on behalf of an account."""

    def __init__(self, *, base_url: str, secret: str, caller: str, timeout: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._secret = secret
        self._caller = caller
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20, keepalive_expiry=30.0),
            transport=transport,
        )

    def headers_for(self, account_id: int, scopes: list[str] | None = None) -> dict[str, str]:
        context = AuthContext(account_id=account_id, scopes=scopes or ["*"], caller=self._caller)
        return {AUTH_HEADER: sign_context(context, self._secret), REQUEST_ID_HEADER: current_request_id()}

    async def request(self, method: str, url: str, *, account_id: int, **kwargs: object) -> httpx.Response:
        headers = {**self.headers_for(account_id), **(kwargs.pop("headers", None) or {})}  # type: ignore[dict-item]
        return await self._client.request(method, url, headers=headers, **kwargs)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        await self._client.aclose()
