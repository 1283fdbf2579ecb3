"""Faults a test schedules through the admin API, consumed by matching API requests."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from salesforce_emulator.errors import SalesforceError

FAULT_KINDS = ("REQUEST_LIMIT_EXCEEDED", "UNABLE_TO_LOCK_ROW", "SERVICE_UNAVAILABLE", "LATENCY")


@dataclass
class Fault:
    kind: str
    times: int = 1  # how many matching requests it affects; -1 = until cleared
    method: str | None = None
    path_contains: str | None = None
    latency_ms: int = 0
    # Per-record faults hit rows inside collection writes (the request itself succeeds), as a lock
    # conflict on some rows of a batch does in Salesforce; `times` then counts rows.
    per_record: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and \
            (self.path_contains is None or self.path_contains in path)

    def error(self) -> SalesforceError | None:
        if self.kind == "REQUEST_LIMIT_EXCEEDED":
            return SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        if self.kind == "UNABLE_TO_LOCK_ROW":
            return SalesforceError(400, "UNABLE_TO_LOCK_ROW",
                                   "unable to obtain exclusive access to this record or 1 records", [])
        if self.kind == "SERVICE_UNAVAILABLE":
            return SalesforceError(503, "SERVER_UNAVAILABLE", "Service temporarily unavailable; try again later")
        return None


class FaultPlan:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {fault.kind}; expected one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> list[Fault]:
        """Consume the faults that apply to this request (latency first, then at most one error)."""
        taken: list[Fault] = []
        with self._lock:
            if not self._faults:
                return taken
            error_taken = False
            for fault in list(self._faults):
                if fault.per_record or not fault.matches(method, path):
                    continue
                if fault.kind != "LATENCY":
                    if error_taken:
                        continue
                    error_taken = True
                taken.append(fault)
                if fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
        taken.sort(key=lambda fault: fault.kind != "LATENCY")
        return taken

    def take_record_fault(self, method: str, path: str) -> SalesforceError | None:
        """Consume one per-record fault matching this collection request, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.per_record and fault.matches(method, path):
                    if fault.times > 0:
                        fault.times -= 1
                        if fault.times == 0:
                            self._faults.remove(fault)
                    return fault.error()
        return None

    def pending(self) -> list[dict]:
        with self._lock:
            return [fault.__dict__.copy() for fault in self._faults]
