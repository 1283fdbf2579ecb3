"""The emulator's clock: real time plus an offset that tests move forward to simulate time passing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


class EmulatorClock:
    def __init__(self) -> None:
        self._offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> datetime:
        self._offset += timedelta(seconds=seconds)
        return self.now()

    def set_now(self, moment: datetime) -> datetime:
        self._offset = moment - datetime.now(UTC)
        return self.now()

    def reset(self) -> None:
        self._offset = timedelta()


def format_datetime(moment: datetime) -> str:
    """Salesforce's datetime wire format, always UTC with milliseconds: 2024-05-01T10:00:00.000+0000."""
    # isoformat is done in C; its "+00:00" tail becomes Salesforce's "+0000".
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "+0000"


def format_date(day: date) -> str:
    return day.isoformat()


def parse_datetime(text: str) -> datetime:
    """Parse ISO-8601 input (Z, +hh:mm or +hhmm offsets, optional fraction); naive input is taken as UTC."""
    cleaned = text.strip().replace(" ", "+")
    if cleaned.endswith("Z"):
        cleaned = cleaned[:-1] + "+00:00"
    # Python < 3.12 wants a colon in the offset; Salesforce itself emits +0000.
    if len(cleaned) > 5 and cleaned[-5] in "+-" and cleaned[-4:].isdigit() and "T" in cleaned:
        cleaned = cleaned[:-2] + ":" + cleaned[-2:]
    moment = datetime.fromisoformat(cleaned)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def wire_to_datetime(text: str) -> datetime:
    return parse_datetime(text)


def http_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
