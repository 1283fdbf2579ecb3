"""What duplicate matching compares, and how, as data: settings, features, comparisons, block keys, scores.

A matching setting names the properties compared and the kind of value each holds. From it this module
derives, purely:

- **features**: the normalised values of one record (`normalise.py`), the only thing stored per record;
- **comparisons**: one per name/address/postcode/date/identifier/text property, and one per group of
  email, phone or domain properties (a contact's `email` and `hs_additional_emails` are one set of
  addresses: any shared address counts). Each comparison is an ordered list of levels ("exact",
  "nickname", "typo", ...); the first level that holds decides. The same definition renders the SQL
  splink scores a scan with and the Python the incremental path scores a few candidates with, so both
  agree (a test checks it against splink on a sample);
- **block keys**: the values two records must share to be compared at all (phonetic first+last name,
  a name with a postcode or a birth date, an email, a phone line, a domain, an identifier, an address).
  Keys shared by more than `MAX_BLOCK` records are not used (a key that common tells nothing), so the
  cost of a scan grows with the number of likely matches, not with n²;
- **scores**: Fellegi-Sunter match weights from the m and u probabilities of each level, estimated per
  account by splink (u by random sampling, m by EM over the account's own unlabelled records).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import jellyfish
import orjson

from merge_svc.domain import normalise

MAX_BLOCK = 100
DEFAULT_THRESHOLD = 0.9
MULTI_VALUE_SEPARATOR = ";"
# DuckDB and jellyfish compute Jaro-Winkler in different float orders: a similarity of exactly a threshold may
# come out a hair below it in one of them. Thresholds are compared with this much slack in both.
JW_TOLERANCE = 1e-9


class Kind(StrEnum):
    NAME = "name"
    EMAIL = "email"
    PHONE = "phone"
    DOMAIN = "domain"
    ADDRESS = "address"
    POSTCODE = "postcode"
    DATE = "date"
    IDENTIFIER = "identifier"
    TEXT = "text"


# Kinds whose properties are pooled into one set of values per record (any shared value counts).
POOLED = (Kind.EMAIL, Kind.PHONE, Kind.DOMAIN)


@dataclass(frozen=True)
class MatchProperty:
    name: str
    kind: Kind


@dataclass(frozen=True)
class MatchingSettings:
    properties: tuple[MatchProperty, ...]
    threshold: float = DEFAULT_THRESHOLD

    def names(self) -> list[str]:
        return [p.name for p in self.properties]

    def of_kind(self, kind: Kind) -> list[str]:
        return [p.name for p in self.properties if p.kind == kind]

    def as_json(self) -> dict[str, Any]:
        return {"properties": [{"name": p.name, "kind": p.kind.value} for p in self.properties],
                "threshold": self.threshold}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MatchingSettings:
        return cls(properties=tuple(MatchProperty(p["name"], Kind(p["kind"])) for p in data["properties"]),
                   threshold=float(data.get("threshold", DEFAULT_THRESHOLD)))


def _props(*pairs: tuple[str, Kind]) -> tuple[MatchProperty, ...]:
    return tuple(MatchProperty(n, k) for n, k in pairs)


DEFAULT_SETTINGS: dict[str, MatchingSettings] = {
    "0-1": MatchingSettings(_props(
        ("firstname", Kind.NAME), ("lastname", Kind.NAME), ("email", Kind.EMAIL),
        ("hs_additional_emails", Kind.EMAIL), ("phone", Kind.PHONE), ("mobilephone", Kind.PHONE),
        ("company", Kind.TEXT), ("address", Kind.ADDRESS), ("city", Kind.TEXT), ("zip", Kind.POSTCODE),
        ("country", Kind.TEXT))),
    "0-2": MatchingSettings(_props(
        ("name", Kind.TEXT), ("domain", Kind.DOMAIN), ("hs_additional_domains", Kind.DOMAIN),
        ("website", Kind.DOMAIN), ("phone", Kind.PHONE), ("address", Kind.ADDRESS), ("city", Kind.TEXT),
        ("zip", Kind.POSTCODE), ("country", Kind.TEXT), ("industry", Kind.TEXT))),
    "0-3": MatchingSettings(_props(
        ("dealname", Kind.TEXT), ("amount", Kind.IDENTIFIER), ("closedate", Kind.DATE),
        ("pipeline", Kind.TEXT))),
    "0-5": MatchingSettings(_props(
        ("subject", Kind.TEXT), ("hs_pipeline", Kind.TEXT), ("closed_date", Kind.DATE))),
}


def custom_object_defaults(display_and_searchable: Iterable[tuple[str, str]]) -> MatchingSettings:
    """A custom object's display and searchable properties, each compared by what its type suggests."""
    by_type = {"date": Kind.DATE, "datetime": Kind.DATE, "number": Kind.IDENTIFIER}
    seen: dict[str, Kind] = {}
    for prop_name, prop_type in display_and_searchable:
        seen.setdefault(prop_name, by_type.get(prop_type, Kind.TEXT))
    return MatchingSettings(tuple(MatchProperty(n, k) for n, k in seen.items()))


class SettingsError(ValueError):
    def __init__(self, message: str, *, property_name: str | None = None) -> None:
        super().__init__(message)
        self.property_name = property_name


MAX_PROPERTIES = 30


def validate(settings: MatchingSettings, known_properties: Mapping[str, str]) -> None:
    """Refuse settings that name a property the object type does not have, twice, or too many."""
    if not settings.properties:
        raise SettingsError("At least one property must be compared")
    if len(settings.properties) > MAX_PROPERTIES:
        raise SettingsError(f"At most {MAX_PROPERTIES} properties can be compared; got {len(settings.properties)}")
    if not 0.0 < settings.threshold < 1.0:
        raise SettingsError(f"threshold must be a match probability between 0 and 1 (exclusive); "
                            f"got {settings.threshold}")
    seen: set[str] = set()
    for prop in settings.properties:
        if prop.name in seen:
            raise SettingsError(f"Property {prop.name} is listed twice", property_name=prop.name)
        seen.add(prop.name)
        if prop.name not in known_properties:
            raise SettingsError(f"Property {prop.name} does not exist on this object type",
                                property_name=prop.name)


# --- features -------------------------------------------------------------------------------------------


def _slug(prop_name: str) -> str:
    return "f_" + re.sub(r"[^a-z0-9_]", "_", prop_name.lower())


def _values(raw: Any) -> list[str]:
    if raw is None:
        return []
    return [v.strip() for v in str(raw).split(MULTI_VALUE_SEPARATOR) if v.strip()]


def features(properties: Mapping[str, Any], settings: MatchingSettings, *, region: str = "US") -> dict[str, Any]:
    """The normalised values of one record that its comparisons and block keys read (None when empty)."""
    out: dict[str, Any] = {}
    emails: set[str] = set()
    phones: set[str] = set()
    domains: set[str] = set()
    for prop in settings.properties:
        raw = properties.get(prop.name)
        col = _slug(prop.name)
        match prop.kind:
            case Kind.NAME:
                value = normalise.name(raw)
                out[col] = value or None
                out[col + "__fam"] = list(normalise.name_family(value)) or None
                out[col + "__ph"] = normalise.phonetic(value) or None
            case Kind.EMAIL:
                emails.update(e for e in (normalise.email(v) for v in _values(raw)) if e)
            case Kind.PHONE:
                phones.update(p for p in (normalise.phone(v, region) for v in _values(raw)) if p)
            case Kind.DOMAIN:
                domains.update(d for d in (normalise.domain(v) for v in _values(raw)) if d)
            case Kind.ADDRESS:
                out[col] = normalise.address(raw) or None
            case Kind.POSTCODE:
                out[col] = normalise.postcode(raw) or None
            case Kind.DATE:
                out[col] = normalise.date(raw) or None
            case Kind.IDENTIFIER:
                out[col] = normalise.identifier(raw) or None
            case Kind.TEXT:
                out[col] = normalise.text(raw) or None
    if settings.of_kind(Kind.EMAIL):
        out["emails"] = sorted(emails) or None
        out["email_users"] = sorted({e.partition("@")[0] for e in emails}) or None
    if settings.of_kind(Kind.PHONE):
        out["phones"] = sorted(phones) or None
        out["phone_tails"] = sorted({t for t in (normalise.phone_tail(p) for p in phones) if t}) or None
    if settings.of_kind(Kind.DOMAIN):
        out["domains"] = sorted(domains) or None
    return out


def fingerprint(feature_values: Mapping[str, Any]) -> str:
    """Changes exactly when a compared value changes (a dismissal holds until then)."""
    return hashlib.blake2b(orjson.dumps(dict(feature_values), option=orjson.OPT_SORT_KEYS),
                           digest_size=12).hexdigest()


# --- comparisons ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    """One level of a comparison: `test` over two records' features, rendered to SQL and Python alike.

    test: ("exact", col) | ("overlap", col) | ("jw", col, min_similarity) | ("typo", col, max_edits)
    | ("cross", col, other_col) [the left's col equals the right's other_col: swapped names].
    """

    label: str
    test: tuple[Any, ...]


@dataclass(frozen=True)
class Comparison:
    name: str  # the splink output column; also the matchedOn key
    columns: tuple[str, ...]  # null level: either side without the first column
    levels: tuple[Level, ...]
    properties: tuple[str, ...] = field(default=())


def comparisons(settings: MatchingSettings) -> list[Comparison]:
    out: list[Comparison] = []
    names = settings.of_kind(Kind.NAME)
    partner = {names[0]: names[1], names[1]: names[0]} if len(names) >= 2 else {}
    for prop in settings.properties:
        col = _slug(prop.name)
        levels: list[Level]
        match prop.kind:
            case Kind.NAME:
                levels = [Level("exact", ("exact", col)), Level("nickname", ("overlap", col + "__fam"))]
                if prop.name in partner:
                    levels.append(Level("swapped", ("cross", col, _slug(partner[prop.name]))))
                levels += [Level("typo", ("jw", col, 0.92)), Level("sounds alike", ("exact", col + "__ph")),
                           Level("similar", ("jw", col, 0.8))]
            case Kind.ADDRESS:
                levels = [Level("exact", ("exact", col)), Level("typo", ("jw", col, 0.92)),
                          Level("similar", ("jw", col, 0.8))]
            case Kind.POSTCODE:
                levels = [Level("exact", ("exact", col)), Level("typo", ("typo", col, 1))]
            case Kind.DATE:
                levels = [Level("exact", ("exact", col)), Level("typo", ("typo", col, 1)),
                          Level("two typos", ("typo", col, 2))]
            case Kind.IDENTIFIER:
                levels = [Level("exact", ("exact", col)), Level("typo", ("typo", col, 1)),
                          Level("two typos", ("typo", col, 2))]
            case Kind.TEXT:
                levels = [Level("exact", ("exact", col)), Level("typo", ("jw", col, 0.92)),
                          Level("similar", ("jw", col, 0.8))]
            case _:
                continue
        out.append(Comparison(name=col, columns=(col,), levels=tuple(levels), properties=(prop.name,)))
    if settings.of_kind(Kind.EMAIL):
        out.append(Comparison(name="emails", columns=("emails",), properties=tuple(settings.of_kind(Kind.EMAIL)),
                              levels=(Level("exact", ("overlap", "emails")),
                                      Level("same mailbox name", ("overlap", "email_users")))))
    if settings.of_kind(Kind.PHONE):
        out.append(Comparison(name="phones", columns=("phones",), properties=tuple(settings.of_kind(Kind.PHONE)),
                              levels=(Level("exact", ("overlap", "phones")),
                                      Level("same line", ("overlap", "phone_tails")))))
    if settings.of_kind(Kind.DOMAIN):
        out.append(Comparison(name="domains", columns=("domains",),
                              properties=tuple(settings.of_kind(Kind.DOMAIN)),
                              levels=(Level("exact", ("overlap", "domains")),)))
    return out


def level_sql(test: tuple[Any, ...]) -> str:
    kind, col = test[0], test[1]
    left, right = f'"{col}_l"', f'"{col}_r"'
    match kind:
        case "exact":
            return f"{left} = {right}"
        case "overlap":
            return f"len(list_intersect({left}, {right})) > 0"
        case "jw":
            return f"jaro_winkler_similarity({left}, {right}) >= {test[2] - JW_TOLERANCE}"
        case "typo":
            return f"damerau_levenshtein({left}, {right}) <= {test[2]}"
        case "cross":
            return f'{left} = "{test[2]}_r" AND "{test[2]}_l" = {right}'
    raise ValueError(kind)


def level_holds(test: tuple[Any, ...], left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    """Python of `level_sql`: the same decision on the same features."""
    kind, col = test[0], test[1]
    a, b = left.get(col), right.get(col)
    match kind:
        case "exact":
            return a is not None and b is not None and a == b
        case "overlap":
            return bool(a) and bool(b) and not set(a).isdisjoint(b)
        case "jw":
            return (a is not None and b is not None
                    and jellyfish.jaro_winkler_similarity(a, b) >= test[2] - JW_TOLERANCE)
        case "typo":
            return a is not None and b is not None and jellyfish.damerau_levenshtein_distance(a, b) <= test[2]
        case "cross":
            other = test[2]
            return (a is not None and a == right.get(other)
                    and b is not None and b == left.get(other))
    raise ValueError(kind)


def splink_comparisons(settings: MatchingSettings) -> list[dict[str, Any]]:
    """The comparisons as splink settings (a null level, the levels in order, an else level)."""
    out = []
    for comparison in comparisons(settings):
        col = comparison.columns[0]
        levels: list[dict[str, Any]] = [{"sql_condition": f'"{col}_l" IS NULL OR "{col}_r" IS NULL',
                                         "label_for_charts": "null", "is_null_level": True}]
        levels += [{"sql_condition": level_sql(level.test), "label_for_charts": level.label}
                   for level in comparison.levels]
        levels.append({"sql_condition": "ELSE", "label_for_charts": "different"})
        out.append({"output_column_name": comparison.name, "comparison_levels": levels,
                    "comparison_description": comparison.name})
    return out


def feature_columns(settings: MatchingSettings) -> dict[str, str]:
    """Every feature column with its DuckDB type."""
    columns: dict[str, str] = {}
    for prop in settings.properties:
        col = _slug(prop.name)
        if prop.kind == Kind.NAME:
            columns.update({col: "VARCHAR", col + "__fam": "VARCHAR[]", col + "__ph": "VARCHAR"})
        elif prop.kind not in POOLED:
            columns[col] = "VARCHAR"
    if settings.of_kind(Kind.EMAIL):
        columns.update({"emails": "VARCHAR[]", "email_users": "VARCHAR[]"})
    if settings.of_kind(Kind.PHONE):
        columns.update({"phones": "VARCHAR[]", "phone_tails": "VARCHAR[]"})
    if settings.of_kind(Kind.DOMAIN):
        columns["domains"] = "VARCHAR[]"
    return columns


# --- block keys -----------------------------------------------------------------------------------------


def block_keys(values: Mapping[str, Any], settings: MatchingSettings) -> list[str]:
    """The keys a record is filed under; two records are compared when they share one."""
    keys: set[str] = set()
    names = [values.get(_slug(n) + "__ph") for n in settings.of_kind(Kind.NAME)]
    postcodes = [values.get(_slug(n)) for n in settings.of_kind(Kind.POSTCODE)]
    dates = [values.get(_slug(n)) for n in settings.of_kind(Kind.DATE)]
    present_names = [n for n in names if n]
    if len(names) >= 2 and names[0] and names[1]:
        keys.add("n:" + "|".join(sorted(names[:2])))  # sorted: swapped first and last names meet
    elif len(present_names) == 1 and len(names) == 1:
        keys.add("n:" + present_names[0])
    for ph in present_names:
        keys.update(f"np:{ph}|{pc}" for pc in postcodes if pc)
        keys.update(f"nd:{ph}|{d}" for d in dates if d)
    for d in dates:
        if d:
            keys.update(f"dp:{d}|{pc}" for pc in postcodes if pc)
    for prop in settings.properties:
        value = values.get(_slug(prop.name))
        if not value:
            continue
        if prop.kind == Kind.IDENTIFIER:
            keys.add(f"i:{prop.name}:{value}")
        elif prop.kind == Kind.ADDRESS:
            keys.add(f"a:{value}")
        elif prop.kind == Kind.TEXT and not present_names:
            keys.add(f"t:{prop.name}:{value}")
            keys.add(f"tp:{prop.name}:{normalise.phonetic(value.replace(' ', ''))[:10]}")
    keys.update("e:" + e for e in values.get("emails") or ())
    keys.update("p:" + t for t in values.get("phone_tails") or ())
    keys.update("d:" + d for d in values.get("domains") or ())
    return sorted(keys)


def training_rules(settings: MatchingSettings) -> tuple[list[str], list[str]]:
    """Feature columns for EM's blocking rules: the names' phonetic keys, and candidates for a second, independent
    rule on one other scalar value, most specific first (identifier, date, postcode, address, then text).

    EM estimates the m probabilities of every comparison that does not read the rule's columns, so the two rules
    together cover them all; the rules name real feature columns so that splink knows which comparisons each one
    fixes. Emails and phones are lists (EM takes no exploding rule) and a contact's email is unique in its account
    anyway.
    """
    names = [_slug(n) + "__ph" for n in settings.of_kind(Kind.NAME)][:2]
    if not names:
        names = [_slug(n) for n in settings.of_kind(Kind.TEXT)][:1]
    others = [_slug(n) for kind in (Kind.IDENTIFIER, Kind.DATE, Kind.POSTCODE, Kind.ADDRESS, Kind.TEXT)
              for n in settings.of_kind(kind)]
    return names, [c for c in others if c not in names]


# --- scores ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainedLevel:
    label: str
    weight: float  # log2(m / u); 0 for the null level


@dataclass(frozen=True)
class TrainedModel:
    """What scoring needs of a trained splink model: the prior and each level's match weight."""

    prior_weight: float
    comparisons: tuple[tuple[str, tuple[TrainedLevel, ...]], ...]

    def as_json(self) -> dict[str, Any]:
        return {"priorWeight": self.prior_weight,
                "comparisons": [{"name": n, "levels": [{"label": lv.label, "weight": lv.weight} for lv in levels]}
                                for n, levels in self.comparisons]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainedModel:
        return cls(prior_weight=float(data["priorWeight"]), comparisons=tuple(
            (c["name"], tuple(TrainedLevel(lv["label"], float(lv["weight"])) for lv in c["levels"]))
            for c in data["comparisons"]))

    @classmethod
    def from_splink(cls, model: Mapping[str, Any]) -> TrainedModel:
        """From splink's saved model: λ and, per level, m and u (a level never observed weighs 0)."""
        prior = float(model["probability_two_random_records_match"])
        out = []
        for comparison in model["comparisons"]:
            levels = []
            for level in comparison["comparison_levels"]:
                m, u = level.get("m_probability"), level.get("u_probability")
                weight = 0.0 if level.get("is_null_level") or not m or not u else math.log2(m / u)
                levels.append(TrainedLevel(level.get("label_for_charts") or "", weight))
            out.append((comparison["output_column_name"], tuple(levels)))
        return cls(prior_weight=math.log2(prior / (1 - prior)), comparisons=tuple(out))


def probability(weight: float) -> float:
    if weight > 60:
        return 1.0
    odds = 2.0 ** weight
    return odds / (1 + odds)


@dataclass(frozen=True)
class ScoredPair:
    probability: float
    weight: float
    matched_on: dict[str, str]


def score(model: TrainedModel, specs: Sequence[Comparison], left: Mapping[str, Any],
          right: Mapping[str, Any]) -> ScoredPair:
    """The match probability of two records, and what matched (each comparison's level above "different")."""
    weight = model.prior_weight
    matched: dict[str, str] = {}
    trained = dict(model.comparisons)
    for spec in specs:
        levels = trained[spec.name]
        col = spec.columns[0]
        if not left.get(col) or not right.get(col):
            continue  # the null level weighs nothing
        index = len(levels) - 1  # else
        for i, level in enumerate(spec.levels, start=1):
            if level_holds(level.test, left, right):
                index = i
                break
        weight += levels[index].weight
        if index < len(levels) - 1:
            matched[spec.properties[0] if spec.properties else spec.name] = spec.levels[index - 1].label
    return ScoredPair(probability=probability(weight), weight=weight, matched_on=matched)


def matched_on_from_gammas(specs: Sequence[Comparison], gammas: Mapping[str, int]) -> dict[str, str]:
    """matchedOn from splink's comparison vector (gamma -1 null, 0 else, n = n-th level from the last)."""
    matched: dict[str, str] = {}
    for spec in specs:
        gamma = gammas.get(spec.name)
        if gamma is None or gamma <= 0:
            continue
        # splink numbers levels from the bottom: else 0, then upwards; ours are listed top-down.
        label = spec.levels[len(spec.levels) - gamma].label
        matched[spec.properties[0] if spec.properties else spec.name] = label
    return matched
