"""Per-token rate limits as HubSpot applies them: a rolling 10-second window and a daily counter.

State lives in this process. With N gateway replicas behind a load balancer that spreads a token's
requests, the effective limit is N times the configured one unless the ingress pins tokens to a
replica (hash on the Authorization header). Accepted for now: it keeps the hot path free of a
network round trip, and the limits exist to protect the backends, not to bill.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_SECONDS = 10.0
SECONDS_PER_DAY = 86_400

TEN_SECONDLY_ROLLING = "TEN_SECONDLY_ROLLING"
DAILY = "DAILY"


@dataclass
class _TokenState:
    hits: deque[float] = field(default_factory=deque)
    day: int = -1
    day_count: int = 0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    headers: dict[str, str]
    policy: str | None = None
    retry_after: int = 0


class RateLimiter:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self._states: dict[int, _TokenState] = {}

    def hit(self, token_id: int, *, per_10s: int, daily: int) -> Decision:
        """Counts the call if allowed (refused calls do not count); 0 means unlimited."""
        state = self._states.setdefault(token_id, _TokenState())
        now = self._clock()
        wall = self._wall_clock()
        while state.hits and state.hits[0] <= now - WINDOW_SECONDS:
            state.hits.popleft()
        day = int(wall // SECONDS_PER_DAY)  # UTC days; HubSpot resets at midnight too
        if state.day != day:
            state.day, state.day_count = day, 0

        policy, retry_after = None, 0
        if per_10s and len(state.hits) >= per_10s:
            policy = TEN_SECONDLY_ROLLING
            # The window frees a slot when the (len - limit + 1)-th oldest hit leaves it.
            oldest = state.hits[len(state.hits) - per_10s]
            retry_after = max(1, math.ceil(oldest + WINDOW_SECONDS - now))
        elif daily and state.day_count >= daily:
            policy = DAILY
            retry_after = max(1, math.ceil((day + 1) * SECONDS_PER_DAY - wall))
        if policy is None:
            state.hits.append(now)
            state.day_count += 1
            if not per_10s:
                state.hits.clear()

        headers: dict[str, str] = {}
        if per_10s:
            headers["X-HubSpot-RateLimit-Max"] = str(per_10s)
            headers["X-HubSpot-RateLimit-Remaining"] = str(max(0, per_10s - len(state.hits)))
            headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(int(WINDOW_SECONDS * 1000))
        if daily:
            headers["X-HubSpot-RateLimit-Daily"] = str(daily)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, daily - state.day_count))
        if policy is not None:
            headers["Retry-After"] = str(retry_after)
        return Decision(allowed=policy is None, headers=headers, policy=policy, retry_after=retry_after)
