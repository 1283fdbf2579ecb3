"""Recursive-descent SOQL parser.

Grammar (the subset Corral's sync needs):
    query      := SELECT select FROM ident [WHERE or] [ORDER BY order (',' order)*] [LIMIT int] [OFFSET int]
    select     := COUNT '(' ')' | item (',' item)*
    item       := path | '(' query ')'          (a child-relationship subquery, one level deep)
                | function '(' [path] ')' [alias]   (COUNT COUNT_DISTINCT MIN MAX SUM AVG)
    query      := ... FROM ident [WHERE or] [GROUP BY path (',' path)*] [ORDER BY ...] [LIMIT] [OFFSET]
    path       := ident ('.' ident)*
    or         := and (OR and)*
    and        := not (AND not)*
    not        := NOT not | '(' or ')' | comparison
    comparison := path (op value | [NOT] IN '(' value (',' value)* ')' | LIKE string)
    value      := string | number | TRUE | FALSE | NULL | date | datetime | ident [':' int]
    order      := path [ASC|DESC] [NULLS (FIRST|LAST)]
"""

from __future__ import annotations

from salesforce_emulator.errors import SalesforceError
from salesforce_emulator.soql.syntax import (
    Aggregate,
    BooleanOp,
    Comparison,
    Condition,
    FieldPath,
    Literal,
    Not,
    OrderKey,
    Query,
)
from salesforce_emulator.soql.tokenizer import Token, malformed, tokenize

DATE_FUNCTIONS_WITHOUT_ARGUMENT = {"TODAY", "YESTERDAY", "TOMORROW", "THIS_WEEK", "LAST_WEEK", "NEXT_WEEK",
                                   "THIS_MONTH", "LAST_MONTH", "NEXT_MONTH", "THIS_YEAR", "LAST_YEAR", "NEXT_YEAR"}
DATE_FUNCTIONS_WITH_ARGUMENT = {"LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO"}
AGGREGATE_FUNCTIONS = {"COUNT", "COUNT_DISTINCT", "MIN", "MAX", "SUM", "AVG"}
_COMPARISON_OPERATORS = {"=", "!=", "<", "<=", ">", ">="}


class _Parser:
    def __init__(self, soql: str) -> None:
        self.soql = soql
        self.tokens = tokenize(soql)
        self.index = 0

    # -- token helpers -------------------------------------------------------------------------------
    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "eof":
            self.index += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.current.kind == "keyword" and self.current.upper in words

    def at_punct(self, char: str) -> bool:
        return self.current.kind == "punct" and self.current.value == char

    def unexpected(self, token: Token | None = None):
        token = token or self.current
        return malformed(self.soql, token.position, f"unexpected token: {token.value}")

    def expect_keyword(self, word: str) -> Token:
        if not self.at_keyword(word):
            raise self.unexpected()
        return self.advance()

    def expect_punct(self, char: str) -> Token:
        if not self.at_punct(char):
            raise self.unexpected()
        return self.advance()

    def expect_identifier(self) -> Token:
        # Salesforce lets a few keywords double as names (e.g. a field called `Last`), but the subset
        # Corral needs never does, so a keyword here is an error like a stray symbol.
        if self.current.kind != "ident":
            raise self.unexpected()
        return self.advance()

    # -- grammar -------------------------------------------------------------------------------------
    def parse(self) -> Query:
        if not self.at_keyword("SELECT"):
            # Salesforce answers a bad first word without the row/column preamble.
            raise SalesforceError(400, "MALFORMED_QUERY", f"unexpected token: {self.current.value}")
        query = self.parse_query(nested=False)
        if self.current.kind != "eof":
            raise self.unexpected()
        return query

    def parse_query(self, *, nested: bool) -> Query:
        self.expect_keyword("SELECT")
        fields, count_only, subqueries, aggregates = self.parse_select_list(nested=nested)
        self.expect_keyword("FROM")
        sobject = self.expect_identifier()
        query = Query(fields=fields, sobject=sobject.value, sobject_position=sobject.position,
                      count_only=count_only, subqueries=subqueries, aggregates=aggregates)
        if self.at_keyword("WHERE"):
            self.advance()
            query.where = self.parse_or()
        if self.at_keyword("GROUP"):
            self.advance()
            self.expect_keyword("BY")
            query.group_by.append(self.parse_path())
            while self.at_punct(","):
                self.advance()
                query.group_by.append(self.parse_path())
        if self.at_keyword("ORDER"):
            self.advance()
            self.expect_keyword("BY")
            query.order_by.append(self.parse_order_key())
            while self.at_punct(","):
                self.advance()
                query.order_by.append(self.parse_order_key())
        if self.at_keyword("LIMIT"):
            self.advance()
            query.limit = self.parse_non_negative_integer()
        if self.at_keyword("OFFSET"):
            self.advance()
            query.offset = self.parse_non_negative_integer()
        return query

    def peek(self, offset: int) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def at_aggregate(self) -> bool:
        token = self.current
        is_function = (token.kind == "keyword" and token.upper == "COUNT") or \
            (token.kind == "ident" and token.upper in AGGREGATE_FUNCTIONS)
        following = self.peek(1)
        return is_function and following.kind == "punct" and following.value == "("

    def parse_select_list(self, *, nested: bool) -> tuple[list[FieldPath], bool, list[Query], list[Aggregate]]:
        if self.at_keyword("COUNT") and self.peek(1).value == "(" and self.peek(2).value == ")" and \
                self.peek(3).kind == "keyword" and self.peek(3).upper == "FROM":
            self.index += 3
            return [], True, [], []
        fields: list[FieldPath] = []
        subqueries: list[Query] = []
        aggregates: list[Aggregate] = []
        while True:
            following = self.peek(1)
            if self.at_punct("(") and not nested and following.kind == "keyword" and following.upper == "SELECT":
                self.advance()
                subqueries.append(self.parse_query(nested=True))
                self.expect_punct(")")
            elif self.at_aggregate():
                aggregates.append(self.parse_aggregate())
            else:
                fields.append(self.parse_path())
            if not self.at_punct(","):
                return fields, False, subqueries, aggregates
            self.advance()

    def parse_aggregate(self) -> Aggregate:
        function = self.advance()
        self.expect_punct("(")
        path = None
        if not (function.upper == "COUNT" and self.at_punct(")")):
            path = self.parse_path()
        self.expect_punct(")")
        alias = self.advance().value if self.current.kind == "ident" else None
        return Aggregate(function.upper, path, alias, function.position)

    def parse_path(self) -> FieldPath:
        first = self.expect_identifier()
        parts = [first.value]
        while self.at_punct("."):
            self.advance()
            parts.append(self.expect_identifier().value)
        return FieldPath(tuple(parts), first.position)

    def parse_non_negative_integer(self) -> int:
        token = self.current
        if token.kind != "number" or not token.value.isdigit():
            raise self.unexpected()
        self.advance()
        return int(token.value)

    def parse_order_key(self) -> OrderKey:
        path = self.parse_path()
        descending = False
        nulls_first: bool | None = None
        if self.at_keyword("ASC", "DESC"):
            descending = self.advance().upper == "DESC"
        if self.at_keyword("NULLS"):
            self.advance()
            if not self.at_keyword("FIRST", "LAST"):
                raise self.unexpected()
            nulls_first = self.advance().upper == "FIRST"
        return OrderKey(path, descending, nulls_first)

    def parse_or(self) -> Condition:
        operands = [self.parse_and()]
        while self.at_keyword("OR"):
            self.advance()
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else BooleanOp("OR", tuple(operands))

    def parse_and(self) -> Condition:
        operands = [self.parse_not()]
        while self.at_keyword("AND"):
            self.advance()
            operands.append(self.parse_not())
        return operands[0] if len(operands) == 1 else BooleanOp("AND", tuple(operands))

    def parse_not(self) -> Condition:
        if self.at_keyword("NOT"):
            self.advance()
            return Not(self.parse_not())
        if self.at_punct("("):
            self.advance()
            inner = self.parse_or()
            self.expect_punct(")")
            return inner
        return self.parse_comparison()

    def parse_comparison(self) -> Comparison:
        path = self.parse_path()
        token = self.current
        if token.kind == "op" and token.value in _COMPARISON_OPERATORS:
            self.advance()
            return Comparison(path, token.value, self.parse_value())
        if self.at_keyword("LIKE"):
            self.advance()
            value = self.parse_value()
            if value.kind != "string":
                raise malformed(self.soql, value.position, "unexpected token: " + str(value.value))
            return Comparison(path, "LIKE", value)
        negated = False
        if self.at_keyword("NOT"):
            self.advance()
            negated = True
            if not self.at_keyword("IN"):
                raise self.unexpected()
        if self.at_keyword("IN"):
            self.advance()
            self.expect_punct("(")
            values = [self.parse_value()]
            while self.at_punct(","):
                self.advance()
                values.append(self.parse_value())
            self.expect_punct(")")
            return Comparison(path, "NOT IN" if negated else "IN", tuple(values))
        raise self.unexpected()

    def parse_value(self) -> Literal:
        token = self.current
        if token.kind == "string":
            self.advance()
            return Literal("string", token.value, token.position)
        if token.kind == "number":
            self.advance()
            number = float(token.value) if any(c in token.value for c in ".") else int(token.value)
            return Literal("number", number, token.position)
        if token.kind in ("date", "datetime"):
            self.advance()
            return Literal(token.kind, token.value, token.position)
        if token.kind == "keyword" and token.upper in ("TRUE", "FALSE"):
            self.advance()
            return Literal("boolean", token.upper == "TRUE", token.position)
        if token.kind == "keyword" and token.upper == "NULL":
            self.advance()
            return Literal("null", None, token.position)
        if token.kind == "ident":
            name = token.upper
            if name in DATE_FUNCTIONS_WITHOUT_ARGUMENT:
                self.advance()
                return Literal("date_function", name, token.position)
            if name in DATE_FUNCTIONS_WITH_ARGUMENT:
                self.advance()
                self.expect_punct(":")
                argument = self.parse_non_negative_integer()
                return Literal("date_function", name, token.position, argument)
        raise self.unexpected()


def parse_soql(soql: str) -> Query:
    """Parse SOQL text, raising SalesforceError(MALFORMED_QUERY) with Salesforce's wording on bad input."""
    return _Parser(soql).parse()
