"""HubSpot's four sync rules, per field, as one pure decision (no I/O).

Every sync of a record, whichever side triggered it, asks `decide` for each mapped field with what both
sides hold now and the shadow: the value the field last held on both sides after a sync (None when the
record never synced). Comparing with the shadow tells a change from an echo, and a clear (a value that
was there and is gone) from a value that was never set:

- PREFER_SALESFORCE_UNLESS_BLANK: a Salesforce value overwrites Corral's; a Salesforce clear clears
  Corral; Corral writes only into an empty Salesforce field (never over a clear made in Salesforce).
- ALWAYS_SALESFORCE: the same, except that Corral never writes.
- TWO_WAY: a change on one side goes to the other, clears included; when both sides changed since the
  shadow, the later change wins (the property's change time in Corral against the row's
  LastModifiedDate in Salesforce, which is per row because Salesforce keeps no per-field time). On the
  first sync (no shadow) a value beats a blank and two different values go to the later one. A tie goes
  to Salesforce.
- DONT_SYNC: nothing passes.

Values are compared in their canonical Corral form (`values.canonical`), so an echo of our own write is
equal to the shadow and goes nowhere: that, not a flag, is what keeps the sync from ping-ponging.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class SyncRule(StrEnum):
    PREFER_SALESFORCE_UNLESS_BLANK = "PREFER_SALESFORCE_UNLESS_BLANK"
    ALWAYS_SALESFORCE = "ALWAYS_SALESFORCE"
    TWO_WAY = "TWO_WAY"
    DONT_SYNC = "DONT_SYNC"

    @property
    def writes_salesforce(self) -> bool:
        return self in (SyncRule.PREFER_SALESFORCE_UNLESS_BLANK, SyncRule.TWO_WAY)

    @property
    def writes_corral(self) -> bool:
        return self is not SyncRule.DONT_SYNC


@dataclass(frozen=True)
class FieldState:
    """One field on both sides, in canonical Corral form ("" = blank)."""

    corral: str
    salesforce: str
    shadow: str | None = None
    corral_changed_at: datetime | None = None
    salesforce_changed_at: datetime | None = None


@dataclass(frozen=True)
class FieldDecision:
    """What to write ("" clears; None writes nothing) and the shadow to keep afterwards."""

    to_salesforce: str | None = None
    to_corral: str | None = None
    shadow: str | None = None
    # Both sides changed since the last sync and disagree (reported in the cycle's counts).
    conflict: bool = False

    @property
    def writes(self) -> bool:
        return self.to_salesforce is not None or self.to_corral is not None


def decide(rule: SyncRule, state: FieldState) -> FieldDecision:
    corral, salesforce, shadow = state.corral, state.salesforce, state.shadow
    if rule is SyncRule.DONT_SYNC:
        return FieldDecision(shadow=shadow)
    if corral == salesforce:
        # Already equal: remember it so that the next change on either side is seen as one.
        return FieldDecision(shadow=corral)
    if rule is SyncRule.TWO_WAY:
        return _two_way(state)
    # PREFER_SALESFORCE_UNLESS_BLANK and ALWAYS_SALESFORCE: Salesforce's value, or its clear, wins.
    if salesforce != "":
        return FieldDecision(to_corral=salesforce, shadow=salesforce)
    if shadow:
        # Salesforce held a value we synced and holds none now: a clear made in Salesforce.
        return FieldDecision(to_corral="", shadow="")
    if rule is SyncRule.PREFER_SALESFORCE_UNLESS_BLANK:
        return FieldDecision(to_salesforce=corral, shadow=corral)
    # ALWAYS_SALESFORCE with nothing in Salesforce: Corral keeps its own value and never writes.
    return FieldDecision(shadow=shadow)


def _two_way(state: FieldState) -> FieldDecision:
    corral, salesforce, shadow = state.corral, state.salesforce, state.shadow
    if shadow is None:
        # First sync: a value beats a blank (there is no clear without a value before it).
        if salesforce == "":
            return FieldDecision(to_salesforce=corral, shadow=corral)
        if corral == "":
            return FieldDecision(to_corral=salesforce, shadow=salesforce)
        return _later_wins(state, conflict=True)
    corral_changed = corral != shadow
    salesforce_changed = salesforce != shadow
    if corral_changed and not salesforce_changed:
        return FieldDecision(to_salesforce=corral, shadow=corral)
    if salesforce_changed and not corral_changed:
        return FieldDecision(to_corral=salesforce, shadow=salesforce)
    return _later_wins(state, conflict=True)


def _later_wins(state: FieldState, *, conflict: bool) -> FieldDecision:
    corral_at, salesforce_at = state.corral_changed_at, state.salesforce_changed_at
    if corral_at is not None and (salesforce_at is None or corral_at > salesforce_at):
        return FieldDecision(to_salesforce=state.corral, shadow=state.corral, conflict=conflict)
    return FieldDecision(to_corral=state.salesforce, shadow=state.salesforce, conflict=conflict)
