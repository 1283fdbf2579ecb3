"""The rate limiters against a fake clock: rolling window, daily counter, Retry-After; in one process, and
shared by several replicas through the gateway's Postgres."""

from __future__ import annotations

import asyncio
import itertools

from corral_gateway.ratelimit import RateLimiter, SharedRateLimiter, postgres_leases


class Clock:
    def __init__(self, now: float = 1000.0, wall: float = 86_400 * 20_000 + 3600) -> None:
        self.now = now
        self.wall = wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds


def limiter(clock: Clock) -> RateLimiter:
    return RateLimiter(clock=lambda: clock.now, wall_clock=lambda: clock.wall)


def test_rolling_window_frees_slots_as_old_calls_leave() -> None:
    clock = Clock()
    rl = limiter(clock)
    assert rl.hit(1, per_10s=2, daily=0).allowed
    clock.advance(4)
    second = rl.hit(1, per_10s=2, daily=0)
    assert second.allowed and second.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    clock.advance(1)
    refused = rl.hit(1, per_10s=2, daily=0)
    assert not refused.allowed
    assert refused.policy == "TEN_SECONDLY_ROLLING"
    assert refused.headers["Retry-After"] == "5"  # the first call leaves the window 5 s from now
    clock.advance(5)
    assert rl.hit(1, per_10s=2, daily=0).allowed  # refused calls did not count
    assert not rl.hit(1, per_10s=2, daily=0).allowed
    assert rl.hit(2, per_10s=2, daily=0).allowed  # another token has its own window


def test_retry_after_is_at_least_one_second() -> None:
    clock = Clock()
    rl = limiter(clock)
    rl.hit(1, per_10s=1, daily=0)
    clock.advance(9.99)
    decision = rl.hit(1, per_10s=1, daily=0)
    assert not decision.allowed and decision.retry_after == 1


def test_daily_limit_until_midnight_utc() -> None:
    clock = Clock()  # 01:00 UTC
    rl = limiter(clock)
    for _ in range(3):
        assert rl.hit(1, per_10s=0, daily=3).allowed
    refused = rl.hit(1, per_10s=0, daily=3)
    assert (refused.allowed, refused.policy, refused.retry_after) == (False, "DAILY", 23 * 3600)
    assert refused.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    assert "X-HubSpot-RateLimit-Max" not in refused.headers  # no 10 s limit on this token
    clock.advance(23 * 3600)
    allowed = rl.hit(1, per_10s=0, daily=3)
    assert allowed.allowed and allowed.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "2"


def test_unlimited() -> None:
    rl = limiter(Clock())
    decisions = [rl.hit(1, per_10s=0, daily=0) for _ in range(1000)]
    assert all(d.allowed for d in decisions) and decisions[-1].headers == {}


# --- shared by every replica: leases from the gateway's Postgres ----------------------------------------------

_tokens = itertools.count(1_000_000)


def replicas(engine, clock: Clock, count: int = 3) -> list[SharedRateLimiter]:  # type: ignore[no-untyped-def]
    lease = postgres_leases(engine)
    return [SharedRateLimiter(lease, clock=lambda: clock.wall) for _ in range(count)]


async def test_a_limit_holds_across_replicas(engine) -> None:  # type: ignore[no-untyped-def]
    """Three replicas, one token limited to 30 per 10 s: 30 calls in all are admitted, not 90."""
    clock = Clock()
    gateways = replicas(engine, clock)
    token = next(_tokens)
    allowed = 0
    for second in range(5):
        for turn in range(40):
            decision = await gateways[turn % 3].hit(token, per_10s=30, daily=0)
            allowed += decision.allowed
            if not decision.allowed:
                assert decision.policy == "TEN_SECONDLY_ROLLING" and decision.retry_after >= 1
                assert decision.headers["Retry-After"] == str(decision.retry_after)
        clock.advance(1)
    assert allowed == 30
    clock.advance(6)  # the first second's calls have left the window
    assert (await gateways[0].hit(token, per_10s=30, daily=0)).allowed


async def test_concurrent_calls_on_every_replica_never_exceed_the_limit(engine) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    for _ in range(3):  # the race, several times
        gateways = replicas(engine, clock, count=4)
        token = next(_tokens)
        decisions = await asyncio.gather(*[gateways[i % 4].hit(token, per_10s=50, daily=0) for i in range(400)])
        assert sum(d.allowed for d in decisions) == 50


async def test_a_slice_left_unused_goes_back_to_the_window(engine) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    busy, quiet = replicas(engine, clock, count=2)
    token = next(_tokens)
    for _ in range(6):  # slices grow while they are spent within the second: 1, 2, 4, ...
        assert (await busy.hit(token, per_10s=100, daily=0)).allowed
    clock.advance(1)  # the rest of busy's last slice is unused when its second ends
    spent = 0
    while (await quiet.hit(token, per_10s=100, daily=0)).allowed:
        spent += 1
    assert spent == 100 - 7, "busy leased 1 + 2 + 4 in its second and used 6: one is still counted as granted"
    # busy's leftover comes back with busy's next lease, and is admitted then.
    refunded = 0
    while (await busy.hit(token, per_10s=100, daily=0)).allowed:
        refunded += 1
    assert refunded == 1 and 6 + spent + refunded == 100


async def test_the_daily_limit_is_shared_too(engine) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()  # 01:00 UTC
    gateways = replicas(engine, clock, count=2)
    token = next(_tokens)
    results = [await gateways[i % 2].hit(token, per_10s=0, daily=5) for i in range(8)]
    assert sum(d.allowed for d in results) == 5
    refused = results[-1]
    assert (refused.policy, refused.retry_after) == ("DAILY", 23 * 3600)
    assert refused.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    clock.advance(23 * 3600)
    assert (await gateways[1].hit(token, per_10s=0, daily=5)).allowed


async def test_without_the_database_each_replica_limits_alone() -> None:
    async def unavailable(**_: object) -> object:
        raise ConnectionRefusedError("no database")

    clock = Clock()
    local = RateLimiter(clock=lambda: clock.now, wall_clock=lambda: clock.wall)
    limiter = SharedRateLimiter(unavailable, fallback=local, clock=lambda: clock.wall)
    decisions = [await limiter.hit(1, per_10s=3, daily=0) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]


async def test_unlimited_tokens_cost_no_round_trip() -> None:
    async def never(**_: object) -> object:
        raise AssertionError("an unlimited token must not lease")

    limiter = SharedRateLimiter(never)
    assert all([(await limiter.hit(1, per_10s=0, daily=0)).allowed for _ in range(100)])


async def test_two_gateway_processes_share_a_tokens_limit(gateway, tmp_path, gateway_db_url, upstreams, client,
                                                          make_token) -> None:  # type: ignore[no-untyped-def]
    """Each replica once counted a token's calls alone, so N replicas gave N times the limit."""
    from .conftest import start_gateway, stop_gateway

    second = start_gateway(tmp_path, "second", gateway_db_url, {n: s.url for n, s in upstreams.items()})
    try:
        token = await make_token(rate_limit=10)
        statuses, bodies = [], []
        for i in range(30):
            target = gateway.url if i % 2 else second.url
            response = await client.get(f"{target}/crm/v3/objects/contacts", headers=token.headers)
            statuses.append(response.status_code)
            bodies.append(response.text[:200])
            if response.status_code == 429:
                assert response.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert statuses.count(200) == 10 and statuses.count(429) == 20, (statuses, bodies)
    finally:
        stop_gateway(second)
