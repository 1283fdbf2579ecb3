"""The rate limiter against a fake clock: rolling window, daily counter, Retry-After."""

from __future__ import annotations

from corral_gateway.ratelimit import RateLimiter


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
