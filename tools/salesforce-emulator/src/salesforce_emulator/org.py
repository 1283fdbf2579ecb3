"""One emulated org: everything a single app instance keeps in memory."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from salesforce_emulator.auth import ConnectedApp
from salesforce_emulator.clock import EmulatorClock
from salesforce_emulator.faults import FaultPlan
from salesforce_emulator.settings import EmulatorSettings
from salesforce_emulator.store import RecordStore
from salesforce_emulator.usage import ApiUsage

if TYPE_CHECKING:
    from salesforce_emulator.api.bulk import BulkJob


class Org:
    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.clock = EmulatorClock()
        self.store = RecordStore(self.clock)
        self.connected_app = ConnectedApp(settings, self.clock)
        self.usage = ApiUsage(self.clock, settings.daily_api_requests)
        self.faults = FaultPlan()
        self.page_size = settings.page_size
        self.bulk_jobs: dict[str, BulkJob] = {}
        # Composite subrequests are replayed through the app itself; this header marks them as part of
        # the one call already counted, and the random value keeps real clients from forging it.
        self.subrequest_secret = secrets.token_urlsafe(16)

    def reset(self) -> None:
        self.clock.reset()
        self.store.reset()
        self.connected_app.reset()
        self.usage.reset()
        self.usage.daily_max = self.settings.daily_api_requests
        self.faults.clear()
        self.page_size = self.settings.page_size
        self.bulk_jobs.clear()

    def user_id_for_username(self, username: str) -> str | None:
        user = self.store.describe("User")
        assert user is not None
        matches = self.store.find_by_field(user, "Username", username)
        return matches[0] if matches else None
