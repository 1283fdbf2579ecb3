"""Turns a parsed query into closures over stored records.

Records are kept in wire format (datetimes as `...000+0000` UTC strings, dates as ISO strings), which sort
lexically in time order, so literals are converted once to the same format and compared as strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from salesforce_emulator import ids
from salesforce_emulator.clock import format_datetime, parse_datetime
from salesforce_emulator.errors import SalesforceError
from salesforce_emulator.schema import STRING_TYPES, FieldDef, SObjectDef
from salesforce_emulator.soql.syntax import BooleanOp, Comparison, Condition, FieldPath, Literal, Not, Query

Record = dict[str, Any]
Getter = Callable[[Record], Any]
_NUMERIC = {"int", "long", "double", "currency", "percent"}


@dataclass
class ResolvedPath:
    """A select/where/order path: the reference fields walked, then the field read at the end."""

    path: FieldPath
    hops: list[FieldDef]  # reference fields, one per relationship step
    target: FieldDef
    target_object: SObjectDef
    getter: Getter


@dataclass
class CompiledQuery:
    sobject: SObjectDef
    type_spelling: str
    count_only: bool
    selected: list[ResolvedPath]
    predicate: Callable[[Record], bool]
    order: list[tuple[Getter, bool, bool]]  # getter, descending, nulls_first
    limit: int | None
    offset: int | None
    children: list[ChildQuery] = field(default_factory=list)
    group_by: list[ResolvedPath] = field(default_factory=list)
    aggregates: list[CompiledAggregate] = field(default_factory=list)

    @property
    def is_aggregate(self) -> bool:
        return bool(self.aggregates or self.group_by)


@dataclass
class CompiledAggregate:
    output_key: str  # the alias, or expr0, expr1, ... in select order
    function: str
    getter: Getter | None  # None for COUNT()
    folds_case: bool


@dataclass
class ChildQuery:
    """A compiled `(SELECT ... FROM Contacts)`: the child rows whose `reference_field` points at the parent."""

    relationship_name: str
    reference_field: str
    compiled: CompiledQuery


ChildLookup = Callable[[SObjectDef, str], tuple[SObjectDef, FieldDef, str] | None]


class QueryCompiler:
    def __init__(self, soql: str, describe: Callable[[str], SObjectDef | None],
                 fetch: Callable[[str], Record | None], now: datetime,
                 child_relationship: ChildLookup | None = None) -> None:
        self.soql = soql
        self.describe = describe
        self.fetch = fetch
        self.now = now
        self.child_relationship = child_relationship

    # -- errors in Salesforce's words --------------------------------------------------------------------
    def located(self, code: str, position: int, detail: str) -> SalesforceError:
        row = self.soql.count("\n", 0, position) + 1
        line_start = self.soql.rfind("\n", 0, position) + 1
        line_end = self.soql.find("\n", position)
        line = self.soql[line_start: line_end if line_end != -1 else len(self.soql)]
        column = position - line_start + 1
        return SalesforceError(400, code, f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n"
                                          f"{detail}")

    # -- compile ------------------------------------------------------------------------------------------
    def compile(self, query: Query, sobject: SObjectDef | None = None) -> CompiledQuery:
        sobject = sobject or self.describe(query.sobject)
        if sobject is None:
            raise self.located("INVALID_TYPE", query.sobject_position,
                               f"sObject type '{query.sobject}' is not supported. If you are attempting to use a "
                               "custom object, be sure to append the '__c' after the entity name. Please reference "
                               "your WSDL or the describe call for the appropriate names.")
        selected = [self.resolve(sobject, path) for path in query.fields]
        predicate = self.condition(sobject, query.where) if query.where is not None else (lambda record: True)
        order = []
        for key in query.order_by:
            resolved = self.resolve(sobject, key.path)
            nulls_first = key.nulls_first if key.nulls_first is not None else not key.descending
            order.append((self.sort_getter(resolved), key.descending, nulls_first))
        children = [self.compile_child(sobject, subquery) for subquery in query.subqueries]
        group_by = [self.resolve(sobject, path) for path in query.group_by]
        aggregates = self.compile_aggregates(sobject, query)
        if aggregates or group_by:
            grouped = {(tuple(hop.name for hop in path.hops), path.target.name) for path in group_by}
            for path in selected:
                if (tuple(hop.name for hop in path.hops), path.target.name) not in grouped:
                    raise self.located("MALFORMED_QUERY", path.path.position,
                                       f"Field must be grouped or aggregated: {path.target.name}")
            if children:
                raise self.located("MALFORMED_QUERY", query.subqueries[0].sobject_position,
                                   "Relationship subqueries cannot be combined with aggregate functions")
        return CompiledQuery(sobject, query.sobject, query.count_only, selected, predicate, order, query.limit,
                             query.offset, children, group_by, aggregates)

    def compile_aggregates(self, sobject: SObjectDef, query: Query) -> list[CompiledAggregate]:
        compiled: list[CompiledAggregate] = []
        unnamed = 0
        for aggregate in query.aggregates:
            if aggregate.alias:
                output_key = aggregate.alias
            else:
                output_key = f"expr{unnamed}"
                unnamed += 1
            if aggregate.path is None:
                compiled.append(CompiledAggregate(output_key, aggregate.function, None, False))
                continue
            resolved = self.resolve(sobject, aggregate.path)
            kind = resolved.target.type
            if aggregate.function in ("SUM", "AVG") and kind not in _NUMERIC:
                raise self.located("INVALID_FIELD", aggregate.position,
                                   f"field {resolved.target.name} does not support aggregate operator "
                                   f"{aggregate.function}")
            compiled.append(CompiledAggregate(output_key, aggregate.function, resolved.getter,
                                              kind in STRING_TYPES))
        return compiled

    def compile_child(self, parent: SObjectDef, subquery: Query) -> ChildQuery:
        found = self.child_relationship(parent, subquery.sobject) if self.child_relationship else None
        if found is None:
            raise self.located("INVALID_TYPE", subquery.sobject_position,
                               f"Didn't understand relationship '{subquery.sobject}' in FROM part of query call. "
                               "If you are attempting to use a custom relationship, be sure to append the '__r' "
                               "after the custom relationship name. Please reference your WSDL or the describe "
                               "call for the appropriate names.")
        child, reference, relationship_name = found
        compiled = self.compile(subquery, child)
        compiled.type_spelling = child.name
        return ChildQuery(relationship_name, reference.name, compiled)

    def resolve(self, sobject: SObjectDef, path: FieldPath) -> ResolvedPath:
        parts = list(path.parts)
        # `SELECT Contact.Name FROM Contact` is legal: a leading part naming the queried object is dropped.
        if len(parts) > 1 and parts[0].lower() == sobject.name.lower():
            parts = parts[1:]
        current = sobject
        hops: list[FieldDef] = []
        for relationship_name in parts[:-1]:
            reference = current.relationship(relationship_name)
            parent = self.describe(reference.reference_to[0]) if reference and reference.reference_to else None
            if reference is None or parent is None:
                raise self.located("INVALID_FIELD", path.position,
                                   f"Didn't understand relationship '{relationship_name}' in field path. If you are "
                                   "attempting to use a custom relationship, be sure to append the '__r' after the "
                                   "custom relationship name. Please reference your WSDL or the describe call for "
                                   "the appropriate names.")
            hops.append(reference)
            current = parent
        target = current.field(parts[-1])
        if target is None:
            raise self.located("INVALID_FIELD", path.position,
                               f"No such column '{parts[-1]}' on entity '{current.name}'. If you are attempting to "
                               "use a custom field, be sure to append the '__c' after the custom field name. Please "
                               "reference your WSDL or the describe call for the appropriate names.")
        return ResolvedPath(path, hops, target, current, self.getter(hops, target))

    def getter(self, hops: list[FieldDef], target: FieldDef) -> Getter:
        name = target.name
        if not hops:
            return lambda record: record.get(name)
        fetch = self.fetch
        hop_names = [hop.name for hop in hops]

        def walk(record: Record) -> Any:
            current: Record | None = record
            for hop_name in hop_names:
                parent_id = current.get(hop_name)
                current = fetch(parent_id) if parent_id else None
                if current is None:
                    return None
            return current.get(name)

        return walk

    def sort_getter(self, resolved: ResolvedPath) -> Getter:
        if resolved.target.type in STRING_TYPES:
            base = resolved.getter
            return lambda record: _fold(base(record))
        return resolved.getter

    # -- conditions ---------------------------------------------------------------------------------------
    def condition(self, sobject: SObjectDef, node: Condition) -> Callable[[Record], bool]:
        if isinstance(node, BooleanOp):
            parts = [self.condition(sobject, operand) for operand in node.operands]
            if node.operator == "AND":
                return lambda record: all(part(record) for part in parts)
            return lambda record: any(part(record) for part in parts)
        if isinstance(node, Not):
            inner = self.condition(sobject, node.operand)
            return lambda record: not inner(record)
        return self.comparison(sobject, node)

    def comparison(self, sobject: SObjectDef, node: Comparison) -> Callable[[Record], bool]:
        resolved = self.resolve(sobject, node.path)
        field = resolved.target
        get = resolved.getter
        operator = node.operator
        if operator in ("IN", "NOT IN"):
            assert isinstance(node.value, tuple)
            members = {self.coerce(field, literal) for literal in node.value}
            if field.type in STRING_TYPES:
                members = {_fold(member) for member in members}
                get = _folding(get)
            if operator == "IN":
                return lambda record: get(record) in members
            return lambda record: get(record) not in members
        assert isinstance(node.value, Literal)
        literal = node.value
        if operator == "LIKE":
            if field.type not in STRING_TYPES and field.type not in ("id", "reference"):
                raise self.located("INVALID_FIELD", literal.position,
                                   f"invalid operator on field: {field.name}")
            pattern = _like_pattern(literal.value)
            return lambda record: (value := get(record)) is not None and pattern.fullmatch(str(value)) is not None
        if literal.kind == "null":
            if operator == "=":
                return lambda record: get(record) is None
            if operator == "!=":
                return lambda record: get(record) is not None
            return lambda record: False
        if literal.kind == "date_function":
            return self.date_range_comparison(field, get, operator, literal)
        expected = self.coerce(field, literal)
        if field.type in STRING_TYPES:
            expected = _fold(expected)
            get = _folding(get)
        if field.type == "boolean" and operator not in ("=", "!="):
            raise self.located("INVALID_FIELD", literal.position, f"invalid operator on field: {field.name}")
        return _compare(get, operator, expected)

    def coerce(self, field: FieldDef, literal: Literal) -> Any:
        """Convert a literal to the stored representation of `field`, or fail like Salesforce does."""
        kind = field.type
        value = literal.value
        if literal.kind == "null":
            return None
        if kind in STRING_TYPES:
            if literal.kind != "string":
                raise self.type_error(field, literal, "string", quoted=True)
            return value
        if kind in ("id", "reference"):
            if literal.kind != "string":
                raise self.type_error(field, literal, "id", quoted=True)
            try:
                return ids.to_18(value)
            except ValueError:
                if kind == "id":
                    raise self.located("INVALID_QUERY_FILTER_OPERATOR", literal.position,
                                       f"invalid ID field: {value}") from None
                return value
        if kind in _NUMERIC:
            if literal.kind != "number":
                raise self.type_error(field, literal, "number", quoted=False)
            return value
        if kind == "boolean":
            if literal.kind != "boolean":
                raise self.type_error(field, literal, "boolean", quoted=False)
            return value
        if kind == "datetime":
            if literal.kind == "datetime":
                return format_datetime(parse_datetime(value))
            raise self.type_error(field, literal, "dateTime", quoted=False)
        if kind == "date":
            if literal.kind == "date":
                return value
            if literal.kind == "datetime":
                return value[:10]
            raise self.type_error(field, literal, "date", quoted=False)
        return value

    def type_error(self, field: FieldDef, literal: Literal, expected: str, quoted: bool) -> SalesforceError:
        quoting = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
        return self.located("INVALID_FIELD", literal.position,
                            f"value of filter criterion for field '{field.name}' must be of type {expected} "
                            f"and {quoting}")

    def date_range_comparison(self, field: FieldDef, get: Getter, operator: str,
                              literal: Literal) -> Callable[[Record], bool]:
        if field.type not in ("date", "datetime"):
            raise self.type_error(field, literal, field.type, quoted=field.type in STRING_TYPES)
        low_day, high_day = _date_function_range(literal.value, literal.argument, self.now.date())
        if field.type == "date":
            low, high = low_day.isoformat(), high_day.isoformat()
        else:
            low = format_datetime(datetime.combine(low_day, datetime.min.time(), UTC))
            high = format_datetime(datetime.combine(high_day, datetime.min.time(), UTC))
        tests: dict[str, Callable[[Any], bool]] = {
            "=": lambda value: low <= value < high,
            "!=": lambda value: not (low <= value < high),
            "<": lambda value: value < low,
            "<=": lambda value: value < high,
            ">": lambda value: value >= high,
            ">=": lambda value: value >= low,
        }
        test = tests[operator]
        return lambda record: (value := get(record)) is not None and test(value)


def _date_function_range(name: str, argument: int | None, today: date) -> tuple[date, date]:
    """Half-open [low, high) day range of a SOQL date literal, in UTC (the integration user's zone)."""
    day = timedelta(days=1)
    if name == "TODAY":
        return today, today + day
    if name == "YESTERDAY":
        return today - day, today
    if name == "TOMORROW":
        return today + day, today + 2 * day
    if name == "LAST_N_DAYS":
        return today - (argument or 0) * day, today + day
    if name == "NEXT_N_DAYS":
        return today + day, today + (1 + (argument or 0)) * day
    if name == "N_DAYS_AGO":
        return today - (argument or 0) * day, today - ((argument or 0) - 1) * day
    week_start = today - timedelta(days=(today.weekday() + 1) % 7)  # Salesforce weeks start on Sunday
    if name.endswith("_WEEK"):
        shift = {"THIS_WEEK": 0, "LAST_WEEK": -7, "NEXT_WEEK": 7}[name]
        start = week_start + timedelta(days=shift)
        return start, start + 7 * day
    if name.endswith("_MONTH"):
        month_index = today.year * 12 + today.month - 1 + {"THIS_MONTH": 0, "LAST_MONTH": -1, "NEXT_MONTH": 1}[name]
        start = date(month_index // 12, month_index % 12 + 1, 1)
        end = date((month_index + 1) // 12, (month_index + 1) % 12 + 1, 1)
        return start, end
    year = today.year + {"THIS_YEAR": 0, "LAST_YEAR": -1, "NEXT_YEAR": 1}[name]
    return date(year, 1, 1), date(year + 1, 1, 1)


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _folding(get: Getter) -> Getter:
    return lambda record: _fold(get(record))


def _compare(get: Getter, operator: str, expected: Any) -> Callable[[Record], bool]:
    if operator == "=":
        return lambda record: get(record) == expected
    if operator == "!=":
        return lambda record: get(record) != expected
    if operator == "<":
        return lambda record: (value := get(record)) is not None and value < expected
    if operator == "<=":
        return lambda record: (value := get(record)) is not None and value <= expected
    if operator == ">":
        return lambda record: (value := get(record)) is not None and value > expected
    return lambda record: (value := get(record)) is not None and value >= expected


def _like_pattern(pattern: str) -> re.Pattern[str]:
    """SOQL LIKE: % and _ are wildcards unless escaped (\\% \\_), and matching ignores case."""
    parts = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char == "\\" and position + 1 < len(pattern) and pattern[position + 1] in "%_":
            parts.append(re.escape(pattern[position + 1]))
            position += 2
            continue
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        position += 1
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def sort_records(records: list[Record], order: list[tuple[Getter, bool, bool]]) -> list[Record]:
    """Stable multi-key sort, applied from the last key to the first, honouring NULLS FIRST/LAST."""
    for get, descending, nulls_first in reversed(order):
        # With reverse=True the whole order flips, so the null group must flip too.
        null_group = (0 if nulls_first else 1) if not descending else (1 if nulls_first else 0)
        value_group = 1 - null_group

        def key(record: Record, get: Getter = get, null_group: int = null_group,
                value_group: int = value_group) -> tuple:
            value = get(record)
            return (null_group, 0) if value is None else (value_group, value)

        records.sort(key=key, reverse=descending)
    return records


def aggregate_rows(compiled: CompiledQuery, records: list[Record]) -> list[Record]:
    """GROUP BY and aggregate functions over the filtered rows, as AggregateResult records.

    Groups compare text without case, as Salesforce does, and show the first row's spelling."""
    group_getters = [path.getter for path in compiled.group_by]
    groups: dict[tuple, list[Record]] = {}
    for record in records:
        groups.setdefault(tuple(_fold(get(record)) for get in group_getters), []).append(record)
    if not compiled.group_by and not groups:
        groups[()] = []  # an aggregate without GROUP BY always answers one row
    representatives = [rows[0] if rows else {} for rows in groups.values()]
    outputs: dict[int, Record] = {}
    for representative, rows in zip(representatives, groups.values(), strict=True):
        output: Record = {"attributes": {"type": "AggregateResult"}}
        for path in compiled.group_by:
            output[path.target.name] = path.getter(representative) if rows else None
        for aggregate in compiled.aggregates:
            output[aggregate.output_key] = _aggregate_value(aggregate, rows)
        outputs[id(representative)] = output
    if compiled.order:
        sort_records(representatives, compiled.order)
    ordered = [outputs[id(representative)] for representative in representatives]
    if compiled.offset:
        ordered = ordered[compiled.offset:]
    if compiled.limit is not None:
        ordered = ordered[: compiled.limit]
    return ordered


def _aggregate_value(aggregate: CompiledAggregate, rows: list[Record]) -> Any:
    if aggregate.getter is None:
        return len(rows)
    values = [value for value in map(aggregate.getter, rows) if value is not None]
    if aggregate.function == "COUNT":
        return len(values)
    if aggregate.function == "COUNT_DISTINCT":
        return len({_fold(value) for value in values} if aggregate.folds_case else set(values))
    if not values:
        return None
    if aggregate.function == "MIN":
        return min(values, key=_fold) if aggregate.folds_case else min(values)
    if aggregate.function == "MAX":
        return max(values, key=_fold) if aggregate.folds_case else max(values)
    if aggregate.function == "SUM":
        return sum(values)
    return sum(values) / len(values)
