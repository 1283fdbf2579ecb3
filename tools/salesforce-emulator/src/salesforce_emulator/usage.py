"""API request accounting: a rolling 24-hour counter (what /limits and Sforce-Limit-Info report) and
all-time counts per access token (what tests assert call budgets with)."""

from __future__ import annotations

import threading
from collections import Counter, deque
from datetime import datetime, timedelta

from salesforce_emulator.clock import EmulatorClock


class ApiUsage:
    def __init__(self, clock: EmulatorClock, daily_max: int) -> None:
        self.clock = clock
        self.daily_max = daily_max
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._minutes: deque[tuple[datetime, int]] = deque()
            self._rolling_total = 0
            self.per_token: Counter[str] = Counter()
            self.per_client: Counter[str] = Counter()
            self.total = 0

    def _expire(self, now: datetime) -> None:
        horizon = now - timedelta(hours=24)
        while self._minutes and self._minutes[0][0] <= horizon:
            self._rolling_total -= self._minutes.popleft()[1]

    def record(self, token: str, client_id: str) -> int:
        """Count one call; returns the rolling 24-hour usage including it."""
        now = self.clock.now()
        minute = now.replace(second=0, microsecond=0)
        with self._lock:
            self._expire(now)
            if self._minutes and self._minutes[-1][0] == minute:
                self._minutes[-1] = (minute, self._minutes[-1][1] + 1)
            else:
                self._minutes.append((minute, 1))
            self._rolling_total += 1
            self.per_token[token] += 1
            self.per_client[client_id] += 1
            self.total += 1
            return self._rolling_total

    def used(self) -> int:
        with self._lock:
            self._expire(self.clock.now())
            return self._rolling_total

    def exhausted(self) -> bool:
        return self.used() >= self.daily_max
