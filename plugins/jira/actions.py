"""The jira actions: open exactly one issue per incident key, comment once, move issues through
their workflow, close what was opened (the undo), and read issues."""

from __future__ import annotations

import time
from typing import Any

from crownguard.engine import (
    VENDOR_RETRY,
    ActionContext,
    BadResponse,
    ConflictError,
    InputError,
    action,
)

from . import schemas
from .adf import to_adf
from .client import JiraClient

PROPERTY = "crownguard"
DEFAULT_SETTLE_SECONDS = 5.0
DONE = "done"


def jql_string(value: str) -> str:
    """A JQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def correlation_label(ctx: ActionContext, given: str | None) -> str:
    """The label that marks the issue of one incident: the playbook's key, or a key that is
    stable for this step across its retries and resumes."""
    return f"crownguard-{given or ctx.idempotency_key}"


def _project(client: JiraClient, inputs: dict[str, Any]) -> str:
    project = inputs.get("project") or client.settings.get("default_project")
    if not project:
        raise InputError("jira.create_issue: no 'project' given and the connection has no "
                         "default_project")
    return str(project)


def _find_labelled(client: JiraClient, ctx: ActionContext, project: str,
                   label: str) -> dict[str, Any] | None:
    """The oldest issue carrying the label. On a retry, an earlier attempt may have created it
    moments ago and Jira's search index may not show it yet: keep looking for a while."""
    jql = f"project = {jql_string(project)} AND labels = {jql_string(label)} ORDER BY created ASC"
    settle = float(client.settings.get("index_settle_seconds", DEFAULT_SETTLE_SECONDS))
    interval = min(1.0, max(0.01, settle / 5))
    give_up = time.monotonic() + (settle if ctx.attempt > 1 else 0.0)
    while True:
        for issue in client.search(jql, operation="find issue by correlation label",
                                   properties=[PROPERTY], limit=1):
            return issue
        if time.monotonic() >= give_up:
            return None
        ctx.sleep(interval)


@action("jira.create_issue", side_effect=True, undo="jira.close_issue",
        undo_with={"issue": "${{ output.key }}"}, connection="jira",
        retry=VENDOR_RETRY, input_schema=schemas.CREATE_ISSUE_INPUT,
        output_schema=schemas.CREATE_ISSUE_OUTPUT)
def create_issue(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Open one Jira issue per incident key, also when the step is retried or resumed.

    The issue carries the label `crownguard-<correlation_id>` and is searched for with JQL
    before it is created, so a retry after a lost answer finds it instead of opening a second
    one (on a retry the search is repeated for up to the connection's index_settle_seconds,
    since Jira's index lags). Pass the alert's id as `correlation_id` for one issue per alert
    across runs. The description is Markdown (or plain text) converted to Atlassian Document
    Format. `changed` is false when the issue already existed. Needs Browse and Create issues
    in the project. Undo: jira.close_issue."""
    client = ctx.client(JiraClient)
    project = _project(client, inputs)
    label = correlation_label(ctx, inputs.get("correlation_id"))
    existing = _find_labelled(client, ctx, project, label)
    if existing is not None:
        marker = (existing.get("properties") or {}).get(PROPERTY) or {}
        key, issue_id = str(existing.get("key")), str(existing.get("id"))
        changed = isinstance(marker, dict) and marker.get("idempotency_key") == \
            ctx.idempotency_key
    else:
        extra = dict(inputs.get("fields") or {})
        # Labels given in `fields` too are merged: the correlation label must stay.
        labels = {*inputs.get("labels", []), *(extra.pop("labels", None) or []), label}
        fields: dict[str, Any] = {
            "project": {"key": project},
            "issuetype": {"name": inputs.get("issue_type", "Task")},
            # Jira refuses line breaks in a summary.
            "summary": " ".join(inputs["summary"].split()),
            "labels": sorted(labels),
        }
        if inputs.get("description"):
            fields["description"] = to_adf(inputs["description"],
                                           inputs.get("description_format", "markdown"))
        if inputs.get("priority"):
            fields["priority"] = {"name": inputs["priority"]}
        fields.update(extra)
        marker = {"correlation_id": label, "idempotency_key": ctx.idempotency_key,
                  "run_id": ctx.run_id, "step_id": ctx.step_id}
        created = client.call("POST", "rest/api/3/issue", operation="create issue",
                              json_body={"fields": fields,
                                         "properties": [{"key": PROPERTY, "value": marker}]})
        if not created.get("key"):
            raise BadResponse("the create answer has no issue key", vendor=client.vendor,
                              operation="create issue")
        key, issue_id, changed = str(created["key"]), str(created.get("id", "")), True
    return {"key": key, "id": issue_id, "url": client.browse_url(key), "project": project,
            "correlation_id": label, "changed": changed}


@action("jira.add_comment", side_effect=True, undo=None, connection="jira", retry=VENDOR_RETRY,
        input_schema=schemas.ADD_COMMENT_INPUT, output_schema=schemas.ADD_COMMENT_OUTPUT)
def add_comment(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Add a comment to an issue once, also when the step is retried.

    The comment carries a `crownguard` comment property with its dedupe key; the issue's
    comments are read first (page by page) and a comment with that key is not added again
    (`changed: false` when `dedupe_key` was given and found). The body is Markdown or plain
    text, converted to Atlassian Document Format. Needs Add comments. No undo: comments stay."""
    client = ctx.client(JiraClient)
    issue, key = inputs["issue"], inputs.get("dedupe_key") or ctx.idempotency_key
    operation = "add comment"
    ids = [str(c.get("id")) for c in client.comments(issue, operation="list comments")]
    if ids:
        for comment_id, props in client.comment_properties(
                ids, operation="read comment properties").items():
            marker = props.get(PROPERTY)
            if isinstance(marker, dict) and marker.get("dedupe_key") == key:
                return {"issue": issue, "comment_id": comment_id,
                        "changed": marker.get("idempotency_key") == ctx.idempotency_key}
    body = {"body": to_adf(inputs["body"], inputs.get("body_format", "markdown")),
            "properties": [{"key": PROPERTY, "value": {
                "dedupe_key": key, "idempotency_key": ctx.idempotency_key}}]}
    created = client.call("POST", client.issue_path(issue, "comment"), operation=operation,
                          json_body=body)
    return {"issue": issue, "comment_id": str(created.get("id", "")), "changed": True}


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


@action("jira.transition_issue", side_effect=True, undo=None, connection="jira",
        retry=VENDOR_RETRY, input_schema=schemas.TRANSITION_ISSUE_INPUT,
        output_schema=schemas.TRANSITION_OUTPUT)
def transition_issue(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Move an issue through its workflow, by transition name/id or target status.

    Transition ids differ per workflow, so the issue's available transitions are read and the
    one named `transition` (or leading to `to_status`) is used, with an optional comment and
    resolution. `changed` is false when the issue already is in the target status. A
    ConflictError lists the available transitions when none matches. Needs Transition issues.
    No undo: workflows need not lead back."""
    client = ctx.client(JiraClient)
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


@action("jira.close_issue", side_effect=True, undo=None, connection="jira", retry=VENDOR_RETRY,
        input_schema=schemas.CLOSE_ISSUE_INPUT, output_schema=schemas.TRANSITION_OUTPUT)
def close_issue(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Close an issue with a comment: the undo of jira.create_issue.

    Uses the named `transition`, or the first transition into a status of the Done category,
    and adds `comment` with it. `changed` is false when the issue already is in a Done
    status. Takes create_issue's output (`key` as `issue`). Needs Transition issues."""
    client = ctx.client(JiraClient)
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


@action("jira.get_issue", connection="jira", retry=VENDOR_RETRY,
        input_schema=schemas.GET_ISSUE_INPUT, output_schema=schemas.GET_ISSUE_OUTPUT)
def get_issue(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Read an issue: its status, status category and the requested fields.

    `fields` defaults to summary, status, labels, priority and resolution. NotFoundError when
    the issue does not exist or the account may not see it."""
    client = ctx.client(JiraClient)
    wanted = inputs.get("fields") or ["summary", "status", "labels", "priority", "resolution"]
    body = client.call("GET", client.issue_path(inputs["issue"]), operation="get issue",
                       params={"fields": ",".join(sorted({*wanted, "status"}))})
    fields = body.get("fields") if isinstance(body.get("fields"), dict) else {}
    status = fields.get("status") or {}
    key = str(body.get("key", inputs["issue"]))
    return {"key": key, "id": str(body.get("id", "")), "url": client.browse_url(key),
            "status": str(status.get("name", "")),
            "status_category": str((status.get("statusCategory") or {}).get("key", "")),
            "fields": fields}


@action("jira.find_issues", connection="jira", retry=VENDOR_RETRY,
        input_schema=schemas.FIND_ISSUES_INPUT, output_schema=schemas.FIND_ISSUES_OUTPUT)
def find_issues(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Issues matching a JQL query, following the search's nextPageToken pages.

    Reads at most `max_results` (default 50) issues; `truncated` says more matched. Each
    issue is `{key, id, fields}` with the requested `fields` (default summary, status,
    labels)."""
    client = ctx.client(JiraClient)
    limit = int(inputs.get("max_results", 50))
    issues = [{"key": i.get("key"), "id": i.get("id"), "fields": i.get("fields") or {}}
              for i in client.search(inputs["jql"], operation="search issues",
                                     fields=inputs.get("fields"), limit=limit + 1)]
    return {"issues": issues[:limit], "count": min(len(issues), limit),
            "truncated": len(issues) > limit}


ACTIONS = (create_issue, add_comment, transition_issue, close_issue, get_issue, find_issues)
