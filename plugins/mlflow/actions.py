"""The mlflow actions: read a model version, search versions, quarantine and release a version,
and fingerprint its files. Thin: the procedures live in quarantine.py and artifacts.py."""

from __future__ import annotations

from typing import Any

from crownguard.engine import VENDOR_RETRY, ActionContext, InputError, action

from .artifacts import model_files
from .client import MlflowRegistryClient
from .grants import grant, registered_model, revoke
from .quarantine import quarantine, release
from .record import MARK_TAG, QuarantineRecord, RecordError, tag_map
from .schemas import (
    FILES_INPUT,
    FILES_OUTPUT,
    GET_VERSION_INPUT,
    GRANT_OUTPUT,
    LIST_VERSIONS_INPUT,
    LIST_VERSIONS_OUTPUT,
    MODEL_VERSION,
    PERMISSION_INPUT,
    QUARANTINE_INPUT,
    QUARANTINE_OUTPUT,
    REGISTERED_MODEL_INPUT,
    REGISTERED_MODEL_OUTPUT,
    RELEASE_INPUT,
    RELEASE_OUTPUT,
    REVOKE_OUTPUT,
)


def summarize_version(version: dict[str, Any]) -> dict[str, Any]:
    tags = tag_map(version)
    try:
        record = QuarantineRecord.from_tags(tags)
    except RecordError:
        record = None  # reading must not fail on a damaged record; release reports it
    return {
        "name": str(version.get("name", "")),
        "version": str(version.get("version", "")),
        "status": str(version.get("status", "")),
        "current_stage": version.get("current_stage"),
        "source": version.get("source"),
        "run_id": version.get("run_id") or None,
        "description": version.get("description") or None,
        "user_id": version.get("user_id") or None,
        "creation_timestamp": version.get("creation_timestamp"),
        "last_updated_timestamp": version.get("last_updated_timestamp"),
        "aliases": sorted(str(a) for a in version.get("aliases") or []),
        "tags": tags,
        "quarantined": tags.get(MARK_TAG) == "true",
        "quarantine": record.summary() if record else None,
    }


def quoted(value: str) -> str:
    """A string literal for MLflow's search filter grammar."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise InputError("mlflow.list_model_versions: a model name with both kinds of quote "
                     "cannot be searched for; use 'filter'")


@action("mlflow.get_model_version", connection="mlflow", retry=VENDOR_RETRY,
        input_schema=GET_VERSION_INPUT, output_schema=MODEL_VERSION)
def get_model_version(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Read a registered model version by number or alias.

    `GET /api/2.0/mlflow/model-versions/get` (or `registered-models/alias` for an alias).
    The output is the version's status, source, run, aliases and tags, and whether crownguard
    quarantined it (`quarantined`, with the `quarantine` record: who, why, what was removed).
    Needs READ on the model.
    """
    client = ctx.client(MlflowRegistryClient)
    if "alias" in inputs:
        found = client.version_for_alias(inputs["name"], inputs["alias"], "get model by alias")
    else:
        found = client.get_version(inputs["name"], str(inputs["version"]), "get model version")
    return summarize_version(found)


@action("mlflow.list_model_versions", connection="mlflow", retry=VENDOR_RETRY,
        input_schema=LIST_VERSIONS_INPUT, output_schema=LIST_VERSIONS_OUTPUT)
def list_model_versions(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Search registered model versions, following every result page.

    `GET /api/2.0/mlflow/model-versions/search` with `filter` (a model `name`, an MLflow filter
    expression, or both) paged by `next_page_token` up to `limit` versions; `truncated` says
    more were left. Feed it to `mlflow.list_model_files` to fingerprint every registered model.
    Needs READ on the models.
    """
    parts = []
    if inputs.get("name"):
        parts.append(f"name = {quoted(inputs['name'])}")
    if inputs.get("filter"):
        parts.append(inputs["filter"])  # MLflow filters only know AND: no precedence to guard
    client = ctx.client(MlflowRegistryClient)
    found, truncated = client.search_versions(" AND ".join(parts) or None,
                                              int(inputs.get("limit", 1000)),
                                              "search model versions")
    versions = []
    for item in found:
        tags = tag_map(item)
        versions.append({"name": str(item.get("name", "")), "version": str(item.get("version", "")),
                         "status": str(item.get("status", "")), "source": item.get("source"),
                         "run_id": item.get("run_id") or None,
                         "quarantined": tags.get(MARK_TAG) == "true",
                         "last_updated_timestamp": _stamp(item.get("last_updated_timestamp")),
                         "tags": tags})
    return {"versions": versions, "count": len(versions), "truncated": truncated}


@action("mlflow.quarantine_model_version", connection="mlflow", retry=VENDOR_RETRY,
        side_effect=True, undo="mlflow.release_model_version",
        input_schema=QUARANTINE_INPUT, output_schema=QUARANTINE_OUTPUT)
def quarantine_model_version(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Take a model version out of use, reversibly: tag it, remove its aliases, lock a user out.

    Tags the version with the run id, the reason and a record of what it removes
    (`crownguard.quarantine.*`), removes every alias pointing at it, and, when `user` is given
    and the server runs MLflow's auth app, sets that user's permission on the model to DENY
    (NO_PERMISSIONS on servers before 3.17). Nothing is deleted; `mlflow.release_model_version`
    restores exactly what was removed. `changed` is false when the version was already in that
    state; a repeat by another run keeps the first run's record. Needs EDIT on the model, and an
    admin for `user`.
    """
    client = ctx.client(MlflowRegistryClient)
    return quarantine(client, name=inputs["name"], version=str(inputs["version"]),
                      reason=inputs.get("reason", "quarantined by crownguard"),
                      user=inputs.get("user"), run_id=ctx.run_id,
                      step_key=ctx.idempotency_key)


@action("mlflow.release_model_version", connection="mlflow", retry=VENDOR_RETRY,
        # No undo: quarantining again needs a reason and a user that release does not have.
        side_effect=True, undo=None,
        input_schema=RELEASE_INPUT, output_schema=RELEASE_OUTPUT)
def release_model_version(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Undo a quarantine: restore the aliases and user access it recorded, then remove its tags.

    Reads the `crownguard.quarantine.record` tag the quarantine left on the version, points
    each recorded alias back at it and gives each recorded user their previous permission back
    (none of their own, if they had none). What someone changed during the case wins: an alias
    now on another version is left there (`aliases_skipped`) unless `move_aliases` is true, and
    a permission no longer DENY is left alone (`access_skipped`). `changed` is false when the
    version was not quarantined. Needs EDIT on the model, and an admin for recorded users.
    """
    client = ctx.client(MlflowRegistryClient)
    return release(client, name=inputs["name"], version=str(inputs["version"]),
                   move_aliases=bool(inputs.get("move_aliases", False)))


@action("mlflow.list_model_files", connection="mlflow", retry=VENDOR_RETRY,
        input_schema=FILES_INPUT, output_schema=FILES_OUTPUT)
def list_model_files(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """List a model version's artifact files with their size and SHA-256.

    Waits while the version is PENDING_REGISTRATION (fails on FAILED_REGISTRATION), resolves its
    artifact location (`model-versions/get-download-uri`), lists it recursively through the
    tracking server's artifact proxy and streams each file once to hash it, checking the size
    against the listing. With `head_bytes`, each file's first bytes come back too (`head`,
    base64, from the same download). The fingerprint index of registered models is
    built on this output. Needs READ on the model and a server that proxies artifacts
    (`mlflow server` does by default).
    """
    client = ctx.client(MlflowRegistryClient)
    return model_files(ctx, client, inputs["name"], str(inputs["version"]),
                       int(inputs.get("max_files", 10000)), int(inputs.get("head_bytes", 0)))


def _stamp(value: Any) -> int | None:
    """MLflow's `last_updated_timestamp` (epoch ms; a string in some proxies' JSON)."""
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


@action("mlflow.get_registered_model", connection="mlflow", retry=VENDOR_RETRY,
        input_schema=REGISTERED_MODEL_INPUT, output_schema=REGISTERED_MODEL_OUTPUT)
def get_registered_model(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """A registered model's tags and aliases (what an access policy decides by)."""
    return registered_model(ctx.client(MlflowRegistryClient), inputs["name"])


@action("mlflow.grant_model_permission", connection="mlflow", retry=VENDOR_RETRY,
        side_effect=True, undo="mlflow.revoke_model_permission",
        input_schema=PERMISSION_INPUT, output_schema=GRANT_OUTPUT)
def grant_model_permission(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Give `username` `permission` (READ) on the registered model, through the auth app.

    A permission the user already has on the model is left as it is (`pre_existing`,
    `changed: false`). Needs MANAGE on the model or an admin."""
    return grant(ctx.client(MlflowRegistryClient), name=inputs["name"],
                 username=inputs["username"], permission=inputs.get("permission", "READ"))


@action("mlflow.revoke_model_permission", connection="mlflow", retry=VENDOR_RETRY,
        side_effect=True, input_schema=PERMISSION_INPUT, output_schema=REVOKE_OUTPUT)
def revoke_model_permission(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Take back `permission` (READ) from `username` on the registered model.

    Only that permission is removed: none (`changed: false`) or another one (`left`) is left
    alone. Needs MANAGE on the model or an admin."""
    return revoke(ctx.client(MlflowRegistryClient), name=inputs["name"],
                  username=inputs["username"], permission=inputs.get("permission", "READ"))


ACTIONS = (get_model_version, list_model_versions, quarantine_model_version,
           release_model_version, list_model_files, get_registered_model,
           grant_model_permission, revoke_model_permission)
