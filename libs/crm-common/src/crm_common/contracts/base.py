"""What every internal client shares: retries, one error type, quoted path segments.

A call is retried when waiting can fix it: the service could not be reached or did not answer in time,
it answered 502/503/504 or 500, 429, or a 409 that carries `Retry-After` (a transient conflict with a
concurrent writer; a 409 without it is a refusal, such as a record already merged). `Retry-After` is
honoured; otherwise the delay grows from 0.2 s to 5 s. Retrying is safe because every internal write
is idempotent: bulk writes carry a batch key whose answer the owner stores with the write, merges are
keyed by their merge id, reads are reads.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import structlog
from pydantic import BaseModel

from crm_common.errors import HubSpotError
from crm_common.http import ServiceClient

log = structlog.get_logger(__name__)

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
# Longest wait a Retry-After may ask for between two attempts.
MAX_RETRY_AFTER = 30.0


def segment(value: object) -> str:
    """One path segment, quoted: an object type or id taken from a client's URL may hold any character."""
    return quote(str(value), safe="")


class ServiceCallError(Exception):
    """An internal call that failed for good: refused by the service, or the service unavailable.

    `status` is the service's answer, or 503 when it could not be reached and 504 when it did not answer
    in time. `transient` says whether a later attempt may succeed (unavailable, rate limited, a conflict
    with a concurrent writer); a refusal (400, 404, a 409 without Retry-After) will not change.
    """

    def __init__(self, *, service: str, what: str, status: int, message: str, category: str | None = None,
                 errors: list[dict[str, Any]] | None = None, body: Any = None, transient: bool = False) -> None:
        super().__init__(f"{service} {what} answered {status}: {message}")
        self.service = service
        self.what = what
        self.status = status
        self.message = message
        self.category = category
        self.errors = errors
        self.body = body
        self.transient = transient

    def to_hubspot(self) -> HubSpotError:
        """The error to answer our own caller: a refusal passes through, an outage says which service."""
        if self.status < 500:
            return HubSpotError(self.status, self.message, category=self.category, errors=self.errors)
        if self.status in (503, 504) and self.body is None:
            return HubSpotError(self.status, self.message)
        return HubSpotError(502, self.message or f"The {self.service} answered {self.status}")


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (HTTP allows a number of seconds or a date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class InternalClient:
    """Base of every service's client: `call` sends one request with the retry rules above."""

    service = "service"

    def __init__(self, http: ServiceClient, *, retries: int = 5, first_delay: float = 0.2,
                 max_delay: float = 5.0) -> None:
        self.http = http
        self._attempts = max(1, retries)
        self._first_delay = first_delay
        self._max_delay = max_delay

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, *, account_id: int, what: str, body: Any = None,
                   params: Mapping[str, Any] | None = None, accept: frozenset[int] = frozenset()) -> httpx.Response:
        """The service's answer to a 2xx (or an `accept`ed status); anything else raises ServiceCallError.

        `body` is a model, or anything orjson writes (already-encoded bytes are sent as they are).
        """
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["content"] = encode(body)
            kwargs["headers"] = {"content-type": "application/json"}
        if params is not None:
            kwargs["params"] = params
        delay = self._first_delay
        for attempt in range(1, self._attempts + 1):
            last = attempt == self._attempts
            try:
                response = await self.http.request(method, path, account_id=account_id, **kwargs)
            except httpx.TimeoutException as exc:
                error = ServiceCallError(service=self.service, what=what, status=504, transient=True,
                                         message=f"The {self.service} did not answer in time ({type(exc).__name__})")
                wait = None
            except httpx.TransportError as exc:
                error = ServiceCallError(service=self.service, what=what, status=503, transient=True,
                                         message=f"The {self.service} is unreachable: {type(exc).__name__}")
                wait = None
            else:
                if response.status_code < 300 or response.status_code in accept:
                    return response
                error = self._refusal(response, what)
                wait = retry_after_seconds(response.headers.get("retry-after"))
            if last or not error.transient:
                raise error
            pause = min(wait, MAX_RETRY_AFTER) if wait is not None else delay
            log.warning("internal call failed; retrying", service=self.service, what=what, status=error.status,
                        attempt=attempt, retry_in=round(pause, 2))
            await asyncio.sleep(pause)
            delay = min(delay * 3, self._max_delay)
        raise AssertionError("unreachable")

    def _refusal(self, response: httpx.Response, what: str) -> ServiceCallError:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = {"message": response.text[:500]}
        if not isinstance(body, dict):
            body = {"message": str(body)[:500]}
        status = response.status_code
        transient = status in RETRIED_STATUSES or (status == 409 and "retry-after" in response.headers)
        return ServiceCallError(service=self.service, what=what, status=status,
                                message=str(body.get("message") or f"{self.service} answered {status}"),
                                category=body.get("category"), errors=body.get("errors"), body=body,
                                transient=transient)


def encode(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, BaseModel):
        return orjson.dumps(body.model_dump(mode="json"))
    return orjson.dumps(body)
