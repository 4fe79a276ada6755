"""The subset of JQL the Jira mock understands.

    project = "SEC" AND labels = "crownguard-alert-7" AND status != Done ORDER BY created ASC

Clauses joined by AND and OR (AND binds tighter): `field = value`, `!=`, `in (a, b)`,
`not in (...)`, `~ "text"` (contains), on project, key, labels, status, statusCategory,
issuetype/type, summary. Values are quoted strings (with backslash escapes) or bare words.
Parentheses around clauses are not supported. Anything else is a JQL error, as on Jira.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>!=|!~|=|~|\(|\)|,)|'
                   r"(?P<word>[A-Za-z0-9_.\-]+))")
FIELDS = {"project", "key", "labels", "status", "statuscategory", "issuetype", "type",
          "summary", "created", "id"}


class JqlError(ValueError):
    """A query the mock (like Jira) cannot run; the message is Jira's wording."""


@dataclass(frozen=True)
class Clause:
    field: str
    op: str
    values: tuple[str, ...]

    def matches(self, value: Callable[[str], list[str]]) -> bool:
        actual = [v.casefold() for v in value(self.field)]
        wanted = [v.casefold() for v in self.values]
        if self.op in ("=", "in"):
            return any(w in actual for w in wanted)
        if self.op in ("!=", "not in"):
            return not any(w in actual for w in wanted)
        if self.op == "~":
            return any(wanted[0] in a for a in actual)
        return not any(wanted[0] in a for a in actual)  # !~


@dataclass(frozen=True)
class Jql:
    groups: tuple[tuple[Clause, ...], ...]  # OR of AND-groups
    order: tuple[tuple[str, bool], ...]     # (field, descending)

    @property
    def clauses(self) -> tuple[Clause, ...]:
        return tuple(c for group in self.groups for c in group)

    def matches(self, value: Callable[[str], list[str]]) -> bool:
        return any(all(c.matches(value) for c in group) for group in self.groups)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    at = 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = TOKEN.match(text, at)
        if match is None:
            raise JqlError(f"Error in the JQL Query: The character '{text[at:].strip()[0]}' "
                           "is a reserved JQL character.")
        kind = match.lastgroup or "word"
        value = match.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value))
        at = match.end()
    return out


def parse_jql(text: str) -> Jql:
    tokens = _tokens(text)
    groups: list[list[Clause]] = [[]]
    order: list[tuple[str, bool]] = []
    i = 0

    def word(at: int) -> str:
        return tokens[at][1].lower() if at < len(tokens) and tokens[at][0] == "word" else ""

    while i < len(tokens):
        if word(i) == "order" and word(i + 1) == "by":
            i += 2
            while i < len(tokens):
                field = word(i)
                descending = word(i + 1) == "desc"
                i += 2 if word(i + 1) in ("asc", "desc") else 1
                order.append((field, descending))
                if i < len(tokens) and tokens[i] == ("op", ","):
                    i += 1
            break
        if groups[-1]:
            if word(i) not in ("and", "or"):
                raise JqlError("Error in the JQL Query: Expecting either 'OR' or 'AND' but got "
                               f"'{tokens[i][1]}'.")
            if word(i) == "or":
                groups.append([])
            i += 1
        field = word(i)
        if field not in FIELDS:
            raise JqlError(f"Field '{tokens[i][1] if i < len(tokens) else ''}' does not exist "
                           "or you do not have permission to view it.")
        i += 1
        if word(i) == "not" and word(i + 1) == "in":
            op, i = "not in", i + 2
        elif word(i) == "in":
            op, i = "in", i + 1
        elif i < len(tokens) and tokens[i][0] == "op" and tokens[i][1] in ("=", "!=", "~", "!~"):
            op, i = tokens[i][1], i + 1
        else:
            raise JqlError(f"Error in the JQL Query: Expecting operator but got "
                           f"'{tokens[i][1] if i < len(tokens) else 'end of query'}'.")
        values: list[str] = []
        if op in ("in", "not in"):
            if i >= len(tokens) or tokens[i] != ("op", "("):
                raise JqlError("Error in the JQL Query: Expecting '(' after IN.")
            i += 1
            while i < len(tokens) and tokens[i] != ("op", ")"):
                if tokens[i] != ("op", ","):
                    values.append(tokens[i][1])
                i += 1
            i += 1
        elif i < len(tokens) and tokens[i][0] in ("str", "word"):
            values.append(tokens[i][1])
            i += 1
        else:
            raise JqlError("Error in the JQL Query: Expecting a value.")
        groups[-1].append(Clause("type" if field == "issuetype" else field, op, tuple(values)))
    if not groups[-1] and len(groups) > 1:
        raise JqlError("Error in the JQL Query: Expecting a field name at the end of the query.")
    return Jql(tuple(tuple(g) for g in groups if g), tuple(order))


def sort_issues(issues: list[dict[str, Any]], order: tuple[tuple[str, bool], ...],
                value: Callable[[dict[str, Any], str], str]) -> list[dict[str, Any]]:
    for field, descending in reversed(order or (("created", True),)):
        issues = sorted(issues, key=_by(field, value), reverse=descending)
    return issues


def _by(field: str, value: Callable[[dict[str, Any], str], str]
        ) -> Callable[[dict[str, Any]], str]:
    return lambda issue: value(issue, field)
