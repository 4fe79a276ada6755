"""The slice of OData `$filter` the Graph mock understands: `prop eq 'x'` (also ne), booleans,
`startswith(prop,'x')`, `and`, `or` and parentheses; string comparisons ignore case, as Graph's
do for directory properties. Anything else is an unsupported query, as Graph answers it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

TOKEN = re.compile(r"\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<comma>,)|(?P<str>'(?:[^']|'')*')"
                   r"|(?P<word>[A-Za-z0-9_.@-]+))")

Predicate = Callable[[dict[str, Any]], bool]


class UnsupportedQuery(ValueError):
    """Graph would answer 400 Request_UnsupportedQuery (or BadRequest)."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while text[pos:].strip():
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise UnsupportedQuery(f"syntax error at position {pos} in '$filter'")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "str":
            value = value[1:-1].replace("''", "'")
        out.append((kind, value))
        pos = match.end()
    return out


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.lower() == expected.lower()
    return bool(actual == expected)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], properties: set[str]):
        self.tokens = tokens
        self.properties = properties
        self.pos = 0

    def take(self, kind: str | None = None) -> str:
        if self.pos >= len(self.tokens):
            raise UnsupportedQuery("the '$filter' expression ends too early")
        token_kind, value = self.tokens[self.pos]
        if kind and token_kind != kind:
            raise UnsupportedQuery(f"unexpected '{value}' in '$filter'")
        self.pos += 1
        return value

    def keyword(self, word: str) -> bool:
        if self.pos < len(self.tokens) and self.tokens[self.pos][0] == "word" \
                and self.tokens[self.pos][1].lower() == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.pos != len(self.tokens):
            raise UnsupportedQuery("unexpected text after the '$filter' expression")
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

    def prop(self) -> str:
        name = self.take("word")
        if name not in self.properties:
            raise UnsupportedQuery(f"Property '{name}' is not supported in a filter")
        return name

    def literal(self) -> Any:
        kind, value = self.tokens[self.pos] if self.pos < len(self.tokens) else ("", "")
        self.pos += 1
        if kind == "str":
            return value
        if kind == "word" and value in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[value]
        raise UnsupportedQuery("expected a literal in '$filter'")

    def term(self) -> Predicate:
        if self.pos < len(self.tokens) and self.tokens[self.pos][0] == "lp":
            self.take("lp")
            inner = self.disjunction()
            self.take("rp")
            return inner
        if self.keyword("startswith"):
            self.take("lp")
            name = self.prop()
            self.take("comma")
            prefix = self.literal()
            self.take("rp")
            return lambda r: isinstance(r.get(name), str) and isinstance(prefix, str) \
                and r[name].lower().startswith(prefix.lower())
        name = self.prop()
        op = self.take("word").lower()
        expected = self.literal()
        if op == "eq":
            return lambda r: _same(r.get(name), expected)
        if op == "ne":
            return lambda r: not _same(r.get(name), expected)
        raise UnsupportedQuery(f"operator '{op}' is not supported")


def compile_filter(text: str, properties: set[str]) -> Predicate:
    """A predicate over Graph objects for `$filter` text, on the given filterable properties."""
    return _Parser(_tokens(text), properties).parse()
