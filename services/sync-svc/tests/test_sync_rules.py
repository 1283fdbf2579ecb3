"""HubSpot's four sync rules, exhaustively: every rule against every change on either side (values and clears),
first syncs, and both conflict orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sync_svc.domain.reconcile import ActiveMapping, CorralSide, is_echo, reconcile
from sync_svc.domain.rules import FieldState, SyncRule, decide
from sync_svc.domain.values import ValueKind

P, A, T, D = (SyncRule.PREFER_SALESFORCE_UNLESS_BLANK, SyncRule.ALWAYS_SALESFORCE, SyncRule.TWO_WAY,
              SyncRule.DONT_SYNC)
EARLY = datetime(2026, 1, 1, 10, tzinfo=UTC)
LATE = EARLY + timedelta(minutes=5)

# name: (corral, salesforce, shadow, corral changed at, salesforce changed at)
SCENARIOS = {
    "corral value": ("new", "old", "old", LATE, EARLY),
    "corral clear": ("", "old", "old", LATE, EARLY),
    "salesforce value": ("old", "new", "old", EARLY, LATE),
    "salesforce clear": ("old", "", "old", EARLY, LATE),
    "both, corral later": ("c2", "f2", "old", LATE, EARLY),
    "both, salesforce later": ("c2", "f2", "old", EARLY, LATE),
    "both, same value": ("same", "same", "old", EARLY, LATE),
    "first sync, corral value": ("v", "", None, LATE, EARLY),
    "first sync, salesforce value": ("", "v", None, EARLY, LATE),
    "first sync, differ, corral later": ("c", "f", None, LATE, EARLY),
    "first sync, differ, salesforce later": ("c", "f", None, EARLY, LATE),
    "corral value, salesforce blank": ("v", "", "", LATE, EARLY),
    "salesforce clear vs corral value, corral later": ("new", "", "old", LATE, EARLY),
    "salesforce clear vs corral value, salesforce later": ("new", "", "old", EARLY, LATE),
    "corral clear vs salesforce value, corral later": ("", "new", "old", LATE, EARLY),
    "corral clear vs salesforce value, salesforce later": ("", "new", "old", EARLY, LATE),
    "nothing changed": ("old", "old", "old", EARLY, EARLY),
}

# (to Salesforce, to Corral); None = nothing written that way.
EXPECTED = {
    P: {
        "corral value": (None, "old"),  # Salesforce has a value: it wins, Corral's edit does not pass
        "corral clear": (None, "old"),
        "salesforce value": (None, "new"),
        "salesforce clear": (None, ""),
        "both, corral later": (None, "f2"),
        "both, salesforce later": (None, "f2"),
        "both, same value": (None, None),
        "first sync, corral value": ("v", None),  # Salesforce blank: Corral fills it
        "first sync, salesforce value": (None, "v"),
        "first sync, differ, corral later": (None, "f"),
        "first sync, differ, salesforce later": (None, "f"),
        "corral value, salesforce blank": ("v", None),
        "salesforce clear vs corral value, corral later": (None, ""),  # a clear made in Salesforce wins
        "salesforce clear vs corral value, salesforce later": (None, ""),
        "corral clear vs salesforce value, corral later": (None, "new"),
        "corral clear vs salesforce value, salesforce later": (None, "new"),
        "nothing changed": (None, None),
    },
    A: {
        "corral value": (None, "old"),
        "corral clear": (None, "old"),
        "salesforce value": (None, "new"),
        "salesforce clear": (None, ""),
        "both, corral later": (None, "f2"),
        "both, salesforce later": (None, "f2"),
        "both, same value": (None, None),
        "first sync, corral value": (None, None),  # Corral never writes, not even into a blank
        "first sync, salesforce value": (None, "v"),
        "first sync, differ, corral later": (None, "f"),
        "first sync, differ, salesforce later": (None, "f"),
        "corral value, salesforce blank": (None, None),
        "salesforce clear vs corral value, corral later": (None, ""),
        "salesforce clear vs corral value, salesforce later": (None, ""),
        "corral clear vs salesforce value, corral later": (None, "new"),
        "corral clear vs salesforce value, salesforce later": (None, "new"),
        "nothing changed": (None, None),
    },
    T: {
        "corral value": ("new", None),
        "corral clear": ("", None),  # clears travel both ways
        "salesforce value": (None, "new"),
        "salesforce clear": (None, ""),
        "both, corral later": ("c2", None),  # the later change wins
        "both, salesforce later": (None, "f2"),
        "both, same value": (None, None),
        "first sync, corral value": ("v", None),
        "first sync, salesforce value": (None, "v"),
        "first sync, differ, corral later": ("c", None),
        "first sync, differ, salesforce later": (None, "f"),
        "corral value, salesforce blank": ("v", None),
        "salesforce clear vs corral value, corral later": ("new", None),
        "salesforce clear vs corral value, salesforce later": (None, ""),
        "corral clear vs salesforce value, corral later": ("", None),
        "corral clear vs salesforce value, salesforce later": (None, "new"),
        "nothing changed": (None, None),
    },
    D: {name: (None, None) for name in SCENARIOS},
}


@pytest.mark.parametrize("rule", [P, A, T, D], ids=lambda r: r.value)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_rule_table(rule: SyncRule, scenario: str) -> None:
    corral, salesforce, shadow, corral_at, salesforce_at = SCENARIOS[scenario]
    decision = decide(rule, FieldState(corral, salesforce, shadow, corral_at, salesforce_at))
    assert (decision.to_salesforce, decision.to_corral) == EXPECTED[rule][scenario]
    if rule is not D and decision.writes:
        # After the writes both sides hold the shadow: the echo of either write goes nowhere.
        after_corral = decision.to_corral if decision.to_corral is not None else corral
        after_salesforce = decision.to_salesforce if decision.to_salesforce is not None else salesforce
        assert after_corral == after_salesforce == decision.shadow
        echo = decide(rule, FieldState(after_corral, after_salesforce, decision.shadow, LATE, LATE))
        assert not echo.writes


def test_conflicts_are_flagged_only_when_both_sides_changed() -> None:
    both = decide(T, FieldState("c2", "f2", "old", LATE, EARLY))
    assert both.conflict
    assert not decide(T, FieldState("new", "old", "old", LATE, EARLY)).conflict
    # A tie goes to Salesforce; an unknown Corral time loses.
    assert decide(T, FieldState("c", "f", "old", LATE, LATE)).to_corral == "f"
    assert decide(T, FieldState("c", "f", "old", None, EARLY)).to_corral == "f"
    assert decide(T, FieldState("c", "f", "old", EARLY, None)).to_salesforce == "c"


values = st.sampled_from(["", "a", "b", "c"])
shadows = st.one_of(st.none(), values)
moments = st.sampled_from([None, EARLY, LATE])


@given(rule=st.sampled_from([P, A, T, D]), corral=values, salesforce=values, shadow=shadows, corral_at=moments,
       salesforce_at=moments)
def test_no_ping_pong(rule, corral, salesforce, shadow, corral_at, salesforce_at) -> None:
    """Applying a decision and deciding again never writes again: a sync settles in one step."""
    first = decide(rule, FieldState(corral, salesforce, shadow, corral_at, salesforce_at))
    corral_after = first.to_corral if first.to_corral is not None else corral
    salesforce_after = first.to_salesforce if first.to_salesforce is not None else salesforce
    second = decide(rule, FieldState(corral_after, salesforce_after, first.shadow, LATE, LATE))
    assert not second.writes
    if rule is D:
        assert not first.writes
    if rule is A:
        assert first.to_salesforce is None


TEXT = ValueKind("string", "string")
NUMBER = ValueKind("number", "currency")
EMAIL = ValueKind("string", "email", email=True)
DATETIME = ValueKind("datetime", "datetime")
MAPPINGS = [ActiveMapping("email", "Email", T, EMAIL), ActiveMapping("jobtitle", "Title", P, TEXT),
            ActiveMapping("amount", "Amount__c", T, NUMBER), ActiveMapping("closedate", "Close__c", A, DATETIME),
            ActiveMapping("notes", "Notes__c", D, TEXT)]


def test_reconcile_record_both_ways_with_canonical_values() -> None:
    corral = CorralSide(1, {"email": "Ada@Example.com", "jobtitle": "CTO", "amount": "100.50",
                            "closedate": "2026-01-02T03:04:05.000Z", "notes": "x"}, {"amount": LATE})
    row = {"Id": "003", "Email": "ada@example.com", "Title": None, "Amount__c": 100.5,
           "Close__c": "2026-01-02T03:04:05.000+0000", "Notes__c": "y"}
    shadow = {"email": "ada@example.com", "jobtitle": "", "amount": "100.5", "closedate": "2026-01-02T03:04:05.000Z"}
    result = reconcile(MAPPINGS, corral=corral, salesforce_row=row, shadow=shadow, salesforce_changed_at=EARLY)
    # Only the title differs: Salesforce is blank under "prefer Salesforce", so Corral fills it.
    assert result.to_salesforce == {"Title": "CTO"} and result.to_corral == {}
    assert is_echo(MAPPINGS, {**row, "Title": "CTO"}, result.shadow)
    assert not is_echo(MAPPINGS, {**row, "Title": "CEO"}, result.shadow)


def test_reconcile_new_records_each_way() -> None:
    corral = CorralSide(1, {"email": "a@x.com", "jobtitle": "CTO", "amount": "12", "closedate": "2026-01-02T00:00:00.000Z"})
    create = reconcile(MAPPINGS, corral=corral, salesforce_row=None, shadow=None, salesforce_changed_at=None)
    # Always-Salesforce fields are never sent, don't-sync fields never read.
    assert create.to_salesforce == {"Email": "a@x.com", "Title": "CTO", "Amount__c": 12}
    inbound = reconcile(MAPPINGS, corral=None, salesforce_row={"Id": "003", "Email": "B@x.com", "Title": "VP",
                                                               "Amount__c": 3.25, "Close__c": None, "Notes__c": "n"},
                        shadow=None, salesforce_changed_at=LATE)
    assert inbound.to_corral == {"email": "b@x.com", "jobtitle": "VP", "amount": "3.25"}
    assert inbound.to_salesforce == {}
