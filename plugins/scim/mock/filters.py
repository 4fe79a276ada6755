"""SCIM filters (RFC 7644 §3.4.2.2) for the mock: attribute expressions with eq, ne, co, sw,
ew, gt, lt, ge, le and pr, `and`/`or`/`not (...)`, parentheses and value paths such as
`emails[type eq "work" and value co "@acme"]`. Attribute names are case-insensitive and string
comparisons ignore case (caseExact is false for userName and emails); a multi-valued attribute
matches when any of its values does."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

TOKEN = re.compile(r'\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<lb>\[)|(?P<rb>\])'
                   r'|(?P<str>"(?:[^"\\]|\\.)*")|(?P<word>[A-Za-z0-9_.:$@+-]+))')
OPERATORS = {"eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le"}

Predicate = Callable[[dict[str, Any]], bool]


class InvalidFilter(ValueError):
    """Answered as 400 with scimType invalidFilter."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while text[pos:].strip():
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise InvalidFilter(f"cannot read the filter at position {pos}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _values(record: Any, path: list[str]) -> list[Any]:
    """Every value at an attribute path, flattening multi-valued attributes."""
    current = [record]
    for name in path:
        found = []
        for item in current:
            if isinstance(item, dict):
                key = next((k for k in item if k.lower() == name.lower()), None)
                if key is not None:
                    value = item[key]
                    found.extend(value if isinstance(value, list) else [value])
        current = found
    return current


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        actual, expected = actual.lower(), expected.lower()
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if not isinstance(actual, str) or not isinstance(expected, str):
        if op in ("co", "sw", "ew"):
            return False
    if op == "co":
        return str(expected) in str(actual)
    if op == "sw":
        return str(actual).startswith(str(expected))
    if op == "ew":
        return str(actual).endswith(str(expected))
    try:
        return {"gt": actual > expected, "lt": actual < expected, "ge": actual >= expected,
                "le": actual <= expected}[op]
    except TypeError:
        return False


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("", "")

    def take(self, kind: str) -> str:
        token_kind, value = self.peek()
        if token_kind != kind:
            raise InvalidFilter(f"expected {kind} but found '{value or 'the end'}'")
        self.pos += 1
        return value

    def keyword(self, word: str) -> bool:
        kind, value = self.peek()
        if kind == "word" and value.lower() == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.pos != len(self.tokens):
            raise InvalidFilter(f"unexpected '{self.peek()[1]}'")
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.keyword("or"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def conjunction(self) -> Predicate:
        parts = [self.term()]
        while self.keyword("and"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def term(self) -> Predicate:
        if self.keyword("not"):
            self.take("lp")
            inner = self.disjunction()
            self.take("rp")
            return lambda r: not inner(r)
        if self.peek()[0] == "lp":
            self.take("lp")
            inner = self.disjunction()
            self.take("rp")
            return inner
        attribute = self.take("word")
        if self.peek()[0] == "lb":
            self.take("lb")
            inner = self.disjunction()
            self.take("rb")
            path = attribute.split(".")
            return lambda r: any(inner(v) for v in _values(r, path) if isinstance(v, dict))
        return self.comparison(attribute.split(":")[-1].split("."))

    def comparison(self, path: list[str]) -> Predicate:
        op = self.take("word").lower()
        if op == "pr":
            return lambda r: any(v not in (None, "", []) for v in _values(r, path))
        if op not in OPERATORS:
            raise InvalidFilter(f"unknown operator '{op}'")
        kind, raw = self.peek()
        self.pos += 1
        if kind == "str":
            expected: Any = json.loads(raw)
        elif kind == "word" and raw in ("true", "false", "null"):
            expected = {"true": True, "false": False, "null": None}[raw]
        elif kind == "word" and re.fullmatch(r"-?\d+(\.\d+)?", raw):
            expected = float(raw)
        else:
            raise InvalidFilter("a comparison needs a string, number, boolean or null")
        return lambda r: any(_compare(v, op, expected) for v in _values(r, path))


def compile_filter(text: str) -> Predicate:
    """A predicate over SCIM resources for a filter expression."""
    if not text.strip():
        raise InvalidFilter("empty filter")
    return _Parser(_tokens(text)).parse()
