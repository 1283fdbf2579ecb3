"""The parsed form of a SOQL query; positions are kept so later checks can point at the right column."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldPath:
    parts: tuple[str, ...]
    position: int

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Literal:
    """kind: string, number, boolean, null, date, datetime, date_function."""

    kind: str
    value: Any
    position: int
    argument: int | None = None  # n of LAST_N_DAYS:n


@dataclass(frozen=True)
class Comparison:
    path: FieldPath
    operator: str  # = != < <= > >= LIKE IN NOT IN
    value: Literal | tuple[Literal, ...]


@dataclass(frozen=True)
class BooleanOp:
    operator: str  # AND / OR
    operands: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    operand: Condition


Condition = Comparison | BooleanOp | Not


@dataclass(frozen=True)
class Aggregate:
    """COUNT(f), COUNT_DISTINCT(f), MIN, MAX, SUM, AVG; `path` is None for a bare COUNT()."""

    function: str
    path: FieldPath | None
    alias: str | None
    position: int


@dataclass(frozen=True)
class OrderKey:
    path: FieldPath
    descending: bool = False
    nulls_first: bool | None = None


@dataclass
class Query:
    fields: list[FieldPath]
    sobject: str
    sobject_position: int
    count_only: bool = False
    where: Condition | None = None
    order_by: list[OrderKey] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    # Child-relationship subqueries, e.g. (SELECT Id FROM Contacts); their `sobject` is the relationship name.
    subqueries: list[Query] = field(default_factory=list)
    aggregates: list[Aggregate] = field(default_factory=list)
    group_by: list[FieldPath] = field(default_factory=list)
