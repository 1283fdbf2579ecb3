"""One record on both sides through every mapping: what to write where, and the shadow to keep (pure).

Both directions use this: the outbound flush (a Corral change, with Salesforce's row read in bulk) and
the inbound poll (a Salesforce change, with Corral's record read in bulk). Whichever side triggered the
sync, the rules see both sides, so a change made on the other side in between is never overwritten
blindly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sync_svc.domain.rules import FieldState, SyncRule, decide
from sync_svc.domain.values import UnconvertibleValue, ValueKind, canonical, from_salesforce, to_salesforce


@dataclass(frozen=True)
class ActiveMapping:
    property: str
    field: str
    rule: SyncRule
    kind: ValueKind


@dataclass
class CorralSide:
    """A Corral record as the sync sees it: values and, per property, when it last changed."""

    id: int
    properties: dict[str, str]
    changed_at: dict[str, datetime] = field(default_factory=dict)


@dataclass
class RecordSync:
    to_salesforce: dict[str, Any] = field(default_factory=dict)  # field -> Salesforce JSON value
    to_corral: dict[str, str] = field(default_factory=dict)  # property -> Corral value ("" clears)
    shadow: dict[str, str] = field(default_factory=dict)  # property -> canonical value both sides hold
    conflicts: list[str] = field(default_factory=list)
    # Values one side cannot take, by property (e.g. a Salesforce compound value).
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def writes(self) -> bool:
        return bool(self.to_salesforce or self.to_corral)


def salesforce_values(mappings: list[ActiveMapping], row: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """A Salesforce row's mapped fields in canonical Corral form, and the fields that could not be read."""
    values: dict[str, str] = {}
    problems: dict[str, str] = {}
    lowered = {key.lower(): value for key, value in row.items()}
    for mapping in mappings:
        if mapping.rule is SyncRule.DONT_SYNC:
            continue
        try:
            values[mapping.property] = canonical(from_salesforce(lowered.get(mapping.field.lower()), mapping.kind),
                                                 mapping.kind)
        except UnconvertibleValue as exc:
            problems[mapping.property] = str(exc)
    return values, problems


def is_echo(mappings: list[ActiveMapping], row: dict[str, Any], shadow: dict[str, str]) -> bool:
    """True when every synced field of the Salesforce row equals the shadow: nothing changed there since the
    last sync (typically our own write coming back), so the row needs no further look."""
    values, problems = salesforce_values(mappings, row)
    return not problems and all(shadow.get(prop) == value for prop, value in values.items())


def reconcile(mappings: list[ActiveMapping], *, corral: CorralSide | None, salesforce_row: dict[str, Any] | None,
              shadow: dict[str, str] | None, salesforce_changed_at: datetime | None) -> RecordSync:
    """`corral` None: a Salesforce record with no Corral record yet (everything Salesforce has goes to Corral);
    `salesforce_row` None: a Corral record to create in Salesforce."""
    out = RecordSync()
    sf_values, problems = salesforce_values(mappings, salesforce_row) if salesforce_row is not None else ({}, {})
    out.problems.update(problems)
    shadow = shadow or {}
    for mapping in mappings:
        if mapping.rule is SyncRule.DONT_SYNC or mapping.property in problems:
            continue
        corral_value = canonical(corral.properties.get(mapping.property, "") if corral else "", mapping.kind)
        state = FieldState(
            corral=corral_value,
            salesforce=sf_values.get(mapping.property, ""),
            shadow=shadow.get(mapping.property),
            corral_changed_at=corral.changed_at.get(mapping.property) if corral else None,
            salesforce_changed_at=salesforce_changed_at,
        )
        decision = decide(mapping.rule, state)
        if decision.to_salesforce is not None:
            try:
                out.to_salesforce[mapping.field] = to_salesforce(decision.to_salesforce, mapping.kind)
            except UnconvertibleValue as exc:
                out.problems[mapping.property] = str(exc)
                continue
        if decision.to_corral is not None:
            out.to_corral[mapping.property] = decision.to_corral
        if decision.shadow is not None:
            out.shadow[mapping.property] = decision.shadow
        if decision.conflict:
            out.conflicts.append(mapping.property)
    return out
