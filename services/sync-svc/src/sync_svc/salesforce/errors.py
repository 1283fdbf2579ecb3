"""What Salesforce can answer besides success, as exceptions the engine and the API can act on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Errors worth sending again as they are (Salesforce's own advice for these codes).
TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG",
                             "QUERY_TIMEOUT", "UNKNOWN_EXCEPTION"})
LIMIT_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "TXN_SECURITY_METERING_ERROR"})


@dataclass(frozen=True)
class SalesforceErrorItem:
    """One entry of Salesforce's error list: `errorCode` in REST answers, `statusCode` in collection rows."""

    code: str
    message: str
    fields: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: Any) -> SalesforceErrorItem:
        if not isinstance(raw, dict):
            return cls("UNKNOWN_EXCEPTION", str(raw)[:500])
        fields = raw.get("fields") or ()
        return cls(str(raw.get("errorCode") or raw.get("statusCode") or "UNKNOWN_EXCEPTION"),
                   str(raw.get("message") or ""), tuple(str(f) for f in fields if isinstance(f, str)))

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT_CODES

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "fields": list(self.fields)}


def parse_error_list(body: Any) -> list[SalesforceErrorItem]:
    if isinstance(body, list):
        return [SalesforceErrorItem.parse(item) for item in body] or [SalesforceErrorItem("UNKNOWN_EXCEPTION", "")]
    if isinstance(body, dict):
        return [SalesforceErrorItem.parse(body)]
    return [SalesforceErrorItem("UNKNOWN_EXCEPTION", str(body)[:500])]


class SalesforceError(Exception):
    """Base of everything the client raises."""


@dataclass
class LoginFailed(SalesforceError):
    """The token endpoint refused: OAuth's `error` and Salesforce's `error_description`."""

    error: str
    description: str
    status: int = 400

    def __str__(self) -> str:
        return f"{self.error}: {self.description}"


@dataclass
class SalesforceApiError(SalesforceError):
    """A data call Salesforce answered with an error status (after any retries)."""

    status: int
    errors: list[SalesforceErrorItem] = field(default_factory=list)

    @property
    def code(self) -> str:
        return self.errors[0].code if self.errors else "UNKNOWN_EXCEPTION"

    @property
    def message(self) -> str:
        return self.errors[0].message if self.errors else ""

    @property
    def transient(self) -> bool:
        return self.status >= 500 or any(e.transient for e in self.errors)

    def __str__(self) -> str:
        return f"Salesforce answered {self.status} {self.code}: {self.message}"


class ApiLimitExceeded(SalesforceApiError):
    """403 REQUEST_LIMIT_EXCEEDED: the org's daily allowance is spent; sync pauses until it recovers."""


class SalesforceUnavailable(SalesforceError):
    """Salesforce could not be reached or kept failing transiently (timeouts, 5xx) after the retries."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SessionRejected(SalesforceError):
    """A fresh login's session was refused too: the connection needs a person to reconnect it."""
