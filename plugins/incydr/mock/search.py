"""Forensic Search semantics for the mock: filter groups, sorting and pgToken paging.

Pure functions over plain dicts, so the mock's handler stays short and these rules can be
tested on their own. They follow what `POST /v2/file-events` documents: terms are dotted paths
into the event (`file.hash.sha256`), a value may hold `*` wildcards, a list-valued field matches
when any element does, groups combine with `groupClause` and filters with `filterClause`, nested
`subgroups` with `subgroupClause`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

OPERATORS = frozenset({
    "IS", "IS_NOT", "IS_ANY", "IS_NONE", "EXISTS", "DOES_NOT_EXIST", "GREATER_THAN",
    "LESS_THAN", "ON", "ON_OR_AFTER", "ON_OR_BEFORE", "WITHIN_THE_LAST",
})
CLAUSES = frozenset({"AND", "OR"})
MAX_PAGE_SIZE = 10_000
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


class QueryProblem(Exception):
    """A filter the search service rejects; becomes a 400 with a `problems` entry."""

    def __init__(self, description: str, bad_filter: dict[str, Any] | None = None,
                 kind: str = "INVALID_FILTER"):
        super().__init__(description)
        self.problem = {"badFilter": bad_filter, "description": description, "type": kind}


def field_values(event: dict[str, Any], term: str) -> list[Any]:
    """Every value at a dotted path, flattening lists on the way (`risk.indicators.name`)."""
    if term in event:  # "@timestamp" and other undotted top-level keys
        values: list[Any] = [event[term]]
    else:
        values = [event]
        for part in term.split("."):
            found: list[Any] = []
            for value in values:
                items = value if isinstance(value, list) else [value]
                for item in items:
                    if isinstance(item, dict) and part in item:
                        found.append(item[part])
            values = found
    flat: list[Any] = []
    for value in values:
        flat.extend(value if isinstance(value, list) else [value])
    return [v for v in flat if v is not None]


def parse_time(value: Any) -> datetime:
    """An ISO 8601 timestamp or epoch milliseconds as an aware datetime."""
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    text = str(value).strip().replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_duration(value: str) -> timedelta:
    match = _DURATION.match(value or "")
    if not match or not any(match.groups()):
        raise ValueError(value)
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _text_match(actual: Any, expected: Any) -> bool:
    if isinstance(expected, str) and "*" in expected:
        return fnmatch.fnmatchcase(str(actual).lower(), expected.lower())
    return str(actual).lower() == str(expected).lower()


def _time_filter(op: str, values: list[Any], expected: Any, now: datetime,
                 bad: dict[str, Any]) -> bool:
    try:
        stamps = [parse_time(v) for v in values]
        if op == "WITHIN_THE_LAST":
            start = now - parse_duration(str(expected))
            return any(start <= s <= now for s in stamps)
        bound = parse_time(expected)
    except (TypeError, ValueError):
        raise QueryProblem(f"'{expected}' is not a valid value for {op}", bad) from None
    if op == "ON":
        return any(s.date() == bound.date() for s in stamps)
    if op == "ON_OR_AFTER":
        return any(s >= bound for s in stamps)
    return any(s <= bound for s in stamps)


def _number_filter(op: str, values: list[Any], expected: Any, bad: dict[str, Any]) -> bool:
    try:
        limit = float(expected)
    except (TypeError, ValueError):
        raise QueryProblem(f"'{expected}' is not a number", bad) from None
    numbers = [float(v) for v in values if isinstance(v, int | float)]
    return any(n > limit for n in numbers) if op == "GREATER_THAN" else any(n < limit
                                                                            for n in numbers)


def filter_matches(event: dict[str, Any], flt: dict[str, Any], now: datetime) -> bool:
    term, op, expected = flt.get("term"), flt.get("operator"), flt.get("value")
    if not isinstance(term, str) or not term:
        raise QueryProblem("a filter has no term", flt, "INVALID_TERM")
    if op not in OPERATORS:
        raise QueryProblem(f"unknown operator '{op}'", flt, "INVALID_OPERATOR")
    values = field_values(event, term)
    if op == "EXISTS":
        return bool(values)
    if op == "DOES_NOT_EXIST":
        return not values
    if op in ("ON", "ON_OR_AFTER", "ON_OR_BEFORE", "WITHIN_THE_LAST"):
        return _time_filter(op, values, expected, now, flt)
    if op in ("GREATER_THAN", "LESS_THAN"):
        return _number_filter(op, values, expected, flt)
    if op in ("IS_ANY", "IS_NONE"):
        options = expected if isinstance(expected, list) else [expected]
        hit = any(_text_match(v, o) for v in values for o in options)
        return hit if op == "IS_ANY" else not hit
    if isinstance(expected, list):
        raise QueryProblem(f"{op} takes a single value", flt)
    hit = any(_text_match(v, expected) for v in values)
    return hit if op == "IS" else not hit


def _combine(clause: Any, results: Iterable[bool], where: dict[str, Any]) -> bool:
    clause = clause or "AND"
    if clause not in CLAUSES:
        raise QueryProblem(f"clause must be AND or OR, not '{clause}'", where)
    return any(results) if clause == "OR" else all(results)


def group_matches(event: dict[str, Any], group: dict[str, Any], now: datetime) -> bool:
    if "subgroups" in group:
        return _combine(group.get("subgroupClause"),
                        [group_matches(event, g, now) for g in group.get("subgroups") or []], group)
    return _combine(group.get("filterClause"),
                    [filter_matches(event, f, now) for f in group.get("filters") or []], group)


def query_matcher(query: dict[str, Any], now: datetime) -> Callable[[dict[str, Any]], bool]:
    groups = query.get("groups") or []
    clause = query.get("groupClause") or "AND"

    def matches(event: dict[str, Any]) -> bool:
        return _combine(clause, [group_matches(event, g, now) for g in groups], query)

    return matches


def sort_key(term: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """Sort by the term's first value, then by event id so pages are stable."""

    def key(event: dict[str, Any]) -> tuple[Any, ...]:
        values = field_values(event, term)
        first = values[0] if values else ""
        return (0 if values else 1, str(first), str(event.get("event", {}).get("id", "")))

    return key


def page_of(events: list[dict[str, Any]], query: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                                           str | None]:
    """The page a query asks for and the nextPgToken to return with it.

    With `pgToken` (even "") the service pages by cursor: nextPgToken is the id of the page's
    last event (search-after), and only a page with no events has it null ("no more results").
    That is why the official SDK reads pages "until the response has an empty file_events".
    Without `pgToken`, `pgNum` (from 1) pages by offset and nextPgToken is null.
    """
    size = query.get("pgSize", 100)
    if not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        raise QueryProblem(f"pgSize must be between 1 and {MAX_PAGE_SIZE}", None,
                           "INVALID_PAGE_SIZE")
    token = query.get("pgToken")
    if token is None:
        number = query.get("pgNum", 1)
        if not isinstance(number, int) or number < 1 or number * size > MAX_PAGE_SIZE:
            raise QueryProblem("pgNum * pgSize may not exceed 10000; page with pgToken instead",
                               None, "INVALID_PAGE_NUMBER")
        return events[(number - 1) * size:number * size], None
    start = 0
    if token:
        ids = [str(e.get("event", {}).get("id")) for e in events]
        if token not in ids:
            raise QueryProblem("pgToken is not valid for this query", None, "INVALID_PAGE_TOKEN")
        start = ids.index(token) + 1
    page = events[start:start + size]
    next_token = str(page[-1]["event"]["id"]) if page else None
    return page, next_token
