"""The huggingface actions: read a repo, restrict it (private, gated, a user rejected) and lift
the restriction. Thin: the procedures live in restriction.py."""

from __future__ import annotations

import base64
from typing import Any

from crownguard.engine import VENDOR_RETRY, ActionContext, AuthError, InputError, action

from .client import HubClient
from .gated_access import accept, list_requests, reject
from .restriction import restrict, summarize, unrestrict
from .schemas import (
    ANSWER_ACCESS_INPUT,
    ANSWER_ACCESS_OUTPUT,
    FILES_INPUT,
    FILES_OUTPUT,
    LIST_ACCESS_INPUT,
    LIST_ACCESS_OUTPUT,
    LIST_VERSIONS_INPUT,
    LIST_VERSIONS_OUTPUT,
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


# Files worth a head read for a structural fingerprint (the index reads nothing else).
TENSOR_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".npy",
                   ".npz")


@action("huggingface.list_model_versions", connection="huggingface", retry=VENDOR_RETRY,
        input_schema=LIST_VERSIONS_INPUT, output_schema=LIST_VERSIONS_OUTPUT)
def list_model_versions(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """List an organisation's model repos as registry versions, for the fingerprint index.

    `GET /api/models?author=ORG&full=true`, every `Link: rel="next"` page followed. With a
    member's token the organisation's private repos are listed too. Each repo is one version:
    `name` the repo id, `version` the revision indexed (`main`), `stamp` its commit `sha`, so a
    refresh lists again only repos with new commits. Feed it to
    `huggingface.list_model_files`.
    """
    client = ctx.client(HubClient)
    author = inputs.get("author") or client.settings.get("organization")
    if not author:
        raise InputError("huggingface.list_model_versions: give `author` or set the "
                         "connection's `organization`")
    revision = inputs.get("revision", "main")
    versions = []
    for repo in client.list_models(str(author), "list models"):
        if not isinstance(repo.get("id"), str):
            continue
        versions.append({"name": repo["id"], "version": revision,
                         "stamp": repo.get("sha") if revision == "main" else revision,
                         "private": bool(repo.get("private")), "gated": repo.get("gated", False),
                         "last_modified": repo.get("lastModified"), "tags": {}})
    return {"versions": versions, "count": len(versions), "truncated": False}


@action("huggingface.list_model_files", connection="huggingface", retry=VENDOR_RETRY,
        input_schema=FILES_INPUT, output_schema=FILES_OUTPUT)
def list_model_files(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """List a model repo's files with their SHA-256, from the Hub's tree listing.

    `GET /api/models/{repo}/tree/{revision}?recursive=true` (paged): an LFS file's `lfs.oid`
    is the SHA-256 of its bytes, so nothing is downloaded to hash it. Files kept in git (small
    configs) have only a git blob id (`git_oid`) and `sha256: null`. With `head_bytes`, the
    first bytes of each LFS model file are read (`Range`, `resolve/{revision}/{path}`) for the
    index's structural fingerprints. A private repo needs a token that may see it; a gated
    repo's files are listed with their hashes, and its heads read only when the token's user
    was granted access.
    """
    client = ctx.client(HubClient)
    repo_id, revision = inputs["name"], inputs.get("version", "main")
    head_bytes, max_files = int(inputs.get("head_bytes", 0)), int(inputs.get("max_files",
                                                                             100000))
    files = []
    gated_ok = True
    for entry in client.tree(repo_id, revision, "list repo files"):
        if entry.get("type") != "file" or not isinstance(entry.get("path"), str):
            continue
        lfs = entry.get("lfs") if isinstance(entry.get("lfs"), dict) else None
        size = entry.get("size")
        record: dict[str, Any] = {"path": entry["path"],
                                  "size": size if isinstance(size, int) else 0,
                                  "sha256": str(lfs["oid"]).lower() if lfs and lfs.get("oid")
                                  else None, "git_oid": entry.get("oid")}
        if head_bytes and lfs and entry["path"].lower().endswith(TENSOR_SUFFIXES) \
                and gated_ok:
            try:
                head = client.read_model_file_head(repo_id, revision, entry["path"],
                                                   head_bytes, "read model file head")
            except AuthError as exc:
                # A gated repo whose access the token's user was not granted: its tree (and
                # so every SHA-256) is visible, its files are not. Index the hashes.
                if "GatedRepo" not in str(exc):
                    raise
                gated_ok = False
            else:
                record["head"] = base64.b64encode(head).decode("ascii")
        files.append(record)
        if len(files) > max_files:
            raise InputError(f"huggingface.list_model_files: {repo_id} has more than "
                             f"{max_files} files; raise max_files to index it")
    return {"name": repo_id, "version": revision, "files": files, "count": len(files),
            "total_bytes": sum(f["size"] for f in files)}


@action("huggingface.list_access_requests", connection="huggingface", retry=VENDOR_RETRY,
        input_schema=LIST_ACCESS_INPUT, output_schema=LIST_ACCESS_OUTPUT)
def list_access_requests(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """List a gated repo's access requests in one status (default pending), every page.

    `GET /api/{type}s/{repo_id}/user-access-request/{pending|accepted|rejected}`, following
    `Link: rel="next"`; each with the user, their e-mail when the Hub shares it, when they
    asked and the gate form's `fields`. Needs write access to the repo.
    """
    status = inputs.get("status", "pending")
    found = list_requests(ctx.client(HubClient), inputs.get("repo_type", "model"),
                          inputs["repo_id"], status)
    return {"repo_id": inputs["repo_id"], "status": status, "requests": found}


@action("huggingface.accept_access_request", connection="huggingface", retry=VENDOR_RETRY,
        side_effect=True, undo="huggingface.reject_access_request",
        undo_with={"repo_id": "${{ output.repo_id }}", "repo_type": "${{ output.repo_type }}",
                   "user": "${{ output.user }}"},
        input_schema=ANSWER_ACCESS_INPUT, output_schema=ANSWER_ACCESS_OUTPUT)
def accept_access_request(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Give a user access to a gated repo: accept their request, or grant it if they never asked.

    `POST .../user-access-request/handle` `{user, status: accepted}` (or `.../grant`
    `{user}`). A user accepted already is left as they are: `changed: false`,
    `pre_existing: accepted`. Needs write access to the repo.
    """
    return accept(ctx.client(HubClient), inputs.get("repo_type", "model"), inputs["repo_id"],
                  inputs["user"])


@action("huggingface.reject_access_request", connection="huggingface", retry=VENDOR_RETRY,
        side_effect=True, undo=None,
        input_schema=ANSWER_ACCESS_INPUT, output_schema=ANSWER_ACCESS_OUTPUT)
def reject_access_request(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Reject a user's access request to a gated repo; for an accepted user, revoke their access.

    `POST .../user-access-request/handle` `{user, status: rejected, rejectionReason}` (the
    reason is shown to the user: say no more than they should know). `changed: false` when
    the request is rejected already or the user never asked. Needs write access to the repo.
    """
    return reject(ctx.client(HubClient), inputs.get("repo_type", "model"), inputs["repo_id"],
                  inputs["user"], inputs.get("reason"))


ACTIONS = (get_repo, restrict_repo, unrestrict_repo, list_model_versions, list_model_files,
           list_access_requests, accept_access_request, reject_access_request)
