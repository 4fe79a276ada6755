"""Turn `incydr.search_file_events` inputs into a Forensic Search (`/v2/file-events`) query.

Pure and separate from the client so that what is sent can be tested without a server. The
shape is the one Incydr documents and its SDK builds: `groups` of `filters`
(`{term, operator, value}`) joined by `filterClause`, the groups by `groupClause`, plus
`pgNum`, `pgSize`, `srtDir` and `srtKey`. Timestamps go out as ISO 8601 UTC with milliseconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from typing import Any

DEFAULT_WINDOW = "P90D"
DURATION = r"^P(?=\d|T\d)(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?$"
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class QueryInputError(ValueError):
    """Inputs that cannot become a valid query; the action reports it as an InputError."""


def timestamp(value: str, *, end_of_day: bool = False) -> str:
    """An ISO 8601 date or date-time as `2026-11-20T21:47:12.381Z` (a bare date is the start of
    that day, or its last millisecond for the end of a window)."""
    text = value.strip()
    try:
        if _DATE_ONLY.match(text):
            day = datetime.fromisoformat(text).date()
            moment = datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except ValueError:
        raise QueryInputError(f"'{value}' is not an ISO 8601 date or date-time") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def epoch_ms(value: str, *, end_of_day: bool = False) -> int:
    """The same instant as epoch milliseconds (the sessions API's time parameters)."""
    moment = datetime.strptime(timestamp(value, end_of_day=end_of_day),
                               "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def _group(filters: list[dict[str, Any]], clause: str = "AND") -> dict[str, Any]:
    return {"filterClause": clause, "filters": filters}


def _is(term: str, value: str) -> dict[str, Any]:
    return {"term": term, "operator": "IS", "value": value}


def _any_of(term: str, values: list[str]) -> dict[str, Any]:
    """Several values of one term, OR-ed, as the SDK's `equals(term, [..])` builds it."""
    return _group([_is(term, v) for v in values], "OR" if len(values) > 1 else "AND")


def time_window(inputs: dict[str, Any]) -> dict[str, Any]:
    start, end = inputs.get("start_time"), inputs.get("end_time")
    within = inputs.get("within_last")
    if within and (start or end):
        raise QueryInputError("give either within_last or start_time/end_time, not both")
    if start or end:
        filters = []
        if start:
            filters.append({"term": "@timestamp", "operator": "ON_OR_AFTER",
                            "value": timestamp(start)})
        if end:
            filters.append({"term": "@timestamp", "operator": "ON_OR_BEFORE",
                            "value": timestamp(end, end_of_day=True)})
        if start and end and filters[0]["value"] > filters[1]["value"]:
            raise QueryInputError("start_time is after end_time")
        return _group(filters)
    return _group([{"term": "@timestamp", "operator": "WITHIN_THE_LAST",
                    "value": within or DEFAULT_WINDOW}])


def file_event_query(inputs: dict[str, Any], page_size: int) -> dict[str, Any]:
    """The `/v2/file-events` body (without pgToken, which the client sets per page)."""
    groups: list[dict[str, Any]] = [time_window(inputs)]
    if inputs.get("user"):
        groups.append(_group([_is("user.email", inputs["user"])]))
    for term, key in (("file.hash.sha256", "sha256"), ("file.hash.md5", "md5"),
                      ("file.name", "file_name")):
        if inputs.get(key):
            groups.append(_group([_is(term, inputs[key])]))
    for term, key in (("event.action", "event_actions"),
                      ("destination.category", "destination_categories")):
        if inputs.get(key):
            groups.append(_any_of(term, list(inputs[key])))
    if len(groups) == 1:
        raise QueryInputError("give at least one of user, sha256, md5 or file_name (a search "
                              "of the whole tenant is not what this action is for)")
    return {"groupClause": "AND", "groups": groups, "pgNum": 1, "pgSize": page_size,
            "srtDir": "desc", "srtKey": "@timestamp"}

