"""Per-token rate limits as HubSpot applies them: a rolling 10-second window and a daily counter.

`SharedRateLimiter` holds the limits across every gateway replica (the deployment autoscales, and a
per-replica count gave a token N times its limit). The count lives in the gateway's Postgres, which the
gateway already needs for its tokens, so nothing new is deployed. A replica does not ask per request: it
leases a slice of the token's quota with one call (`corral_rate_lease`, migration 0002), admits that many
requests from memory, and asks again when the slice is spent. A slice is good for the second it was
leased in: what is left when the second ends goes back to the window with the next lease, so the window
never admits more than the limit, whatever the number of replicas. Slices start at one request and double
while a token keeps spending them within a second (halving when part of one comes back), up to a tenth of
the window: a busy token costs a few round trips a second per replica, an idle one none, and tokens
without limits none at all (bench/README "Gateway" has the measured cost).

`RateLimiter` is the same policy in this process alone: the shared limiter falls back to it while the
database cannot be reached (requests keep flowing, limited per replica), and the tests use it with a
fake clock. Window seconds are the replicas' clocks, which must agree to within a second (NTP).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from corral_gateway.metrics import RATE_LIMIT_LEASES

log = structlog.get_logger(__name__)

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


# --- shared by every replica -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    granted: int
    window_used: int
    day_used: int
    retry_after: int


LeaseCall = Callable[..., Awaitable[Lease]]


def postgres_leases(engine: AsyncEngine) -> LeaseCall:
    """One statement, in autocommit: one round trip per lease."""
    statement = sa.text("SELECT granted, window_used, day_used, retry_after FROM corral_rate_lease("
                        ":token, :now, :want, :per_10s, :daily, :refund_second, :refund)")

    async def lease(*, token: int, now: float, want: int, per_10s: int, daily: int, refund_second: int,
                    refund: int) -> Lease:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            row = (await conn.execute(statement, {
                "token": token, "now": now, "want": want, "per_10s": per_10s, "daily": daily,
                "refund_second": refund_second, "refund": refund})).one()
        return Lease(granted=row.granted, window_used=row.window_used, day_used=row.day_used,
                     retry_after=row.retry_after)

    return lease


@dataclass
class _Slice:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    second: int = -1
    remaining: int = 0  # leased for `second`, not used yet
    size: int = 1  # what the next lease asks for
    leases_this_second: int = 0
    refund_second: int = 0
    refund: int = 0
    window_used: int = 0  # as of the last lease, this replica's unused slice included
    day_used: int = 0


class LocalRateLimiter:
    """`RateLimiter` behind the shared limiter's interface: for a single replica (GATEWAY_SHARED_RATE_LIMITS=
    false), where a round trip per slice buys nothing."""

    def __init__(self, limiter: RateLimiter | None = None) -> None:
        self._limiter = limiter or RateLimiter()

    async def hit(self, token_id: int, *, per_10s: int, daily: int) -> Decision:
        return self._limiter.hit(token_id, per_10s=per_10s, daily=daily)


class SharedRateLimiter:
    def __init__(self, lease: LeaseCall, *, fallback: RateLimiter | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._lease = lease
        self._fallback = fallback or RateLimiter()
        self._clock = clock
        self._slices: dict[int, _Slice] = {}

    async def hit(self, token_id: int, *, per_10s: int, daily: int) -> Decision:
        """Counts the call if allowed (refused calls do not count); 0 means unlimited."""
        if not per_10s and not daily:
            return Decision(allowed=True, headers={})
        state = self._slices.setdefault(token_id, _Slice())
        now = self._clock()
        self._roll(state, int(now))
        if state.remaining > 0:
            state.remaining -= 1
            return self._allowed(state, per_10s, daily)
        async with state.lock:
            now = self._clock()
            self._roll(state, int(now))
            if state.remaining > 0:  # leased by a request that held the lock before this one
                state.remaining -= 1
                return self._allowed(state, per_10s, daily)
            if state.leases_this_second:
                # The last slice was spent within its second: ask for more next time.
                state.size = min(state.size * 2, max(1, per_10s // 10) if per_10s else 1000)
            try:
                lease = await self._lease(token=token_id, now=now, want=state.size, per_10s=per_10s, daily=daily,
                                          refund_second=state.refund_second, refund=state.refund)
            except Exception as exc:  # noqa: BLE001 - limits must not take the API down with the database
                RATE_LIMIT_LEASES.labels("store_unavailable").inc()
                log.warning("rate limit store unavailable; limiting in this replica alone", error=repr(exc))
                return self._fallback.hit(token_id, per_10s=per_10s, daily=daily)
            state.refund = 0
            state.leases_this_second += 1
            state.window_used, state.day_used = lease.window_used, lease.day_used
            RATE_LIMIT_LEASES.labels("granted" if lease.granted else "exhausted").inc()
            if lease.granted == 0:
                policy = TEN_SECONDLY_ROLLING if per_10s and lease.window_used >= per_10s else DAILY
                return self._refused(state, per_10s, daily, policy, lease.retry_after)
            state.remaining = lease.granted - 1
            return self._allowed(state, per_10s, daily)

    @staticmethod
    def _roll(state: _Slice, second: int) -> None:
        if second == state.second:
            return
        if state.remaining > 0:
            # Unused when its second ended: it goes back with the next lease, and the next slice is smaller.
            state.refund_second, state.refund = state.second, state.remaining
            state.size = max(1, state.size // 2)
        state.second, state.remaining, state.leases_this_second = second, 0, 0

    @staticmethod
    def _headers(state: _Slice, per_10s: int, daily: int) -> dict[str, str]:
        headers: dict[str, str] = {}
        if per_10s:
            headers["X-HubSpot-RateLimit-Max"] = str(per_10s)
            headers["X-HubSpot-RateLimit-Remaining"] = str(max(0, per_10s - state.window_used + state.remaining))
            headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(int(WINDOW_SECONDS * 1000))
        if daily:
            headers["X-HubSpot-RateLimit-Daily"] = str(daily)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, daily - state.day_used + state.remaining))
        return headers

    def _allowed(self, state: _Slice, per_10s: int, daily: int) -> Decision:
        return Decision(allowed=True, headers=self._headers(state, per_10s, daily))

    def _refused(self, state: _Slice, per_10s: int, daily: int, policy: str, retry_after: int) -> Decision:
        headers = self._headers(state, per_10s, daily)
        headers["Retry-After"] = str(retry_after)
        return Decision(allowed=False, headers=headers, policy=policy, retry_after=retry_after)
