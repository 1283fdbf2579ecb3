"""Contacts captured without an email (beyond the mobile spec): matched by name with phone or company.

merge-svc scores the captured contact against the account's contacts (`POST /internal/v1/duplicates/check`,
the same model its duplicate suggestions use). A confident match (a name agrees, and so does a phone or the
company, at or above the account's threshold) updates that contact; anything weaker is created, and merge-svc's
consumer then suggests it as a duplicate of the contacts it resembles. Before the account's first duplicate scan
there is no model: the contact is created, with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from crm_common.contracts.base import ServiceCallError
from crm_common.contracts.merges import DuplicateCheckRequest, DuplicateMatch, MergesClient

log = structlog.get_logger(__name__)

NAME_PROPERTIES = frozenset({"firstname", "lastname"})
CORROBORATING = frozenset({"phone", "company"})  # "phone" stands for every phone property (pooled)
COMPARED = ("firstname", "lastname", "phone", "mobilephone", "company", "address", "city", "zip", "country")


@dataclass(frozen=True)
class Match:
    record_id: str | None
    warning: str | None = None


def confident(match: DuplicateMatch) -> bool:
    matched = set(match.matchedOn)
    return bool(matched & NAME_PROPERTIES) and bool(matched & CORROBORATING)


async def existing_contact(merges: MergesClient, account_id: int, properties: dict[str, Any]) -> Match:
    """The contact a keyless capture confidently matches, if any."""
    request = DuplicateCheckRequest(objectType="contacts",
                                    properties={k: properties[k] for k in COMPARED if properties.get(k)})
    try:
        answer = await merges.check_duplicates(account_id, request)
    except ServiceCallError as exc:
        log.warning("duplicate check failed", status=exc.status, error=exc.message)
        return Match(None, "The duplicate check failed: created without checking for duplicates")
    if answer is None:
        return Match(None, "No duplicate model yet (no duplicate scan of contacts has run): created without "
                           "checking for duplicates")
    best = next((m for m in answer.results if confident(m)), None)
    return Match(best.id if best else None)
