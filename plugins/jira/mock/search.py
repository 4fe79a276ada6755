"""The enhanced JQL search: bounded queries only, nextPageToken/isLast paging, and a search index
that can lag behind writes."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import route

from .base import JiraMockBase
from .jql import JqlError, parse_jql, sort_issues
from .model import CATEGORIES, STATUSES, errors


class SearchRoutes(JiraMockBase):
    """`/rest/api/3/search/jql` (GET and POST)."""

    def _value(self, issue: dict[str, Any], field: str) -> list[str]:
        fields = issue["fields"]
        values: dict[str, list[str]] = {
            "project": [issue["project"]], "key": [issue["key"]], "id": [issue["id"]],
            "labels": list(fields["labels"]), "status": [issue["status"]],
            "statuscategory": [str(CATEGORIES[STATUSES[issue["status"]][1]]["name"])],
            "type": [fields["issuetype"]["name"]], "summary": [fields["summary"]],
            "created": [f"{issue['created_order']:012d}"]}
        return values.get(field, [])

    def _values_of(self, issue: dict[str, Any]) -> Callable[[str], list[str]]:
        return lambda field: self._value(issue, field)

    @route("POST", "/rest/api/3/search/jql")
    @route("GET", "/rest/api/3/search/jql")
    def search(self, request: Request) -> Response:
        body: dict[str, Any]
        if request.method == "POST":
            posted = request.get_json(silent=True)
            body = posted if isinstance(posted, dict) else {}
        else:
            body = {"jql": request.args.get("jql", ""),
                    "fields": request.args.get("fields", "").split(",") or None,
                    "properties": request.args.get("properties", "").split(","),
                    "maxResults": request.args.get("maxResults", 50),
                    "nextPageToken": request.args.get("nextPageToken")}
        try:
            query = parse_jql(str(body.get("jql") or ""))
        except JqlError as exc:
            return self.json_response(errors([str(exc)]), 400)
        if not query.clauses:
            return self.json_response(errors([
                "Unbounded JQL queries are not allowed here. Please add a search restriction "
                "to your query."]), 400)
        for clause in query.clauses:
            if clause.field == "project":
                for value in clause.values:
                    if value.upper() not in self.projects:
                        return self.json_response(errors([
                            f"The value '{value}' does not exist for the field 'project'."]),
                            400)
        try:
            limit = max(1, min(int(body.get("maxResults") or 50), 5000))
            offset = int(base64.urlsafe_b64decode(body["nextPageToken"]).decode()) \
                if body.get("nextPageToken") else 0
        except (ValueError, TypeError):
            return self.json_response(errors(["Invalid nextPageToken or maxResults."]), 400)
        matches: list[dict[str, Any]] = []
        for issue in self.store.values():
            if not self._may(request, issue["project"], "BROWSE_PROJECTS"):
                continue
            if not query.matches(self._values_of(issue)):
                continue
            if issue["hidden_searches"] > 0:  # written, but not in the index yet
                issue["hidden_searches"] -= 1
                continue
            matches.append(issue)
        ordered = sort_issues(matches, query.order, lambda i, f: (self._value(i, f) or [""])[0])
        page = ordered[offset:offset + limit]
        fields = [f for f in body.get("fields") or ["id"] if f]
        properties = [p for p in body.get("properties") or [] if p]
        answer: dict[str, Any] = {"issues": [self._render(i, fields, properties) for i in page],
                                  "isLast": offset + limit >= len(ordered)}
        if not answer["isLast"]:
            answer["nextPageToken"] = base64.urlsafe_b64encode(
                str(offset + limit).encode()).decode()
        return self.json_response(answer)
