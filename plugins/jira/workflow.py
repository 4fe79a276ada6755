"""Moving an issue through its workflow: transition ids differ per workflow, so the available
transitions are read and the one by name, id or target status is taken."""

from __future__ import annotations

from typing import Any

from crownguard.engine import BadResponse, ConflictError

from . import schemas
from .adf import to_adf
from .client import JiraClient

DONE = "done"


def _status(client: JiraClient, issue: str, operation: str) -> tuple[str, str]:
    """(status name, status category key) of an issue."""
    body = client.call("GET", client.issue_path(issue), operation=operation,
                       params={"fields": "status"})
    status = (body.get("fields") or {}).get("status") or {}
    if not isinstance(status, dict) or not status.get("name"):
        raise BadResponse("the issue has no status", vendor=client.vendor, operation=operation)
    return str(status["name"]), str((status.get("statusCategory") or {}).get("key", ""))


def _transitions(client: JiraClient, issue: str, operation: str) -> list[dict[str, Any]]:
    body = client.call("GET", client.issue_path(issue, "transitions"), operation=operation)
    transitions = body.get("transitions")
    if not isinstance(transitions, list):
        raise BadResponse("the answer has no 'transitions' list", vendor=client.vendor,
                          operation=operation)
    return [t for t in transitions if isinstance(t, dict)]


def _perform(client: JiraClient, issue: str, transition: dict[str, Any], inputs: dict[str, Any],
             operation: str, comment: str | None) -> None:
    body: dict[str, Any] = {"transition": {"id": str(transition.get("id"))}}
    if inputs.get("resolution"):
        body["fields"] = {"resolution": {"name": inputs["resolution"]}}
    if comment:
        body["update"] = {"comment": [{"add": {"body": to_adf(
            comment, inputs.get("comment_format", "markdown"))}}]}
    client.call("POST", client.issue_path(issue, "transitions"), operation=operation,
                json_body=body)


def _no_transition(client: JiraClient, wanted: str, available: list[dict[str, Any]],
                   operation: str) -> ConflictError:
    names = ", ".join(f"{t.get('name')} -> {(t.get('to') or {}).get('name')}" for t in available)
    return ConflictError(f"no transition {wanted!r} from the issue's status (available: "
                         f"{names or 'none'})", vendor=client.vendor, operation=operation)


def transition(client: JiraClient, inputs: dict[str, Any]) -> dict[str, Any]:
    """Move the issue by `transition` (name or id) or to `to_status`; unchanged when it is
    there already."""
    issue, operation = inputs["issue"], "transition issue"
    status, _ = _status(client, issue, operation)
    available = _transitions(client, issue, operation)
    wanted = inputs.get("transition") or inputs["to_status"]
    if inputs.get("to_status"):
        if status.casefold() == wanted.casefold():
            return {"issue": issue, "status": status, "changed": False}
        match = [t for t in available
                 if str((t.get("to") or {}).get("name", "")).casefold() == wanted.casefold()]
    else:
        match = [t for t in available if str(t.get("id")) == wanted
                 or str(t.get("name", "")).casefold() == wanted.casefold()]
        if not match and status.casefold() == wanted.casefold():
            return {"issue": issue, "status": status, "changed": False}
    if not match:
        raise _no_transition(client, wanted, available, operation)
    target = str((match[0].get("to") or {}).get("name") or wanted)
    if target.casefold() == status.casefold():
        return {"issue": issue, "status": status, "changed": False}
    _perform(client, issue, match[0], inputs, operation, inputs.get("comment"))
    return {"issue": issue, "status": target, "changed": True}


def close(client: JiraClient, inputs: dict[str, Any]) -> dict[str, Any]:
    """Move the issue into a Done status (or by the named `transition`) with a comment."""
    issue, operation = inputs["issue"], "close issue"
    status, category = _status(client, issue, operation)
    if category == DONE:
        return {"issue": issue, "status": status, "changed": False}
    available = _transitions(client, issue, operation)
    wanted = inputs.get("transition")
    if wanted:
        match = [t for t in available if str(t.get("id")) == wanted
                 or str(t.get("name", "")).casefold() == wanted.casefold()]
    else:
        match = [t for t in available
                 if ((t.get("to") or {}).get("statusCategory") or {}).get("key") == DONE]
    if not match:
        raise _no_transition(client, wanted or "into a Done status", available, operation)
    comment = inputs.get("comment", schemas.CLOSE_ISSUE_INPUT["properties"]["comment"]["default"])
    _perform(client, issue, match[0], inputs, operation, comment)
    return {"issue": issue, "status": str((match[0].get("to") or {}).get("name", "")),
            "changed": True}
