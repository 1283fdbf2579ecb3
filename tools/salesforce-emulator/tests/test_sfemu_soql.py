"""The SOQL subset: tokenizer and parser structure, error texts, and the compiled predicates and ordering
checked against plain Python with hypothesis."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from salesforce_emulator.errors import SalesforceError
from salesforce_emulator.schema import standard_objects
from salesforce_emulator.soql import parse_soql
from salesforce_emulator.soql.compiler import QueryCompiler, sort_records
from salesforce_emulator.soql.syntax import BooleanOp, Comparison, Not

OBJECTS = standard_objects()
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def compile_query(soql: str, records: dict[str, dict[str, Any]] | None = None):
    describe = lambda name: next((o for o in OBJECTS.values() if o.name.lower() == name.lower()), None)
    return QueryCompiler(soql, describe, (records or {}).get, NOW).compile(parse_soql(soql))


def test_select_list_parent_paths_and_clauses() -> None:
    query = parse_soql("select Id, Account.Owner.Name from Contact where Email != null "
                       "order by LastName desc nulls last, Id limit 10 offset 5")
    assert [path.parts for path in query.fields] == [("Id",), ("Account", "Owner", "Name")]
    assert query.sobject == "Contact" and query.limit == 10 and query.offset == 5
    assert [(key.path.text, key.descending, key.nulls_first) for key in query.order_by] == [
        ("LastName", True, False), ("Id", False, None)]


def test_count_query() -> None:
    query = parse_soql("SELECT COUNT() FROM Lead")
    assert query.count_only and query.fields == []


def test_and_binds_tighter_than_or_and_parentheses_override() -> None:
    loose = parse_soql("SELECT Id FROM Account WHERE Name = 'a' OR Name = 'b' AND Site = 'c'").where
    assert isinstance(loose, BooleanOp) and loose.operator == "OR"
    assert isinstance(loose.operands[1], BooleanOp) and loose.operands[1].operator == "AND"
    grouped = parse_soql("SELECT Id FROM Account WHERE (Name = 'a' OR Name = 'b') AND NOT Site = 'c'").where
    assert isinstance(grouped, BooleanOp) and grouped.operator == "AND"
    assert isinstance(grouped.operands[1], Not)


def test_literals() -> None:
    where = parse_soql("SELECT Id FROM Account WHERE Name IN ('it\\'s', 'a\\\\b') AND NumberOfEmployees NOT IN "
                       "(1, 2.5) AND IsDeleted = false AND CreatedDate > 2024-05-01T10:00:00.000+0000 AND "
                       "CreatedDate < LAST_N_DAYS:30 AND CreatedDate != TODAY AND Site LIKE 'x\\%%'").where
    assert isinstance(where, BooleanOp)
    kinds = []
    for operand in where.operands:
        assert isinstance(operand, Comparison)
        values = operand.value if isinstance(operand.value, tuple) else (operand.value,)
        kinds.append([(value.kind, value.value, value.argument) for value in values])
    assert kinds == [
        [("string", "it's", None), ("string", "a\\b", None)],
        [("number", 1, None), ("number", 2.5, None)],
        [("boolean", False, None)],
        [("datetime", "2024-05-01T10:00:00.000+0000", None)],
        [("date_function", "LAST_N_DAYS", 30)],
        [("date_function", "TODAY", None)],
        [("string", "x\\%%", None)],
    ]


@pytest.mark.parametrize(("soql", "message_end", "column"), [
    ("SELECT Id FROM", "unexpected token: <EOF>", 15),
    ("SELECT Id, FROM Account", "unexpected token: FROM", 12),
    ("SELECT Id FROM Account WHERE Name = 'a' AND", "unexpected token: <EOF>", 44),
    ("SELECT Id FROM Account LIMIT x", "unexpected token: x", 30),
    ("SELECT Id FROM Account WHERE Name ~ 'a'", "unexpected token: ~", 35),
    ("SELECT Id FROM Account ORDER BY Name NULLS MIDDLE", "unexpected token: MIDDLE", 44),
])
def test_malformed_queries_point_at_the_token(soql: str, message_end: str, column: int) -> None:
    with pytest.raises(SalesforceError) as raised:
        parse_soql(soql)
    assert raised.value.error_code == "MALFORMED_QUERY"
    assert raised.value.message.endswith(message_end)
    assert f"ERROR at Row:1:Column:{column}\n" in raised.value.message


def test_unknown_relationship_and_wrong_literal_type_are_invalid_field() -> None:
    with pytest.raises(SalesforceError) as relationship:
        compile_query("SELECT Bogus.Name FROM Contact")
    assert relationship.value.error_code == "INVALID_FIELD"
    assert "Didn't understand relationship 'Bogus'" in relationship.value.message
    with pytest.raises(SalesforceError) as literal:
        compile_query("SELECT Id FROM Account WHERE Name = 5")
    assert "must be of type string and should be enclosed in quotes" in literal.value.message


def test_date_functions_select_the_right_days() -> None:
    rows = [{"Id": str(day), "CloseDate": f"2026-11-{day:02d}"} for day in range(15, 28)]
    cases = {
        "CloseDate = TODAY": [23], "CloseDate = YESTERDAY": [22], "CloseDate = TOMORROW": [24],
        "CloseDate = LAST_N_DAYS:2": [21, 22, 23], "CloseDate > LAST_N_DAYS:2": [24, 25, 26, 27],
        "CloseDate = NEXT_N_DAYS:2": [24, 25], "CloseDate = N_DAYS_AGO:3": [20],
        "CloseDate < 2026-11-17": [15, 16], "CloseDate = THIS_WEEK": [22, 23, 24, 25, 26, 27],
    }
    for condition, expected in cases.items():
        compiled = compile_query(f"SELECT Id FROM Opportunity WHERE {condition}")
        assert [int(row["Id"]) for row in rows if compiled.predicate(row)] == expected, condition


def test_like_is_case_insensitive_with_escapes() -> None:
    compiled = compile_query("SELECT Id FROM Account WHERE Name LIKE 'a_c%' ")
    assert compiled.predicate({"Name": "ABCdef"}) and not compiled.predicate({"Name": "ac"})
    literal_percent = compile_query("SELECT Id FROM Account WHERE Name LIKE '100\\%'")
    assert literal_percent.predicate({"Name": "100%"}) and not literal_percent.predicate({"Name": "1000"})


def test_parent_path_reads_through_references() -> None:
    records = {"001": {"Id": "001", "Name": "Acme", "OwnerId": "005"}, "005": {"Id": "005", "Name": "Owner"}}
    compiled = compile_query("SELECT Id FROM Contact WHERE Account.Owner.Name = 'owner'", records)
    assert compiled.predicate({"AccountId": "001"}) and not compiled.predicate({"AccountId": None})


# -- properties -------------------------------------------------------------------------------------------------
def soql_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t")
    return f"'{escaped}'"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\b\f"), max_size=40))
def test_escaped_string_literals_round_trip(text: str) -> None:
    where = parse_soql(f"SELECT Id FROM Account WHERE Name = {soql_quote(text)}").where
    assert isinstance(where, Comparison) and where.value.value == text  # type: ignore[union-attr]


_OPERATORS = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
              "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
_values = st.one_of(st.none(), st.integers(-5, 5))


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> tuple[str, Any]:
    """A random WHERE expression over NumberOfEmployees with its Python meaning."""
    if depth > 2 or draw(st.booleans()):
        operator = draw(st.sampled_from(sorted(_OPERATORS)))
        literal = draw(st.integers(-5, 5))

        def meaning(value: Any, operator: str = operator, literal: int = literal) -> bool:
            if value is None:
                return operator == "!="  # null differs from every number, and never orders
            return _OPERATORS[operator](value, literal)

        return f"NumberOfEmployees {operator} {literal}", meaning
    kind = draw(st.sampled_from(["AND", "OR", "NOT"]))
    left_text, left = draw(conditions(depth + 1))
    if kind == "NOT":
        return f"NOT ({left_text})", lambda value: not left(value)
    right_text, right = draw(conditions(depth + 1))
    if kind == "AND":
        return f"({left_text}) AND ({right_text})", lambda value: left(value) and right(value)
    return f"({left_text}) OR ({right_text})", lambda value: left(value) or right(value)


@settings(max_examples=150, deadline=None)
@given(conditions(), st.lists(_values, max_size=12))
def test_compiled_where_matches_python_semantics(condition: tuple[str, Any], values: list[Any]) -> None:
    text, meaning = condition
    compiled = compile_query(f"SELECT Id FROM Account WHERE {text}")
    for value in values:
        assert compiled.predicate({"NumberOfEmployees": value}) == meaning(value), (text, value)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_values, st.sampled_from(["a", "B", "c", None])), max_size=15),
       st.booleans(), st.sampled_from([None, True, False]))
def test_order_by_matches_a_reference_sort(rows: list[tuple[Any, Any]], descending: bool,
                                          nulls_first: bool | None) -> None:
    records = [{"NumberOfEmployees": number, "Name": name, "Id": str(index)}
               for index, (number, name) in enumerate(rows)]
    nulls = "" if nulls_first is None else (" NULLS FIRST" if nulls_first else " NULLS LAST")
    compiled = compile_query(f"SELECT Id FROM Account ORDER BY NumberOfEmployees {'DESC' if descending else 'ASC'}"
                             f"{nulls}, Name")
    ordered = [record["Id"] for record in sort_records(list(records), compiled.order)]
    effective_nulls_first = nulls_first if nulls_first is not None else not descending

    def name_key(record: dict[str, Any]) -> tuple:
        return (0, "") if record["Name"] is None else (1, record["Name"].casefold())

    non_null = sorted((r for r in records if r["NumberOfEmployees"] is not None), key=name_key)
    non_null.sort(key=lambda r: r["NumberOfEmployees"], reverse=descending)
    null_rows = sorted((r for r in records if r["NumberOfEmployees"] is None), key=name_key)
    expected = null_rows + non_null if effective_nulls_first else non_null + null_rows
    assert ordered == [record["Id"] for record in expected]


def test_child_subqueries_parse_one_level_deep() -> None:
    query = parse_soql("SELECT Name, (SELECT LastName FROM Contacts WHERE Email != null ORDER BY LastName LIMIT 3), "
                       "Id FROM Account")
    assert [path.text for path in query.fields] == ["Name", "Id"]
    [child] = query.subqueries
    assert child.sobject == "Contacts" and child.limit == 3 and child.order_by[0].path.text == "LastName"
    with pytest.raises(SalesforceError) as nested:
        parse_soql("SELECT Id, (SELECT Id, (SELECT Id FROM Tasks) FROM Contacts) FROM Account")
    assert nested.value.error_code == "MALFORMED_QUERY"


def test_aggregate_select_items_and_group_by() -> None:
    query = parse_soql("SELECT StageName, COUNT(Id) total, SUM(Amount) FROM Opportunity GROUP BY StageName")
    assert [(a.function, a.path.text if a.path else None, a.alias) for a in query.aggregates] == [
        ("COUNT", "Id", "total"), ("SUM", "Amount", None)]
    assert [path.text for path in query.group_by] == ["StageName"] and not query.count_only
    assert parse_soql("SELECT COUNT() FROM Opportunity").count_only
    compiled = compile_query("SELECT COUNT_DISTINCT(Name) FROM Account")
    assert compiled.is_aggregate and compiled.aggregates[0].output_key == "expr0"
