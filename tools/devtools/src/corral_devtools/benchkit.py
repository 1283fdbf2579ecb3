"""Small helpers every benchmark script in bench/ uses."""

from __future__ import annotations

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
