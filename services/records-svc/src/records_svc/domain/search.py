"""Compile a HubSpot search request into one SQL WHERE clause and ORDER BY (pure: no I/O).

Every filter is written so Postgres can use an index first: equality and token filters start with a
match on the GIN-indexed `search_tokens`, then recheck the exact property. Values are bound
parameters, never spliced into the SQL; property names are bound too (`properties ->> :p0`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from crm_common.inputs import abridged, as_id

from records_svc.domain.object_types import ObjectType
from records_svc.domain.properties import InvalidValue, PropertyDefinition, normalize_value

MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS_TOTAL = 18
MAX_PAGE_SIZE = 200
MAX_RESULTS = 10_000
MAX_QUERY_LENGTH = 3_000

OPERATORS = frozenset({
    "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
})

# System properties kept in columns rather than in the property map.
COLUMN_PROPERTIES = {
    "hs_object_id": ("r.id", "number"),
    "createdate": ("r.created_at", "timestamp"),
    "lastmodifieddate": ("r.updated_at", "timestamp"),
    "hs_lastmodifieddate": ("r.updated_at", "timestamp"),
}


class SearchError(Exception):
    def __init__(self, message: str, property_name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.property_name = property_name


@dataclass
class Filter:
    propertyName: str
    operator: str
    value: Any = None
    highValue: Any = None
    values: list[Any] | None = None


@dataclass
class CompiledSearch:
    where: str
    order_by: str
    params: dict[str, Any] = field(default_factory=dict)


class _Params:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"s{len(self.values)}"
        self.values[name] = value
        return f":{name}"


_WORD = re.compile(r"[0-9A-Za-z\u00C0-\uFFFF]+")


def _tsquery_for_phrase(text: str) -> str | None:
    """A tsquery (in to_tsquery syntax) of the whole words in `text`, or None when there are none."""
    words = [w.lower() for w in _WORD.findall(text)]
    return " & ".join(f"'{w}'" for w in words) if words else None


def _tsquery_for_token_pattern(pattern: str) -> str | None:
    """Index prefilter for a CONTAINS_TOKEN pattern with `*` wildcards: words not touching a
    wildcard must appear whole; a word followed by `*` is a prefix; a word after `*` is unusable."""
    parts = []
    for match in _WORD.finditer(pattern):
        word = match.group().lower()
        before = pattern[match.start() - 1] if match.start() > 0 else ""
        after = pattern[match.end()] if match.end() < len(pattern) else ""
        if before == "*":
            continue
        parts.append(f"'{word}':*" if after == "*" else f"'{word}'")
    return " & ".join(parts) if parts else None


def _token_regex(pattern: str) -> str:
    """Postgres ARE matching the pattern as a token (or tokens) inside a value, case-insensitively."""
    pieces = [re.escape(p) for p in pattern.split("*")]
    body = "[^[:space:]]*".join(pieces)
    left = "" if pattern.startswith("*") else r"(^|[^[:alnum:]])"
    right = "" if pattern.endswith("*") else r"($|[^[:alnum:]])"
    return left + body + right


class SearchCompiler:
    def __init__(self, object_type: ObjectType, properties: dict[str, PropertyDefinition]) -> None:
        self.object_type = object_type
        self.properties = properties
        self.params = _Params()

    def compile(self, *, filter_groups: list[list[Filter]], query: str | None, sort: tuple[str, str] | None,
                association_types: dict[str, str]) -> CompiledSearch:
        self._check_limits(filter_groups, query)
        clauses = []
        if filter_groups:
            groups = [" AND ".join(self._filter(f, association_types) for f in group) for group in filter_groups
                      if group]
            if groups:
                clauses.append("(" + " OR ".join(f"({g})" for g in groups) + ")")
        if query and query.strip():
            clauses.append(self._query(query.strip()))
        where = " AND ".join(clauses) if clauses else "TRUE"
        return CompiledSearch(where=where, order_by=self._order(sort), params=self.params.values)

    def _check_limits(self, filter_groups: list[list[Filter]], query: str | None) -> None:
        if len(filter_groups) > MAX_FILTER_GROUPS:
            raise SearchError(f"Too many filter groups: {len(filter_groups)}; the limit is {MAX_FILTER_GROUPS}")
        total = 0
        for group in filter_groups:
            if len(group) > MAX_FILTERS_PER_GROUP:
                raise SearchError(f"Too many filters in a group: {len(group)}; the limit is {MAX_FILTERS_PER_GROUP}")
            total += len(group)
        if total > MAX_FILTERS_TOTAL:
            raise SearchError(f"Too many filters: {total}; the limit is {MAX_FILTERS_TOTAL} across all groups")
        if query is not None and len(query) > MAX_QUERY_LENGTH:
            raise SearchError(f"The query is {len(query)} characters long; the limit is {MAX_QUERY_LENGTH}")

    # --- filters -------------------------------------------------------------------------------------

    def _filter(self, f: Filter, association_types: dict[str, str]) -> str:
        op = f.operator.upper() if isinstance(f.operator, str) else f.operator
        if op not in OPERATORS:
            raise SearchError(f"Unknown operator {f.operator!r} on {f.propertyName}; use one of "
                              f"{', '.join(sorted(OPERATORS))}", f.propertyName)
        name = f.propertyName
        if name.startswith("associations."):
            return self._association_filter(f, op, association_types)
        if name in COLUMN_PROPERTIES:
            return self._column_filter(f, op, *COLUMN_PROPERTIES[name])
        prop = self.properties.get(name)
        if prop is None:
            raise SearchError(f"There was a problem with the request: property {name!r} does not exist "
                              f"on {self.object_type.name}", name)
        p = self.params.add(name)
        raw = f"r.properties ->> {p}"
        if op == "HAS_PROPERTY":
            return f"coalesce({raw}, '') <> ''"
        if op == "NOT_HAS_PROPERTY":
            return f"coalesce({raw}, '') = ''"
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            return self._token_filter(f, op, raw)
        kind = "number" if prop.type == "number" else "text"
        if op in ("IN", "NOT_IN"):
            values = f.values if f.values is not None else ([f.value] if f.value is not None else None)
            if not values:
                raise SearchError(f"{op} on {name} needs `values`", name)
            normalized = [self._normalize(prop, v) for v in values]
            if kind == "number":
                expr = f"({raw})::numeric = ANY(CAST({self.params.add([float(v) for v in normalized])} AS numeric[]))"
            else:
                expr = f"lower({raw}) = ANY(CAST({self.params.add([v.lower() for v in normalized])} AS text[]))"
            return expr if op == "IN" else f"NOT coalesce({expr}, false)"
        value = self._normalize(prop, self._required_value(f))
        if op in ("EQ", "NEQ"):
            if kind == "number":
                expr = f"({raw})::numeric = CAST({self.params.add(value)} AS numeric)"
            elif prop.multi_valued:
                expr = (f"(';' || lower({raw}) || ';') LIKE "
                        f"{self.params.add('%;' + _like_escape(value.lower()) + ';%')}")
            else:
                expr = f"lower({raw}) = {self.params.add(value.lower())}"
                tsq = _tsquery_for_phrase(value)
                if tsq and op == "EQ":
                    expr = f"r.search_tokens @@ to_tsquery('simple', {self.params.add(tsq)}) AND {expr}"
            return expr if op == "EQ" else f"NOT coalesce({expr}, false)"
        if op == "BETWEEN":
            high = self._normalize(prop, f.highValue if f.highValue is not None else self._missing(f, "highValue"))
            return (f"{self._typed(raw, kind)} BETWEEN {self._typed(self.params.add(value), kind)} "
                    f"AND {self._typed(self.params.add(high), kind)}")
        comparator = {"LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}[op]
        return f"{self._typed(raw, kind)} {comparator} {self._typed(self.params.add(value), kind)}"

    @staticmethod
    def _typed(expr: str, kind: str) -> str:
        return f"CAST({expr} AS numeric)" if kind == "number" else expr

    def _token_filter(self, f: Filter, op: str, raw: str) -> str:
        pattern = str(self._required_value(f)).strip().lower()
        if not pattern:
            raise SearchError(f"{op} on {f.propertyName} needs a non-empty value", f.propertyName)
        recheck = f"coalesce({raw}, '') ~* {self.params.add(_token_regex(pattern))}"
        if "*" not in pattern:
            # A whole-value match is the common case for names: test it before paying for the regex.
            recheck = f"(coalesce(lower({raw}), '') = {self.params.add(pattern)} OR {recheck})"
        if op == "NOT_CONTAINS_TOKEN":
            return f"NOT ({recheck})"
        tsq = _tsquery_for_token_pattern(pattern)
        if tsq:
            return f"r.search_tokens @@ to_tsquery('simple', {self.params.add(tsq)}) AND {recheck}"
        return recheck

    def _column_filter(self, f: Filter, op: str, column: str, kind: str) -> str:
        if op == "HAS_PROPERTY":
            return "TRUE"
        if op == "NOT_HAS_PROPERTY":
            return "FALSE"
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            raise SearchError(f"{op} is not supported on {f.propertyName}", f.propertyName)
        sql_type = "bigint" if kind == "number" else "timestamptz"

        def bind(raw: Any) -> str:
            return f"CAST({self.params.add(self._column_value(f.propertyName, raw, kind))} AS {sql_type})"

        if op in ("IN", "NOT_IN"):
            values = f.values or []
            if not values:
                raise SearchError(f"{op} on {f.propertyName} needs `values`", f.propertyName)
            items = ", ".join(bind(v) for v in values)
            return f"{column} {'IN' if op == 'IN' else 'NOT IN'} ({items})"
        if op == "BETWEEN":
            high = f.highValue if f.highValue is not None else self._missing(f, "highValue")
            return f"{column} BETWEEN {bind(self._required_value(f))} AND {bind(high)}"
        comparator = {"EQ": "=", "NEQ": "<>", "LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}[op]
        return f"{column} {comparator} {bind(self._required_value(f))}"

    def _column_value(self, name: str, raw: Any, kind: str) -> Any:
        from datetime import datetime

        from records_svc.domain.properties import normalize_datetime

        text = str(raw).strip()
        if kind == "number":
            if as_id(text.removeprefix("-")) is None:
                raise SearchError(f"{abridged(raw)!r} is not a valid value for {name}: expected an integer id", name)
            return int(text)
        try:
            return datetime.fromisoformat(normalize_datetime(text).replace("Z", "+00:00"))
        except InvalidValue as exc:
            raise SearchError(f"{raw!r} is not a valid value for {name}: {exc.message}", name) from None

    def _association_filter(self, f: Filter, op: str, association_types: dict[str, str]) -> str:
        target = f.propertyName.split(".", 1)[1]
        to_type = association_types.get(target)
        if to_type is None:
            raise SearchError(f"Unknown object type in {f.propertyName}", f.propertyName)
        if op not in ("EQ", "IN", "NEQ", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            raise SearchError(f"{op} is not supported on {f.propertyName}; use EQ, NEQ, IN or NOT_IN",
                              f.propertyName)
        t = self.params.add(to_type)
        if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            exists = (f"EXISTS (SELECT 1 FROM associations a WHERE a.from_id = r.id "
                      f"AND a.to_object_type_id = {t})")
            return exists if op == "HAS_PROPERTY" else f"NOT {exists}"
        raw_values = f.values if op in ("IN", "NOT_IN") else [self._required_value(f)]
        ids = []
        for v in raw_values or []:
            record_id = as_id(str(v))
            if record_id is None:
                raise SearchError(f"{abridged(v)!r} is not a record id in {f.propertyName}", f.propertyName)
            ids.append(record_id)
        exists = (f"EXISTS (SELECT 1 FROM associations a WHERE a.from_id = r.id AND a.to_object_type_id = {t} "
                  f"AND a.to_id = ANY(CAST({self.params.add(ids)} AS bigint[])))")
        return exists if op in ("EQ", "IN") else f"NOT {exists}"

    def _normalize(self, prop: PropertyDefinition, raw: Any) -> str:
        if prop.type in ("string",) and not prop.value_kind:
            return str(raw)
        try:
            value = normalize_value(prop, raw)
        except InvalidValue as exc:
            raise SearchError(f"{raw!r} is not a valid value for {prop.name}: {exc.message}", prop.name) from None
        return value.lstrip(";")

    @staticmethod
    def _required_value(f: Filter) -> Any:
        if f.value is None:
            raise SearchError(f"{f.operator} on {f.propertyName} needs a `value`", f.propertyName)
        return f.value

    @staticmethod
    def _missing(f: Filter, what: str) -> Any:
        raise SearchError(f"{f.operator} on {f.propertyName} needs `{what}`", f.propertyName)

    # --- query and sort ------------------------------------------------------------------------------

    def _query(self, query: str) -> str:
        words = [w for w in query.split() if w]
        clauses = []
        searchable = [p for p in self.object_type.searchable_properties if p in self.properties] or ["hs_object_id"]
        for word in words:
            prefixes = [m.group().lower() for m in _WORD.finditer(word)]
            like = self.params.add("%" + _like_escape(word.lower()) + "%")
            recheck = " OR ".join(f"lower(r.properties ->> {self.params.add(p)}) LIKE {like}" for p in searchable)
            if word.isdigit():
                recheck += f" OR r.id = {self.params.add(int(word))}"
            if prefixes and not word.isdigit():
                tsq = " & ".join(f"'{p}':*" for p in prefixes)
                clauses.append(f"(r.search_tokens @@ to_tsquery('simple', {self.params.add(tsq)}) AND ({recheck}))")
            else:
                clauses.append(f"({recheck})")
        return " AND ".join(clauses) if clauses else "TRUE"

    def _order(self, sort: tuple[str, str] | None) -> str:
        if sort is None:
            return "r.id ASC"
        name, direction = sort
        direction = "DESC" if direction.upper() in ("DESCENDING", "DESC") else "ASC"
        if name in COLUMN_PROPERTIES:
            return f"{COLUMN_PROPERTIES[name][0]} {direction}, r.id {direction}"
        prop = self.properties.get(name)
        if prop is None:
            raise SearchError(f"Cannot sort by {name!r}: the property does not exist on {self.object_type.name}",
                              name)
        p = self.params.add(name)
        expr = f"(r.properties ->> {p})::numeric" if prop.type == "number" else f"lower(r.properties ->> {p})"
        return f"{expr} {direction} NULLS LAST, r.id {direction}"


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
