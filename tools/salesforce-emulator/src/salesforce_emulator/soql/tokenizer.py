"""Splits SOQL text into tokens that remember where they started (for Salesforce's error texts)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from salesforce_emulator.errors import SalesforceError

KEYWORDS = {
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS",
    "FIRST", "LAST", "LIMIT", "OFFSET", "NULL", "TRUE", "FALSE", "COUNT", "INCLUDES", "EXCLUDES", "GROUP",
}

_TOKEN_PATTERN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\dT])
  | (?P<number>[+-]?(?:\d+\.\d*|\.\d+|\d+))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>')
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),.:])
    """,
    re.VERBOSE,
)

_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f",
            "_": "\\_", "%": "\\%"}


@dataclass(frozen=True)
class Token:
    kind: str  # keyword, ident, string, number, date, datetime, op, punct, eof
    value: str
    position: int  # 0-based offset in the query text

    @property
    def upper(self) -> str:
        return self.value.upper()


def malformed(soql: str, position: int, detail: str) -> SalesforceError:
    """Salesforce points at the offending column under a copy of the query."""
    row = soql.count("\n", 0, position) + 1
    line_start = soql.rfind("\n", 0, position) + 1
    column = position - line_start + 1
    line_end = soql.find("\n", position)
    line = soql[line_start: line_end if line_end != -1 else len(soql)]
    caret = " " * (column - 1) + "^"
    return SalesforceError(400, "MALFORMED_QUERY", f"\n{line}\n{caret}\nERROR at Row:{row}:Column:{column}\n{detail}")


def tokenize(soql: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    length = len(soql)
    while position < length:
        match = _TOKEN_PATTERN.match(soql, position)
        if not match:
            raise malformed(soql, position, f"unexpected token: {soql[position]}")
        kind = match.lastgroup
        assert kind is not None
        if kind == "ws":
            position = match.end()
            continue
        if kind == "string":
            value, position_after = _read_string(soql, position)
            tokens.append(Token("string", value, position))
            position = position_after
            continue
        text = match.group()
        if kind == "ident" and text.upper() in KEYWORDS:
            kind = "keyword"
        if kind == "op" and text == "<>":
            text = "!="
        tokens.append(Token(kind, text, position))
        position = match.end()
    tokens.append(Token("eof", "<EOF>", length))
    return tokens


def _read_string(soql: str, start: int) -> tuple[str, int]:
    """Read a quoted literal; LIKE wildcards escaped as \\% and \\_ stay escaped for the LIKE matcher."""
    chars: list[str] = []
    position = start + 1
    while position < len(soql):
        char = soql[position]
        if char == "\\":
            if position + 1 >= len(soql):
                break
            escaped = soql[position + 1]
            if escaped not in _ESCAPES:
                raise malformed(soql, position, f"Invalid string literal '{soql[start:position + 2]}'. "
                                                "Illegal character sequence '\\" + escaped + "' in string literal.")
            chars.append(_ESCAPES[escaped])
            position += 2
            continue
        if char == "'":
            return "".join(chars), position + 1
        chars.append(char)
        position += 1
    raise malformed(soql, start, "line 1:" + str(start) + " mismatched character '<EOF>' expecting '''")
