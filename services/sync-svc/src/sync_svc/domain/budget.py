"""The daily API budget (HubSpot's "API calls allocated to HubSpot"), decided from the rolling 24 h count."""

from __future__ import annotations

from dataclasses import dataclass

# HubSpot stops automatic retries above 75% of the cap, or above 5,000 calls a day when there is no cap.
RETRY_SHARE = 0.75
RETRY_CEILING_WITHOUT_CAP = 5_000


@dataclass(frozen=True)
class Budget:
    used: int
    cap: int | None  # None: no cap set; only Salesforce's own allowance limits the sync

    @property
    def exhausted(self) -> bool:
        return self.cap is not None and self.used >= self.cap

    @property
    def retries_allowed(self) -> bool:
        threshold = self.cap * RETRY_SHARE if self.cap is not None else RETRY_CEILING_WITHOUT_CAP
        return self.used < threshold

    def remaining(self) -> int | None:
        return None if self.cap is None else max(self.cap - self.used, 0)
