"""A hand-written SOQL subset: tokenizer, recursive-descent parser and a compiler to Python closures.

Hand-written because the PyPI SOQL parsers drop `LAST_N_DAYS:n` and cannot parse `COUNT()`, and because
Salesforce's error texts need the row/column of the offending token.
"""

from salesforce_emulator.soql.parser import parse_soql
from salesforce_emulator.soql.syntax import Query

__all__ = ["Query", "parse_soql"]
