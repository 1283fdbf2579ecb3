"""HubSpot's timestamp text, written one way everywhere: UTC, milliseconds and `Z` (2024-05-01T10:00:00.000Z)."""

from __future__ import annotations

from datetime import UTC, datetime


def format_timestamp(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def timestamp_or_none(moment: datetime | None) -> str | None:
    return format_timestamp(moment) if moment else None


def now_timestamp() -> str:
    return format_timestamp(datetime.now(UTC))
