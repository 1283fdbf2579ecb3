"""Small helpers every benchmark script in bench/ uses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile of `values` (NaN when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def check(response: httpx.Response, *expected: int) -> httpx.Response:
    """The response, or an error naming the call and the answer when its status is not expected."""
    if response.status_code not in expected:
        raise RuntimeError(f"{response.request.method} {response.request.url} -> {response.status_code}: "
                           f"{response.text[:500]}")
    return response


class DirectAuth(httpx.Auth):
    """Signs each request for a service as the gateway would; re-signs well before the 300 s skew limit."""

    def __init__(self, account_id: int) -> None:
        from crm_common.testing import signed_headers

        self._sign = lambda: signed_headers(account_id)
        self._headers = self._sign()
        self._signed_at = time.monotonic()

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        if time.monotonic() - self._signed_at > 60:
            self._headers, self._signed_at = self._sign(), time.monotonic()
        request.headers.update(self._headers)
        yield request


@dataclass
class Sample:
    """Latencies (s) and wall time of one kind of request, possibly over several slots."""

    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    errors: int = 0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else float("nan")

    def p(self, q: float) -> float:
        return pct(self.latencies, q)


async def closed_loop(http: httpx.AsyncClient, make_request: Callable[[], tuple[str, str, bytes | None]], *,
                      concurrency: int, seconds: float, into: Sample) -> None:
    """`concurrency` workers each send one request after another for `seconds`; answers >= 300 are errors."""
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            method, path, body = make_request()
            t0 = time.perf_counter()
            try:
                response = await http.request(method, path, content=body,
                                              headers={"content-type": "application/json"} if body else None)
                ok = response.status_code < 300
            except httpx.HTTPError:
                ok = False
            if ok:
                into.latencies.append(time.perf_counter() - t0)
            else:
                into.errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    into.elapsed += time.perf_counter() - started
