"""The huggingface actions: read a repo, restrict it (private, gated, a user rejected) and lift
the restriction. Thin: the procedures live in restriction.py."""

from __future__ import annotations

from typing import Any

from crownguard.engine import VENDOR_RETRY, ActionContext, InputError, action

from .client import HubClient
from .restriction import restrict, summarize, unrestrict
from .schemas import (
    REPO_INPUT,
    REPO_OUTPUT,
    RESTRICT_INPUT,
    RESTRICT_OUTPUT,
    UNRESTRICT_INPUT,
    UNRESTRICT_OUTPUT,
)


@action("huggingface.get_repo", connection="huggingface", retry=VENDOR_RETRY,
        input_schema=REPO_INPUT, output_schema=REPO_OUTPUT)
def get_repo(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Read a Hub repo: visibility, gating, whether it is disabled, its files.

    `GET /api/{models|datasets|spaces}/{repo_id}`. A repo the token may not see answers like a
    missing one (NotFoundError). Needs read access to the repo.
    """
    repo_type = inputs.get("repo_type", "model")
    info = ctx.client(HubClient).repo_info(repo_type, inputs["repo_id"], "get repo")
    return summarize(info, repo_type)


@action("huggingface.restrict_repo", connection="huggingface", retry=VENDOR_RETRY,
        side_effect=True, undo="huggingface.unrestrict_repo",
        undo_with={"repo_id": "${{ output.repo_id }}", "repo_type": "${{ output.repo_type }}",
                   "private": "${{ output.previous.private }}",
                   "gated": "${{ output.previous.gated }}",
                   "accept_users": "${{ output.user_rejected && [inputs.user] || `[]` }}"},
        input_schema=RESTRICT_INPUT, output_schema=RESTRICT_OUTPUT)
def restrict_repo(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Make a Hub repo private and gated, and reject a user's access to it.

    Reads the repo, then `PUT /api/{type}s/{repo_id}/settings` with only what differs
    (`visibility: private`, `gated: manual` by default) and, for `user`, rejects their accepted
    access request (`user-access-request/handle`, every page of the accepted list searched).
    `previous` is the state before the first attempt: hand it to `huggingface.unrestrict_repo`.
    `changed` is false when the repo was already restricted. Needs write access to the repo.
    """
    private = bool(inputs.get("private", True))
    gated = inputs.get("gated", "manual")
    if not private and not gated and not inputs.get("user"):
        raise InputError("huggingface.restrict_repo: private and gated are both false and no "
                         "user is given: nothing to restrict")
    return restrict(ctx, ctx.client(HubClient), repo_type=inputs.get("repo_type", "model"),
                    repo_id=inputs["repo_id"], private=private, gated=gated,
                    user=inputs.get("user"), reason=inputs.get("reason"))


@action("huggingface.unrestrict_repo", connection="huggingface", retry=VENDOR_RETRY,
        # No undo: restricting again needs the choices restrict_repo was given.
        side_effect=True, undo=None,
        input_schema=UNRESTRICT_INPUT, output_schema=UNRESTRICT_OUTPUT)
def unrestrict_repo(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Put a Hub repo's visibility and gating back, and accept users' access again.

    Give the `previous` state restrict_repo reported (`private`, `gated`) and the users it
    rejected (`accept_users`); only what differs is changed, so a repeat reports
    `changed: false`. Needs write access to the repo.
    """
    return unrestrict(ctx.client(HubClient), repo_type=inputs.get("repo_type", "model"),
                      repo_id=inputs["repo_id"], private=bool(inputs["private"]),
                      gated=inputs["gated"], accept_users=list(inputs.get("accept_users", [])))


ACTIONS = (get_repo, restrict_repo, unrestrict_repo)
