"""The merge plan as a pure function: every rule, without I/O."""

from __future__ import annotations

from typing import Any

import pytest

from merge_svc.domain.limits import LIMIT_MESSAGE, MAX_MERGES, merges_involved, over_limit
from merge_svc.domain.plan import PlanError, RecordView, plan_merge, source_set_by_hand
from merge_svc.domain.rules import Strategy, rules_for


def view(record_id: str, created: str = "2024-01-01T00:00:00.000Z",
         history: dict[str, list[dict[str, Any]]] | None = None, **props: str) -> RecordView:
    return RecordView(id=record_id, properties=props, history=history or {}, created_at=created)


def auto(value: str, when: str = "2024-01-01T00:00:00.000Z") -> list[dict[str, Any]]:
    return [{"value": value, "timestamp": when, "sourceType": "ANALYTICS"}]


def by_hand(value: str, when: str = "2024-01-01T00:00:00.000Z") -> list[dict[str, Any]]:
    return [{"value": value, "timestamp": when, "sourceType": "API"}]


def contacts(primary: RecordView, secondary: RecordView, **keep: str) -> dict[str, str]:
    return plan_merge(object_type_id="0-1", primary=primary, secondary=secondary,
                      properties_to_keep=keep).properties  # type: ignore[arg-type]


def test_primary_wins_unless_empty() -> None:
    merged = contacts(view("1", firstname="Pat", lastname=""), view("2", firstname="Sam", lastname="Lee", city="Oslo"))
    assert (merged["firstname"], merged["lastname"], merged["city"]) == ("Pat", "Lee", "Oslo")


def test_properties_to_keep_beats_the_rules() -> None:
    merged = contacts(view("1", firstname="Pat", lifecyclestage="customer"),
                      view("2", firstname="Sam", lifecyclestage="lead"),
                      firstname="SECONDARY", lifecyclestage="SECONDARY")
    assert (merged["firstname"], merged["lifecyclestage"]) == ("Sam", "lead")


def test_create_date_is_the_oldest() -> None:
    merged = contacts(view("1", created="2024-05-01T00:00:00.000Z"), view("2", created="2023-02-03T04:05:06.000Z"))
    assert merged["createdate"] == "2023-02-03T04:05:06.000Z"
    merged = contacts(view("1", created="2022-01-01T00:00:00.000Z"), view("2", created="2023-02-03T04:05:06.000Z"))
    assert merged["createdate"] == "2022-01-01T00:00:00.000Z"


@pytest.mark.parametrize(("p", "s", "expected"), [
    ("lead", "customer", "customer"), ("customer", "lead", "customer"), ("", "opportunity", "opportunity"),
    ("subscriber", "", "subscriber"), ("evangelist", "other", "other"), ("mystage", "lead", "lead"),
])
def test_lifecycle_stage_is_the_furthest(p: str, s: str, expected: str) -> None:
    assert contacts(view("1", lifecyclestage=p), view("2", lifecyclestage=s))["lifecyclestage"] == expected


def test_counters_are_summed() -> None:
    counters = ("num_conversion_events", "num_unique_conversion_events", "hs_analytics_num_page_views",
                "hs_analytics_num_visits", "hs_analytics_num_event_completions")
    merged = contacts(view("1", **{c: "3" for c in counters}), view("2", **{c: "4" for c in counters[:-1]}))
    assert [merged[c] for c in counters] == ["7", "7", "7", "7", "3"]
    assert contacts(view("1", num_conversion_events="1.5"), view("2", num_conversion_events="2"))[
        "num_conversion_events"] == "3.5"
    assert "num_conversion_events" not in contacts(view("1"), view("2"))


@pytest.mark.parametrize(("p", "s", "expected"), [
    ("false", "true", "true"), ("true", "false", "true"), ("", "false", "false"), ("false", "", "false"),
])
def test_marketing_status_is_the_most_marketable(p: str, s: str, expected: str) -> None:
    assert contacts(view("1", hs_marketable_status=p), view("2", hs_marketable_status=s))[
        "hs_marketable_status"] == expected


def test_original_source_is_the_oldest_with_its_drill_downs() -> None:
    primary = view("1", created="2024-01-01T00:00:00.000Z", hs_analytics_source="PAID_SEARCH",
                   hs_analytics_source_data_1="google", hs_analytics_first_timestamp="2024-01-01T00:00:00.000Z",
                   history={"hs_analytics_source": auto("PAID_SEARCH")})
    secondary = view("2", created="2024-03-01T00:00:00.000Z", hs_analytics_source="ORGANIC_SEARCH",
                     hs_analytics_source_data_2="bing", hs_analytics_first_timestamp="2020-06-01T00:00:00.000Z",
                     history={"hs_analytics_source": auto("ORGANIC_SEARCH")})
    merged = contacts(primary, secondary)
    # First seen earlier wins, even though the secondary's record was created later; drill-downs travel along.
    assert merged["hs_analytics_source"] == "ORGANIC_SEARCH"
    assert merged.get("hs_analytics_source_data_1") is None and merged["hs_analytics_source_data_2"] == "bing"
    assert merged["hs_analytics_first_timestamp"] == "2020-06-01T00:00:00.000Z"


def test_original_source_falls_back_to_create_date() -> None:
    primary = view("1", created="2021-01-01T00:00:00.000Z", hs_analytics_source="DIRECT_TRAFFIC")
    secondary = view("2", created="2019-01-01T00:00:00.000Z", hs_analytics_source="REFERRALS")
    assert contacts(primary, secondary)["hs_analytics_source"] == "REFERRALS"
    assert contacts(secondary, primary)["hs_analytics_source"] == "REFERRALS"


def test_original_source_set_by_hand_on_the_primary_stays() -> None:
    primary = view("1", created="2024-01-01T00:00:00.000Z", hs_analytics_source="OFFLINE",
                   history={"hs_analytics_source": by_hand("OFFLINE")})
    secondary = view("2", created="2019-01-01T00:00:00.000Z", hs_analytics_source="REFERRALS",
                     hs_analytics_source_data_1="partner.example",
                     history={"hs_analytics_source": auto("REFERRALS")})
    assert source_set_by_hand(primary) and not source_set_by_hand(secondary)
    merged = contacts(primary, secondary)
    assert merged["hs_analytics_source"] == "OFFLINE" and "hs_analytics_source_data_1" not in merged


def test_legal_basis_is_the_union_most_recent_first() -> None:
    primary = view("1", hs_legal_basis="Performance of a contract",
                   history={"hs_legal_basis": by_hand("Performance of a contract", "2024-01-01T00:00:00.000Z")})
    secondary = view("2", hs_legal_basis="Freely given consent from contact;Performance of a contract",
                     history={"hs_legal_basis": by_hand("x", "2025-01-01T00:00:00.000Z")})
    assert contacts(primary, secondary)["hs_legal_basis"] == \
        "Freely given consent from contact;Performance of a contract"
    assert contacts(view("1", hs_legal_basis="Not applicable"), view("2"))["hs_legal_basis"] == "Not applicable"


def test_secondary_email_becomes_an_additional_email() -> None:
    merged = contacts(view("1", email="p@x.com", hs_additional_emails="p2@x.com"),
                      view("2", email="s@x.com", hs_additional_emails="s2@x.com;P2@x.com"))
    assert merged["email"] == "p@x.com"
    assert merged["hs_additional_emails"] == "p2@x.com;s2@x.com;s@x.com"


def test_primary_without_email_takes_the_secondarys() -> None:
    merged = contacts(view("1", firstname="Pat"), view("2", email="s@x.com"))
    assert merged["email"] == "s@x.com" and "hs_additional_emails" not in merged


def test_keeping_the_secondary_email_moves_the_primarys_to_additional() -> None:
    merged = contacts(view("1", email="p@x.com"), view("2", email="s@x.com"), email="SECONDARY")
    assert (merged["email"], merged["hs_additional_emails"]) == ("s@x.com", "p@x.com")


def test_company_domain_rules() -> None:
    def companies(p: RecordView, s: RecordView) -> dict[str, str]:
        return plan_merge(object_type_id="0-2", primary=p, secondary=s).properties

    merged = companies(view("1", domain="acme.com", hs_additional_domains="acme.io"),
                       view("2", domain="acme.de", hs_additional_domains="acme.fr"))
    assert (merged["domain"], merged["hs_additional_domains"]) == ("acme.com", "acme.io;acme.fr;acme.de")
    merged = companies(view("1", name="Acme"), view("2", domain="acme.de"))
    assert merged["domain"] == "acme.de" and "hs_additional_domains" not in merged
    merged = companies(view("1", lifecyclestage="lead", hs_analytics_num_visits="2"),
                       view("2", lifecyclestage="customer", hs_analytics_num_visits="5"))
    assert (merged["lifecyclestage"], merged["hs_analytics_num_visits"]) == ("customer", "7")


def test_deals_and_custom_objects_use_the_default_table() -> None:
    for type_id in ("0-3", "2-123"):
        merged = plan_merge(object_type_id=type_id, primary=view("1", amount="10", dealstage=""),
                            secondary=view("2", amount="20", dealstage="closedwon", num_conversion_events="1")
                            ).properties
        assert (merged["amount"], merged["dealstage"]) == ("10", "closedwon")


def test_system_managed_properties_are_left_to_records_svc() -> None:
    merged = contacts(view("1", hs_merged_object_ids="5;6", lastmodifieddate="x"), view("2", hs_object_id="2"))
    assert not {"hs_merged_object_ids", "lastmodifieddate", "hs_object_id"} & set(merged)
    with pytest.raises(PlanError):
        contacts(view("1"), view("2"), hs_merged_object_ids="SECONDARY")


def test_account_overrides_change_a_rule() -> None:
    table = rules_for("0-1", {"num_conversion_events": Strategy.PRIMARY_UNLESS_EMPTY,
                              "jobtitle": Strategy.SUM})
    assert table["num_conversion_events"].strategy == Strategy.PRIMARY_UNLESS_EMPTY
    merged = plan_merge(object_type_id="0-1", primary=view("1", num_conversion_events="3"),
                        secondary=view("2", num_conversion_events="4"),
                        overrides={"num_conversion_events": Strategy.PRIMARY_UNLESS_EMPTY}).properties
    assert merged["num_conversion_events"] == "3"


def test_a_chain_of_merges_is_refused_at_the_251st() -> None:
    """records-svc lists every absorbed id: after k chained merges the result lists 2k ids."""
    result_ids = ""
    for k in range(1, MAX_MERGES + 2):
        primary_id, fresh = f"r{k - 1}", f"f{k}"
        involved = merges_involved(primary_id, result_ids, fresh, "")
        assert involved == k
        if k == MAX_MERGES + 1:
            assert over_limit(involved)
            break
        assert not over_limit(involved)
        result_ids = ";".join(filter(None, [result_ids, primary_id, fresh]))
    assert LIMIT_MESSAGE == "Cannot have more than 250 identities on a profile"


def test_merging_two_merged_records_counts_both_histories() -> None:
    a = ";".join(str(i) for i in range(200))  # 100 merges
    b = ";".join(str(i) for i in range(1000, 1300))  # 150 merges
    assert merges_involved("x", a, "y", b) == 251
