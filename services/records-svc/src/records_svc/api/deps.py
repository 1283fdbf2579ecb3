"""Annotated dependencies: the request's unit of work and the caller's verified auth context."""

from __future__ import annotations

from crm_common.auth import Auth
from crm_common.deps import Session

__all__ = ["Auth", "Session"]
