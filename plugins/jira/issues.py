"""Issues, one per incident: the correlation label, the search that finds an earlier attempt's
issue, the create, a comment added once, and reads.

Idempotency lives here, not in the actions: an issue carries the label
`crownguard-<correlation id>` and a `crownguard` issue property naming the step that created it;
a comment carries a `crownguard` comment property with its dedupe key.
"""

from __future__ import annotations

import time
from typing import Any

from crownguard.engine import ActionContext, BadResponse, InputError

from .adf import to_adf
from .client import JiraClient

PROPERTY = "crownguard"
DEFAULT_SETTLE_SECONDS = 5.0
DEFAULT_FIELDS = ["summary", "status", "labels", "priority", "resolution"]


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


def open_issue(ctx: ActionContext, client: JiraClient, inputs: dict[str, Any]) -> dict[str, Any]:
    """The incident's issue: the one an earlier attempt (or run, for a shared correlation_id)
    opened, or a new one; `changed` is true only for the step that created it."""
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


def comment_once(ctx: ActionContext, client: JiraClient,
                 inputs: dict[str, Any]) -> dict[str, Any]:
    """Add the comment unless one with its dedupe key is already on the issue."""
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


def read_issue(client: JiraClient, inputs: dict[str, Any]) -> dict[str, Any]:
    """An issue's key, id, link, status and the requested fields."""
    wanted = inputs.get("fields") or DEFAULT_FIELDS
    body = client.call("GET", client.issue_path(inputs["issue"]), operation="get issue",
                       params={"fields": ",".join(sorted({*wanted, "status"}))})
    fields: dict[str, Any] = body["fields"] if isinstance(body.get("fields"), dict) else {}
    status = fields.get("status") or {}
    key = str(body.get("key", inputs["issue"]))
    return {"key": key, "id": str(body.get("id", "")), "url": client.browse_url(key),
            "status": str(status.get("name", "")),
            "status_category": str((status.get("statusCategory") or {}).get("key", "")),
            "fields": fields}


def search_issues(client: JiraClient, inputs: dict[str, Any]) -> dict[str, Any]:
    """At most `max_results` issues matching the JQL, and whether more matched."""
    limit = int(inputs.get("max_results", 50))
    issues = [{"key": i.get("key"), "id": i.get("id"), "fields": i.get("fields") or {}}
              for i in client.search(inputs["jql"], operation="search issues",
                                     fields=inputs.get("fields"), limit=limit + 1)]
    return {"issues": issues[:limit], "count": min(len(issues), limit),
            "truncated": len(issues) > limit}
