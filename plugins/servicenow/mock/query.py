"""The subset of ServiceNow encoded queries (`sysparm_query`) the mock understands.

    active=true^caller_id=<sys_id>^ORopened_by=<sys_id>^ORDERBYDESCsys_created_on

`^` joins terms with AND, `^OR` joins a term to the previous one with OR (OR binds tighter, as
on an instance), `ORDERBY`/`ORDERBYDESC` sort. Operators: =, !=, LIKE, NOT LIKE, STARTSWITH,
ENDSWITH, IN, NOT IN, ISEMPTY, ISNOTEMPTY. A term naming a field the table does not have
matches nothing, as instances do by default (glide.invalid_query.returns_no_rows).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TERM = re.compile(r"^([a-z_][a-z0-9_.]*?)(ISNOTEMPTY|ISEMPTY|NOT LIKE|NOT IN|STARTSWITH|"
                  r"ENDSWITH|LIKE|IN|!=|=)(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Term:
    field: str
    op: str
    value: str

    def matches(self, record: dict[str, Any]) -> bool:
        if self.field not in record:
            return False
        actual = str(record.get(self.field) or "")
        tests: dict[str, Callable[[], bool]] = {
            "=": lambda: actual == self.value,
            "!=": lambda: actual != self.value,
            "LIKE": lambda: self.value.lower() in actual.lower(),
            "NOT LIKE": lambda: self.value.lower() not in actual.lower(),
            "STARTSWITH": lambda: actual.lower().startswith(self.value.lower()),
            "ENDSWITH": lambda: actual.lower().endswith(self.value.lower()),
            "IN": lambda: actual in self.value.split(","),
            "NOT IN": lambda: actual not in self.value.split(","),
            "ISEMPTY": lambda: actual == "",
            "ISNOTEMPTY": lambda: actual != "",
        }
        return tests[self.op]()


@dataclass(frozen=True)
class Query:
    groups: tuple[tuple[Term, ...], ...]  # AND of OR-groups
    order: tuple[tuple[str, bool], ...]    # (field, descending)
    valid: bool = True

    def matches(self, record: dict[str, Any]) -> bool:
        return self.valid and all(any(t.matches(record) for t in group) for group in self.groups)

    def sort(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for field, descending in reversed(self.order):
            records = sorted(records, key=_by(field), reverse=descending)
        return records


def _by(field: str) -> Callable[[dict[str, Any]], str]:
    return lambda record: str(record.get(field) or "")


def parse_query(text: str) -> Query:
    """Parse an encoded query; an unparseable term makes the query match nothing."""
    groups: list[list[Term]] = []
    order: list[tuple[str, bool]] = []
    valid = True
    for raw in text.split("^") if text else []:
        if not raw or raw == "EQ":
            continue
        if raw.startswith("ORDERBYDESC"):
            order.append((raw[len("ORDERBYDESC"):], True))
            continue
        if raw.startswith("ORDERBY"):
            order.append((raw[len("ORDERBY"):], False))
            continue
        is_or = raw.startswith("OR") and bool(groups)
        match = TERM.match(raw[2:] if is_or else raw)
        if match is None:
            valid = False
            continue
        term = Term(match.group(1), match.group(2), match.group(3))
        if is_or:
            groups[-1].append(term)
        else:
            groups.append([term])
    return Query(tuple(tuple(g) for g in groups), tuple(order), valid)
