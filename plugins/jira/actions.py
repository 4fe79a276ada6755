"""The jira actions: open exactly one issue per incident key, comment once, move issues through
their workflow, close what was opened (the undo), and read issues. Thin: the procedures live in
issues.py and workflow.py."""

from __future__ import annotations

from typing import Any

from crownguard.engine import VENDOR_RETRY, ActionContext, action

from . import schemas
from .client import JiraClient
from .issues import comment_once, open_issue, read_issue, search_issues
from .workflow import close, transition


@action("jira.create_issue", side_effect=True, undo="jira.close_issue", markup=("description",),
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
    return open_issue(ctx, ctx.client(JiraClient), inputs)


@action("jira.add_comment", side_effect=True, undo=None, connection="jira", retry=VENDOR_RETRY,
        markup=("body",), input_schema=schemas.ADD_COMMENT_INPUT,
        output_schema=schemas.ADD_COMMENT_OUTPUT)
def add_comment(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Add a comment to an issue once, also when the step is retried.

    The comment carries a `crownguard` comment property with its dedupe key; the issue's
    comments are read first (page by page) and a comment with that key is not added again
    (`changed: false` when `dedupe_key` was given and found). The body is Markdown or plain
    text, converted to Atlassian Document Format. Needs Add comments. No undo: comments stay."""
    return comment_once(ctx, ctx.client(JiraClient), inputs)


@action("jira.transition_issue", side_effect=True, undo=None, connection="jira",
        retry=VENDOR_RETRY, markup=("comment",), input_schema=schemas.TRANSITION_ISSUE_INPUT,
        output_schema=schemas.TRANSITION_OUTPUT)
def transition_issue(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Move an issue through its workflow, by transition name/id or target status.

    Transition ids differ per workflow, so the issue's available transitions are read and the
    one named `transition` (or leading to `to_status`) is used, with an optional comment and
    resolution. `changed` is false when the issue already is in the target status. A
    ConflictError lists the available transitions when none matches. Needs Transition issues.
    No undo: workflows need not lead back."""
    return transition(ctx.client(JiraClient), inputs)


@action("jira.close_issue", side_effect=True, undo=None, connection="jira", retry=VENDOR_RETRY,
        markup=("comment",), input_schema=schemas.CLOSE_ISSUE_INPUT,
        output_schema=schemas.TRANSITION_OUTPUT)
def close_issue(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Close an issue with a comment: the undo of jira.create_issue.

    Uses the named `transition`, or the first transition into a status of the Done category,
    and adds `comment` with it. `changed` is false when the issue already is in a Done
    status. Takes create_issue's output (`key` as `issue`). Needs Transition issues."""
    return close(ctx.client(JiraClient), inputs)


@action("jira.get_issue", connection="jira", retry=VENDOR_RETRY,
        input_schema=schemas.GET_ISSUE_INPUT, output_schema=schemas.GET_ISSUE_OUTPUT)
def get_issue(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Read an issue: its status, status category and the requested fields.

    `fields` defaults to summary, status, labels, priority and resolution. NotFoundError when
    the issue does not exist or the account may not see it."""
    return read_issue(ctx.client(JiraClient), inputs)


@action("jira.find_issues", connection="jira", retry=VENDOR_RETRY,
        input_schema=schemas.FIND_ISSUES_INPUT, output_schema=schemas.FIND_ISSUES_OUTPUT)
def find_issues(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Issues matching a JQL query, following the search's nextPageToken pages.

    Reads at most `max_results` (default 50) issues; `truncated` says more matched. Each
    issue is `{key, id, fields}` with the requested `fields` (default summary, status,
    labels)."""
    return search_issues(ctx.client(JiraClient), inputs)


ACTIONS = (create_issue, add_comment, transition_issue, close_issue, get_issue, find_issues)
