"""Salesforce's REST error shape: a JSON list of {message, errorCode, fields}."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SalesforceError(Exception):
    """One API error; `status` is the HTTP status the whole response carries when it stands alone."""

    status: int
    error_code: str
    message: str
    fields: list[str] | None = field(default=None)
    extra: dict | None = field(default=None)  # e.g. duplicateResult on DUPLICATES_DETECTED

    def body_item(self) -> dict:
        item: dict = {**(self.extra or {}), "message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            item["fields"] = self.fields
        return item

    def collection_item(self) -> dict:
        # Collections report per-record errors under `statusCode`, not `errorCode`.
        return {**(self.extra or {}), "statusCode": self.error_code, "message": self.message,
                "fields": self.fields or []}


def not_found() -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")


def entity_is_deleted() -> SalesforceError:
    return SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted", [])


def invalid_session() -> SalesforceError:
    return SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def malformed_id(value: str, label: str = "Record ID") -> SalesforceError:
    return SalesforceError(400, "MALFORMED_ID", f"{label}: id value of incorrect type: {value}", ["Id"])


def json_parser_error(detail: str) -> SalesforceError:
    return SalesforceError(400, "JSON_PARSER_ERROR", detail)


class OAuthError(Exception):
    """Token endpoint failures use OAuth's own body: {"error", "error_description"}."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
