"""The merge plan: the merged property map computed from two snapshots. Pure: no I/O, no framework."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from merge_svc.domain.rules import (
    LIFECYCLE_FUNNEL,
    SOURCE_GROUP,
    SYSTEM_MANAGED,
    MergeRule,
    Strategy,
    rules_for,
)

Side = Literal["PRIMARY", "SECONDARY"]
# A value of the source group counts as automatic (so the oldest record's wins) when its latest history
# entry came from one of these; any other source (API, CRM_UI, IMPORT, ...) means a person chose it.
AUTOMATIC_SOURCE_TYPES = frozenset({"ANALYTICS", "SYSTEM", "MERGE"})
MULTI_VALUE_SEPARATOR = ";"


@dataclass(frozen=True)
class RecordView:
    """What the plan needs of a record snapshot (records-svc `GET .../snapshot`)."""

    id: str
    properties: Mapping[str, str | None]
    history: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    created_at: str | None = None

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> RecordView:
        return cls(id=str(snapshot["id"]), properties=dict(snapshot.get("properties") or {}),
                   history=dict(snapshot.get("history") or {}), created_at=snapshot.get("createdAt"))

    def value(self, name: str) -> str:
        """The stored value, "" when empty; createdate falls back to the record's creation time."""
        raw = self.properties.get(name)
        if (raw is None or raw == "") and name == "createdate":
            raw = self.created_at
        return "" if raw is None else str(raw)

    def last_change(self, name: str) -> dict[str, Any] | None:
        entries = self.history.get(name) or []
        return entries[0] if entries else None


@dataclass
class MergePlan:
    """The merged values (empty ones left out) and, per property, which record it came from."""

    properties: dict[str, str]
    decisions: dict[str, str]


class PlanError(ValueError):
    """The request asks for something the plan cannot do (named property is system-managed)."""


def plan_merge(*, object_type_id: str, primary: RecordView, secondary: RecordView,
               properties_to_keep: Mapping[str, Side] | None = None,
               overrides: Mapping[str, Strategy] | None = None) -> MergePlan:
    """Decide every property of the merged record.

    An explicit `properties_to_keep` choice beats the rule table for that property (an identity
    property chosen from the secondary moves the primary's value to the additional values instead).
    """
    keep = dict(properties_to_keep or {})
    for name in keep:
        if name in SYSTEM_MANAGED:
            raise PlanError(f"{name} is maintained by the merge itself and cannot be chosen in propertiesToKeep")
    rules = rules_for(object_type_id, dict(overrides or {}))
    names = _ordered_union(primary.properties, secondary.properties, ["createdate"])
    names = [n for n in names if n not in SYSTEM_MANAGED]
    out: dict[str, str] = {}
    decisions: dict[str, str] = {}
    handled: set[str] = set()

    for rule in rules.values():
        if rule.strategy == Strategy.SECONDARY_TO_ADDITIONAL and rule.additional:
            _identity(rule, primary, secondary, keep.get(rule.property), out, decisions)
            handled.update({rule.property, rule.additional})
    if any(rules.get(p) and rules[p].strategy == Strategy.OLDEST_SOURCE for p in SOURCE_GROUP):
        group = [p for p in SOURCE_GROUP if rules.get(p) and rules[p].strategy == Strategy.OLDEST_SOURCE]
        side = _source_side(primary, secondary, keep)
        chosen = primary if side == "PRIMARY" else secondary
        for name in group:
            _put(out, decisions, name, chosen.value(name), side)
        handled.update(group)

    for name in names:
        if name in handled:
            continue
        if name in keep:
            side = keep[name]
            _put(out, decisions, name, (primary if side == "PRIMARY" else secondary).value(name), side)
            continue
        rule = rules.get(name) or MergeRule(name, Strategy.PRIMARY_UNLESS_EMPTY)
        value = _decide(rule.strategy, name, primary, secondary)
        _put(out, decisions, name, value, _origin(value, primary.value(name), secondary.value(name)))
    return MergePlan(properties=out, decisions=decisions)


def plan_cluster_merge(*, object_type_id: str, primary: RecordView, secondaries: list[RecordView],
                       properties_to_keep: Mapping[str, str] | None = None,
                       overrides: Mapping[str, Strategy] | None = None) -> MergePlan:
    """Decide the merged record of a whole cluster: the two-record rules folded over the secondaries in
    the order given (an empty value is filled from the first secondary that has one; sums, oldest and
    furthest values, additional emails and domains gather every record's).

    `properties_to_keep` names, per property, the record whose value to keep ("PRIMARY" or a record id).
    """
    keep = dict(properties_to_keep or {})
    ids = {primary.id, *(s.id for s in secondaries)}
    for name, chosen in keep.items():
        if chosen != "PRIMARY" and chosen not in ids:
            raise PlanError(f"propertiesToKeep.{name}: {chosen} is not one of the merged records")
    current = primary
    plan = MergePlan(properties={}, decisions={})
    for secondary in secondaries:
        step_keep: dict[str, Side] = {name: ("SECONDARY" if chosen == secondary.id else "PRIMARY")
                                      for name, chosen in keep.items()}
        plan = plan_merge(object_type_id=object_type_id, primary=current, secondary=secondary,
                          properties_to_keep=step_keep, overrides=overrides)
        current = RecordView(id=primary.id, properties=plan.properties,
                             history=_merged_history(current, secondary), created_at=_older(current, secondary))
    records = [primary, *secondaries]
    decisions = {}
    for name, value in plan.properties.items():
        origin = next((r for r in records if r.value(name) == value), None)
        decisions[name] = "COMBINED" if origin is None else ("PRIMARY" if origin is primary else origin.id)
    return MergePlan(properties=plan.properties, decisions=decisions)


def _merged_history(*records: RecordView) -> dict[str, list[dict[str, Any]]]:
    combined: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        for name, entries in record.history.items():
            combined.setdefault(name, []).extend(entries)
    return {n: sorted(e, key=lambda x: str(x.get("timestamp", "")), reverse=True) for n, e in combined.items()}


def _older(a: RecordView, b: RecordView) -> str | None:
    moments = [m for m in (a.created_at, b.created_at) if m]
    return min(moments, key=lambda m: parse_moment(m) or _EPOCH) if moments else None


# --- strategies -----------------------------------------------------------------------------------------


def _decide(strategy: Strategy, name: str, primary: RecordView, secondary: RecordView) -> str:
    p, s = primary.value(name), secondary.value(name)
    if strategy == Strategy.OLDEST:
        return _pick_moment(p, s, oldest=True)
    if strategy == Strategy.NEWEST:
        return _pick_moment(p, s, oldest=False)
    if strategy == Strategy.FURTHEST_LIFECYCLE:
        return furthest_lifecycle(p, s)
    if strategy == Strategy.SUM:
        return sum_numbers(p, s)
    if strategy == Strategy.MOST_MARKETABLE:
        return most_marketable(p, s)
    if strategy == Strategy.MOST_RECENT_UNION:
        newer_first = _changed_at(secondary, name) > _changed_at(primary, name)
        first, second = (s, p) if newer_first else (p, s)
        return MULTI_VALUE_SEPARATOR.join(_union(split_values(first), split_values(second)))
    # PRIMARY_UNLESS_EMPTY, and OLDEST_SOURCE/SECONDARY_TO_ADDITIONAL overridden onto a lone property.
    return p or s


def furthest_lifecycle(p: str, s: str) -> str:
    """Unknown (custom) stages lose to known ones; between two unknown ones the primary's wins."""
    rank = {stage: i for i, stage in enumerate(LIFECYCLE_FUNNEL)}
    rp, rs = rank.get(p.lower(), -1) if p else -2, rank.get(s.lower(), -1) if s else -2
    return s if rs > rp else p


def sum_numbers(p: str, s: str) -> str:
    if not p and not s:
        return ""
    total = _number(p) + _number(s)
    if total == total.to_integral_value():
        return str(int(total))
    return format(total.normalize(), "f")


def most_marketable(p: str, s: str) -> str:
    order = {"true": 2, "false": 1}
    return s if order.get(s.lower(), 0) > order.get(p.lower(), 0) else p


def source_set_by_hand(record: RecordView) -> bool:
    """The original source was set by a person when its latest history entry is not automatic.

    Corral computes no analytics itself, so "automatic" means written with sourceType ANALYTICS or
    SYSTEM (tracking integrations), or carried over by an earlier MERGE. A value without history counts
    as automatic.
    """
    if not record.value("hs_analytics_source"):
        return False
    last = record.last_change("hs_analytics_source")
    return last is not None and str(last.get("sourceType", "")).upper() not in AUTOMATIC_SOURCE_TYPES


def _source_side(primary: RecordView, secondary: RecordView, keep: Mapping[str, Side]) -> Side:
    for name in SOURCE_GROUP:
        if name in keep:
            return keep[name]
    if source_set_by_hand(primary):
        return "PRIMARY"
    if not secondary.value("hs_analytics_source"):
        return "PRIMARY"
    if not primary.value("hs_analytics_source"):
        return "SECONDARY"
    first_p, first_s = _first_seen(primary), _first_seen(secondary)
    if first_s is not None and (first_p is None or first_s < first_p):
        return "SECONDARY"
    return "PRIMARY"


def _first_seen(record: RecordView) -> datetime | None:
    return parse_moment(record.value("hs_analytics_first_timestamp")) or parse_moment(record.value("createdate"))


def _identity(rule: MergeRule, primary: RecordView, secondary: RecordView, chosen: Side | None,
              out: dict[str, str], decisions: dict[str, str]) -> None:
    """One identity stays in the property; every other one of both records becomes an additional value."""
    assert rule.additional
    p, s = primary.value(rule.property), secondary.value(rule.property)
    if chosen == "SECONDARY" or (chosen is None and not p):
        stay, other, side = s, p, "SECONDARY"
    else:
        stay, other, side = p, s, "PRIMARY"
    extra = _union(split_values(primary.value(rule.additional)), split_values(secondary.value(rule.additional)),
                   [other] if other else [])
    extra = [v for v in extra if v.lower() != stay.lower()]
    _put(out, decisions, rule.property, stay, side)
    _put(out, decisions, rule.additional, MULTI_VALUE_SEPARATOR.join(extra), "COMBINED")


# --- helpers --------------------------------------------------------------------------------------------


def _put(out: dict[str, str], decisions: dict[str, str], name: str, value: str, origin: str) -> None:
    if value != "":
        out[name] = value
        decisions[name] = origin


def _origin(value: str, p: str, s: str) -> str:
    if value == p:
        return "PRIMARY"
    if value == s:
        return "SECONDARY"
    return "COMBINED"


def _ordered_union(*groups: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for group in groups:
        for item in group:
            seen.setdefault(item, None)
    return list(seen)


def _union(*groups: Iterable[str]) -> list[str]:
    """Case-insensitive union keeping first spelling and order."""
    seen: dict[str, str] = {}
    for group in groups:
        for item in group:
            seen.setdefault(item.lower(), item)
    return list(seen.values())


def split_values(value: str) -> list[str]:
    return [v.strip() for v in value.split(MULTI_VALUE_SEPARATOR) if v.strip()]


def _number(text: str) -> Decimal:
    if not text:
        return Decimal(0)
    try:
        return Decimal(text)
    except InvalidOperation:
        return Decimal(0)


def parse_moment(text: str) -> datetime | None:
    """ISO-8601 (with Z or offset, or a bare date) or epoch milliseconds, as an aware UTC datetime."""
    if not text:
        return None
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _pick_moment(p: str, s: str, *, oldest: bool) -> str:
    mp, ms = parse_moment(p), parse_moment(s)
    if ms is None:
        return p or s
    if mp is None:
        return s
    if oldest:
        return s if ms < mp else p
    return s if ms > mp else p


_EPOCH = datetime.min.replace(tzinfo=UTC)


def _changed_at(record: RecordView, name: str) -> datetime:
    last = record.last_change(name)
    return (parse_moment(str(last.get("timestamp", ""))) if last else None) or _EPOCH
