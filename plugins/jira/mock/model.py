"""The Jira mock's fixed data (workflow, priorities, issue types) and its create validation,
with Jira's own wording for each problem."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .adf import adf_problems

ALL_PERMISSIONS = frozenset({"BROWSE_PROJECTS", "CREATE_ISSUES", "ADD_COMMENTS",
                             "TRANSITION_ISSUES"})
CATEGORIES = {"new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
              "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow",
                                "name": "In Progress"},
              "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"}}
STATUSES = {"To Do": ("10000", "new"), "In Progress": ("3", "indeterminate"),
            "Done": ("10001", "done")}
TRANSITIONS = (("11", "To Do", "To Do"), ("21", "In Progress", "In Progress"),
               ("31", "Done", "Done"))
PRIORITIES = {"Highest": "1", "High": "2", "Medium": "3", "Low": "4", "Lowest": "5"}
RESOLUTIONS = {"Done": "10000", "Won't Do": "10001", "Duplicate": "10002"}
ISSUE_TYPES = {"Task": "10001", "Bug": "10002", "Incident": "10003"}
UNAUTHENTICATED = "Client must be authenticated to access this resource."


def errors(messages: list[str] | None = None, fields: dict[str, str] | None = None,
           **named: str) -> dict[str, Any]:
    return {"errorMessages": messages or [], "errors": {**(fields or {}), **named}}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def create_problems(fields: Any, projects: set[str]) -> dict[str, str]:
    """Field name -> Jira's message for every problem of an issue-create `fields` object."""
    if not isinstance(fields, dict):
        return {"fields": "The request body must contain fields."}
    problems: dict[str, str] = {}
    project = (fields.get("project") or {}).get("key") or (fields.get("project") or {}).get(
        "id")
    if project not in projects:
        problems["project"] = "valid project is required"
    if (fields.get("issuetype") or {}).get("name") not in ISSUE_TYPES:
        problems["issuetype"] = "Specify a valid issue type"
    summary = fields.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        problems["summary"] = "You must specify a summary of the issue."
    elif "\n" in summary or "\r" in summary:
        problems["summary"] = "The summary is invalid because it contains newline " \
                              "characters."
    elif len(summary) > 255:
        problems["summary"] = "Summary must be less than 255 characters."
    if "description" in fields and adf_problems(fields["description"]):
        problems["description"] = "Operation value must be an Atlassian Document (see the " \
                                  "Atlassian Document Format)"
    labels = fields.get("labels", [])
    if not isinstance(labels, list) or any(not isinstance(x, str) or not x or " " in x
                                           for x in labels):
        problems["labels"] = "The label contains spaces which is invalid."
    priority = fields.get("priority")
    if priority is not None and (priority or {}).get("name") not in PRIORITIES:
        problems["priority"] = "Specify the Priority (id or name) in the string format"
    unknown = set(fields) - {"project", "issuetype", "summary", "description", "labels",
                             "priority"}
    for name in sorted(unknown):
        problems[name] = (f"Field '{name}' cannot be set. It is not on the appropriate "
                          "screen, or unknown.")
    return problems
