"""Okta's `search`/`filter` expressions for the mock: `profile.email eq "x" and status eq
"ACTIVE"`, with eq, ne, sw, co, gt, lt, ge, le, pr, `and`, `or`, `not`-free parentheses.

Property names are case-sensitive and string values are compared case-insensitively, as Okta
documents; anything else is an invalid search, which the mock answers like Okta (400).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

TOKEN = re.compile(r'\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<str>"(?:[^"\\]|\\.)*")'
                   r'|(?P<word>[A-Za-z0-9_.:$-]+))')
COMPARISONS = {"eq", "ne", "sw", "co", "gt", "lt", "ge", "le"}

Predicate = Callable[[dict[str, Any]], bool]


class InvalidSearch(ValueError):
    """The expression is not one Okta would accept."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise InvalidSearch(f"unexpected text at {pos}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value))
        pos = match.end()
    return out


def lookup(record: dict[str, Any], attribute: str) -> Any:
    value: Any = record
    for part in attribute.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if actual is None:
        return op == "ne"
    if isinstance(actual, str) and isinstance(expected, str):
        actual, expected = actual.lower(), expected.lower()
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if op == "sw":
        return isinstance(actual, str) and actual.startswith(str(expected))
    if op == "co":
        return isinstance(actual, str) and str(expected) in actual
    try:
        return {"gt": actual > expected, "lt": actual < expected,
                "ge": actual >= expected, "le": actual <= expected}[op]
    except TypeError:
        return False


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise InvalidSearch("the expression ends too early")
        self.pos += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.peek() is not None:
            raise InvalidSearch("unexpected text after the expression")
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while (token := self.peek()) and token[0] == "word" and token[1].lower() == "or":
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def conjunction(self) -> Predicate:
        parts = [self.term()]
        while (token := self.peek()) and token[0] == "word" and token[1].lower() == "and":
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def term(self) -> Predicate:
        kind, value = self.take()
        if kind == "lp":
            inner = self.disjunction()
            if self.take()[0] != "rp":
                raise InvalidSearch("missing )")
            return inner
        if kind != "word":
            raise InvalidSearch("expected an attribute")
        attribute = value
        op_kind, op = self.take()
        op = op.lower()
        if op_kind != "word":
            raise InvalidSearch("expected an operator")
        if op == "pr":
            return lambda r: lookup(r, attribute) not in (None, "")
        if op not in COMPARISONS:
            raise InvalidSearch(f"unknown operator {op}")
        value_kind, raw = self.take()
        expected: Any
        if value_kind == "str":
            expected = raw
        elif value_kind == "word" and raw in ("true", "false"):
            expected = raw == "true"
        elif value_kind == "word" and re.fullmatch(r"-?\d+(\.\d+)?", raw):
            expected = float(raw)
        else:
            raise InvalidSearch("values must be quoted strings, numbers or booleans")
        return lambda r: _compare(lookup(r, attribute), op, expected)


def compile_search(text: str) -> Predicate:
    """A predicate over an Okta object (as the API shows it) for a search expression."""
    if not text.strip():
        raise InvalidSearch("empty expression")
    return _Parser(_tokens(text)).parse()
