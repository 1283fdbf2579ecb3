"""Structured logging (structlog, JSON) with the request id and correlation id in every line."""

from __future__ import annotations

import logging
import sys
import uuid
from contextvars import ContextVar

import structlog

from crm_common.observability.tracing import add_trace_ids

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str:
    """The id of the request being served; a fresh one outside a request so errors always carry one."""
    value = _request_id.get()
    if value is None:
        value = str(uuid.uuid4())
        _request_id.set(value)
    return value


def set_request_id(value: str | None) -> str:
    value = value or str(uuid.uuid4())
    _request_id.set(value)
    structlog.contextvars.bind_contextvars(request_id=value, correlation_id=value)
    return value


def configure_logging(service: str, level: str = "INFO", json_output: bool = True) -> None:
    renderer = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_trace_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(message)s")
    # Access logs come from our middleware with ids attached; uvicorn's own would duplicate them.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # One line per outgoing call drowns the request logs; failures still surface as WARNING.
    logging.getLogger("httpx").setLevel(logging.WARNING)
