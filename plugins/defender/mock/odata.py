"""The OData `$filter` subset the Defender mock understands: `prop eq 'v'`, `prop ne 'v'`,
`startswith(prop,'v')`, joined with `and`; property names compare case-insensitively, as
Defender's do."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any

STRING = r"'(?:[^']|'')*'"
CLAUSE = re.compile(
    rf"^\s*(?:startswith\(\s*(?P<sprop>\w+)\s*,\s*(?P<sval>{STRING})\s*\)"
    rf"|(?P<prop>\w+)\s+(?P<op>eq|ne)\s+(?P<val>{STRING}|[\w.:-]+))\s*$", re.IGNORECASE)
AND = re.compile(rf"\s+and\s+(?=(?:[^']|{STRING})*$)", re.IGNORECASE)


def _literal(text: str) -> str:
    return text[1:-1].replace("''", "'") if text.startswith("'") else text


def _field(record: dict[str, Any], name: str) -> str:
    for key, value in record.items():
        if key.lower() == name.lower():
            return str(value).lower()
    return ""


def compile_filter(text: str, filterable: Collection[str]) -> Callable[[dict[str, Any]], bool]:
    """A predicate over entities; ValueError when the filter is outside the subset."""
    allowed = {f.lower() for f in filterable}
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for clause in AND.split(text):
        match = CLAUSE.match(clause)
        if not match:
            raise ValueError(f"unsupported clause {clause.strip()!r}")
        name = match["sprop"] or match["prop"]
        if name.lower() not in allowed:
            raise ValueError(f"property {name!r} does not support $filter")
        if match["sprop"]:
            tests.append(_starts_with(name, _literal(match["sval"]).lower()))
        else:
            tests.append(_equals(name, _literal(match["val"]).lower(),
                                 negate=match["op"].lower() == "ne"))
    return lambda record: all(t(record) for t in tests)


def _starts_with(name: str, prefix: str) -> Callable[[dict[str, Any]], bool]:
    return lambda record: _field(record, name).startswith(prefix)


def _equals(name: str, value: str, *, negate: bool) -> Callable[[dict[str, Any]], bool]:
    return lambda record: (_field(record, name) == value) != negate
