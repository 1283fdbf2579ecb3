"""Small helpers every benchmark script in bench/ uses."""

from __future__ import annotations

import time

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
