"""Sync errors by HubSpot's Sync Health categories, and when a failed record is tried again (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum


class ErrorCategory(StrEnum):
    ASSOCIATIONS = "ASSOCIATIONS"
    CUSTOM_CODE = "CUSTOM_CODE"
    DUPLICATES = "DUPLICATES"
    PERMISSIONS = "PERMISSIONS"
    PROPERTY_VALUES = "PROPERTY_VALUES"
    CONNECTION = "CONNECTION"
    API_LIMIT = "API_LIMIT"


class Direction(StrEnum):
    INBOUND = "INBOUND"  # Salesforce to Corral
    OUTBOUND = "OUTBOUND"  # Corral to Salesforce


_BY_CODE: dict[str, ErrorCategory] = {
    # Salesforce validation rules, flows, triggers and Apex
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": ErrorCategory.CUSTOM_CODE,
    "CANNOT_EXECUTE_FLOW_TRIGGER": ErrorCategory.CUSTOM_CODE,
    "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY": ErrorCategory.CUSTOM_CODE,
    "APEX_ERROR": ErrorCategory.CUSTOM_CODE,
    # duplicates
    "DUPLICATES_DETECTED": ErrorCategory.DUPLICATES,
    "DUPLICATE_VALUE": ErrorCategory.DUPLICATES,
    "DUPLICATE_EXTERNAL_ID": ErrorCategory.DUPLICATES,
    "DUPLICATE_UNIQUE_PROPERTY_VALUE": ErrorCategory.DUPLICATES,
    # field-level security, sharing, missing records
    "INSUFFICIENT_ACCESS_OR_READONLY": ErrorCategory.PERMISSIONS,
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY": ErrorCategory.PERMISSIONS,
    "INVALID_FIELD_FOR_INSERT_UPDATE": ErrorCategory.PERMISSIONS,
    "INVALID_FIELD": ErrorCategory.PERMISSIONS,
    "ENTITY_IS_DELETED": ErrorCategory.PERMISSIONS,
    "NOT_FOUND": ErrorCategory.PERMISSIONS,
    "INVALID_CROSS_REFERENCE_KEY": ErrorCategory.ASSOCIATIONS,
    "ASSOCIATION_WAITING": ErrorCategory.ASSOCIATIONS,
    # the org and the session; records Salesforce could not take right now (retried with backoff)
    "UNABLE_TO_LOCK_ROW": ErrorCategory.CONNECTION,
    "SERVER_UNAVAILABLE": ErrorCategory.CONNECTION,
    "API_DISABLED_FOR_ORG": ErrorCategory.CONNECTION,
    "INVALID_SESSION_ID": ErrorCategory.CONNECTION,
    "REQUEST_LIMIT_EXCEEDED": ErrorCategory.API_LIMIT,
}


def category_of(code: str) -> ErrorCategory:
    """Values Salesforce or Corral refused (picklists, lengths, formats, required fields) are the default."""
    return _BY_CODE.get(code, ErrorCategory.PROPERTY_VALUES)


def next_retry(attempts: int, now: datetime, *, base_seconds: float, max_seconds: float) -> datetime:
    """Doubling waits between tries of a failed record: base, 2x base, 4x base, ... up to the maximum."""
    delay = min(max_seconds, base_seconds * (2 ** max(attempts - 1, 0)))
    return now + timedelta(seconds=delay)
