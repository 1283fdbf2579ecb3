"""Merge rules as data: which strategy decides each property's merged value, per object type.

Every property not listed here follows PRIMARY_UNLESS_EMPTY. The rows mirror HubSpot's documented merge
behaviour (KB "How do I merge contacts/companies") plus the choices the product spec makes explicit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Strategy(StrEnum):
    # The primary's value, or the secondary's when the primary's is empty.
    PRIMARY_UNLESS_EMPTY = "PRIMARY_UNLESS_EMPTY"
    # The oldest date/datetime (createdate falls back to the record's createdAt).
    OLDEST = "OLDEST"
    # The most recent date/datetime.
    NEWEST = "NEWEST"
    # The stage furthest along the lifecycle funnel.
    FURTHEST_LIFECYCLE = "FURTHEST_LIFECYCLE"
    # Numbers added up (empty counts as 0; both empty stays empty).
    SUM = "SUM"
    # hs_marketable_status: "true" beats "false" beats empty.
    MOST_MARKETABLE = "MOST_MARKETABLE"
    # Original traffic source and its drill-downs, taken together from the record first seen earliest,
    # unless the primary's source was set by hand (see plan.source_set_by_hand).
    OLDEST_SOURCE = "OLDEST_SOURCE"
    # Multi-value property: the values of both records, the most recently set record's first.
    MOST_RECENT_UNION = "MOST_RECENT_UNION"
    # Unique identity (email, domain): one value stays, the other joins the additional-values property.
    SECONDARY_TO_ADDITIONAL = "SECONDARY_TO_ADDITIONAL"


@dataclass(frozen=True)
class MergeRule:
    property: str
    strategy: Strategy
    # SECONDARY_TO_ADDITIONAL: the multi-value property collecting the identity that does not stay.
    additional: str | None = None


LIFECYCLE_FUNNEL = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
                    "customer", "evangelist", "other")

# The drill-downs travel with the source they describe: they are always taken from the same record.
SOURCE_GROUP = ("hs_analytics_source", "hs_analytics_source_data_1", "hs_analytics_source_data_2")

# Maintained by records-svc: never part of a plan.
SYSTEM_MANAGED = frozenset({"hs_object_id", "hs_merged_object_ids", "lastmodifieddate", "hs_lastmodifieddate"})

_COMMON = (MergeRule("createdate", Strategy.OLDEST),)

_SOURCE = tuple(MergeRule(p, Strategy.OLDEST_SOURCE) for p in SOURCE_GROUP)

CONTACT_RULES: tuple[MergeRule, ...] = (
    *_COMMON,
    MergeRule("email", Strategy.SECONDARY_TO_ADDITIONAL, additional="hs_additional_emails"),
    MergeRule("lifecyclestage", Strategy.FURTHEST_LIFECYCLE),
    MergeRule("num_conversion_events", Strategy.SUM),
    MergeRule("num_unique_conversion_events", Strategy.SUM),
    MergeRule("hs_analytics_num_page_views", Strategy.SUM),
    MergeRule("hs_analytics_num_visits", Strategy.SUM),
    MergeRule("hs_analytics_num_event_completions", Strategy.SUM),
    MergeRule("hs_marketable_status", Strategy.MOST_MARKETABLE),
    *_SOURCE,
    MergeRule("hs_analytics_first_timestamp", Strategy.OLDEST),
    MergeRule("first_conversion_date", Strategy.OLDEST),
    MergeRule("recent_conversion_date", Strategy.NEWEST),
    MergeRule("hs_legal_basis", Strategy.MOST_RECENT_UNION),
)

COMPANY_RULES: tuple[MergeRule, ...] = (
    *_COMMON,
    MergeRule("domain", Strategy.SECONDARY_TO_ADDITIONAL, additional="hs_additional_domains"),
    MergeRule("lifecyclestage", Strategy.FURTHEST_LIFECYCLE),
    MergeRule("hs_analytics_num_page_views", Strategy.SUM),
    MergeRule("hs_analytics_num_visits", Strategy.SUM),
    *_SOURCE,
)

DEFAULT_RULES: tuple[MergeRule, ...] = _COMMON

RULES_BY_OBJECT_TYPE: dict[str, tuple[MergeRule, ...]] = {
    "0-1": CONTACT_RULES,
    "0-2": COMPANY_RULES,
    "0-3": DEFAULT_RULES,
    "0-5": DEFAULT_RULES,
}


def rules_for(object_type_id: str, overrides: dict[str, Strategy] | None = None) -> dict[str, MergeRule]:
    """The rule table of one object type (custom objects get the default table), with account overrides."""
    table = {rule.property: rule for rule in RULES_BY_OBJECT_TYPE.get(object_type_id, DEFAULT_RULES)}
    for prop, strategy in (overrides or {}).items():
        if strategy == Strategy.SECONDARY_TO_ADDITIONAL and prop not in table:
            continue  # needs a partner property; only the built-in rows know it
        additional = table[prop].additional if prop in table else None
        table[prop] = MergeRule(prop, Strategy(strategy), additional=additional)
    return table
