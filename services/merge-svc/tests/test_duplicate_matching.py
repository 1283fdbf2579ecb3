"""Normalisers, comparisons, block keys and the Python scorer (checked against splink's own scores)."""

from __future__ import annotations

import pytest

from merge_svc.domain import matching, normalise
from merge_svc.domain.clustering import connected_components
from merge_svc.domain.matching import Kind, MatchingSettings, MatchProperty
from merge_svc.duplicates import linkage

from .helpers import synthetic_contacts


@pytest.mark.parametrize(("raw", "expected"), [
    ("(415) 555-0100", "+14155550100"), ("415.555.0100", "+14155550100"), ("+1 415 555 0100", "+14155550100"),
    ("0044 20 7946 0958", "+442079460958"), ("+44 (0)20 7946 0958", "+442079460958"), ("12", ""), ("", ""),
])
def test_phones_become_e164(raw: str, expected: str) -> None:
    assert normalise.phone(raw) == expected


def test_phone_tail_meets_a_number_written_without_its_country_code() -> None:
    assert normalise.phone_tail(normalise.phone("+61 2 9876 5432")) == normalise.phone_tail(normalise.phone("9876 5432"))


@pytest.mark.parametrize(("raw", "expected"), [
    ("Ada.Lovelace+crm@GMail.com", "adalovelace@gmail.com"), ("ada@googlemail.com", "ada@gmail.com"),
    ("Ada+x@Example.COM", "ada@example.com"), ("not an email", ""),
])
def test_emails(raw: str, expected: str) -> None:
    assert normalise.email(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("https://www.acme.co.uk/about", "acme.co.uk"), ("sales@mail.acme.co.uk", "acme.co.uk"), ("ACME.com", "acme.com"),
    ("shop.example.github.io", "example.github.io"), ("", ""),
])
def test_domains_use_the_public_suffix_list_offline(raw: str, expected: str) -> None:
    assert normalise.domain(raw) == expected


def test_names_transliterate_and_know_nicknames() -> None:
    assert normalise.name("Zoë O'Brien-Smith") == "zoeobriensmith"
    assert "william" in normalise.name_family("bill")
    assert set(normalise.name_family("liz")) & set(normalise.name_family("beth"))
    assert normalise.phonetic("stephen") == normalise.phonetic("steven")
    assert normalise.split_full_name("Lovelace, Ada") == ("ada", "lovelace")


def test_addresses_postcodes_dates() -> None:
    assert normalise.address("12 Tullaroop Street, Apartment 4") == normalise.address("12 tullaroop st apt 4")
    assert normalise.postcode(" sw1a 1aa ") == "SW1A1AA"
    assert {normalise.date(v) for v in ("1956-04-09", "19560409", "1956-04-09T00:00:00Z", "-431049600000"[1:])} >= {
        "19560409"}


SETTINGS = MatchingSettings((
    MatchProperty("firstname", Kind.NAME), MatchProperty("lastname", Kind.NAME),
    MatchProperty("email", Kind.EMAIL), MatchProperty("hs_additional_emails", Kind.EMAIL),
    MatchProperty("phone", Kind.PHONE), MatchProperty("city", Kind.TEXT), MatchProperty("zip", Kind.POSTCODE),
    MatchProperty("date_of_birth", Kind.DATE)), threshold=0.9)


def test_comparisons_say_how_values_matched() -> None:
    specs = matching.comparisons(SETTINGS)
    left = matching.features({"firstname": "William", "lastname": "Smith", "email": "bill@x.com",
                              "phone": "(415) 555-0100"}, SETTINGS)
    right = matching.features({"firstname": "Smith", "lastname": "Bill", "hs_additional_emails": "w@y.com;Bill@X.com",
                               "phone": "+1 415 555 0100"}, SETTINGS)
    flat = {c.name: c for c in specs}
    def first_level(name: str) -> str | None:
        return next((lv.label for lv in flat[name].levels if matching.level_holds(lv.test, left, right)), None)
    assert first_level("emails") == "exact"
    assert first_level("phones") == "exact"
    assert first_level("f_firstname") is None  # William vs Smith
    swapped_left = matching.features({"firstname": "Ada", "lastname": "Byron"}, SETTINGS)
    swapped_right = matching.features({"firstname": "Byron", "lastname": "Ada"}, SETTINGS)
    assert next(lv.label for lv in flat["f_firstname"].levels
                if matching.level_holds(lv.test, swapped_left, swapped_right)) == "swapped"
    # swapped names share a block key
    assert set(matching.block_keys(swapped_left, SETTINGS)) & set(matching.block_keys(swapped_right, SETTINGS))


def test_fingerprint_changes_with_compared_values_only() -> None:
    a = matching.features({"firstname": "Ada", "jobtitle": "x"}, SETTINGS)
    b = matching.features({"firstname": "Ada", "jobtitle": "y"}, SETTINGS)
    c = matching.features({"firstname": "Adah"}, SETTINGS)
    assert matching.fingerprint(a) == matching.fingerprint(b) != matching.fingerprint(c)


def test_clusters_are_connected_components_scored_by_their_weakest_pair() -> None:
    clusters = connected_components([(1, 2, 0.99, {}), (2, 3, 0.95, {}), (7, 9, 0.97, {})])
    assert clusters == [([1, 2, 3], 0.95), ([7, 9], 0.97)]


def test_python_scores_agree_with_splink_and_planted_duplicates_are_found() -> None:
    people, truth = synthetic_contacts(400, 24)
    features = [(i, matching.features(p, SETTINGS)) for i, p in enumerate(people)]
    table = linkage.FeatureTable(SETTINGS)
    table.add((i, f, matching.block_keys(f, SETTINGS)) for i, f in features)
    result = linkage.scan(table)
    found = {(a, b) for a, b, *_ in result.pairs}
    assert len(found & truth) >= 0.9 * len(truth)
    assert len(found - truth) <= 0.1 * len(found)
    specs = matching.comparisons(SETTINGS)
    by_id = dict(features)
    assert result.pairs
    for left, right, probability, matched_on in result.pairs:
        mine = matching.score(result.model, specs, by_id[left], by_id[right])
        assert mine.probability == pytest.approx(probability, abs=1e-9)
        assert mine.matched_on == matched_on


def test_an_exact_agreement_never_counts_against_a_match() -> None:
    """A comparison whose trained exact level says "less likely a match" falls back to splink's default m;
    one that EM trained sensibly keeps its numbers."""
    def comparison(m_exact: float, u_exact: float) -> dict:
        return {"output_column_name": "phones", "comparison_levels": [
            {"is_null_level": True},
            {"m_probability": m_exact, "u_probability": u_exact},
            {"m_probability": 1 - m_exact, "u_probability": 1 - u_exact}]}

    model = linkage._regularise({"comparisons": [comparison(0.001, 0.01), comparison(0.8, 0.001)]})
    inverted, sensible = ([lv for lv in c["comparison_levels"] if not lv.get("is_null_level")]
                          for c in model["comparisons"])
    assert [lv["m_probability"] for lv in inverted] == [0.95, 0.05]
    assert inverted[0]["m_probability"] / inverted[0]["u_probability"] > 1
    assert [lv["m_probability"] for lv in sensible] == [0.8, pytest.approx(0.2)]
