"""Quarantine and release of a registered model version.

Quarantine takes a leaked version out of use without destroying anything: it records itself in
tags on the version, removes every alias that points at the version (serving resolves
`models:/name@alias`, so this stops new deployments and loads by alias) and, where the server
runs MLflow's auth app, takes the named user's access to the model away. Release puts back
exactly what the record says was removed, unless someone changed it in the meantime.

Both are idempotent: each reads the current state and changes only what differs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crownguard.engine import ConflictError

from .client import MlflowRegistryClient
from .permissions import AccessState, AuthApi, auth_api
from .record import ALL_TAGS, AccessChange, QuarantineRecord, RecordError, tag_map


def _record(client: MlflowRegistryClient, tags: dict[str, str],
            operation: str) -> QuarantineRecord | None:
    try:
        return QuarantineRecord.from_tags(tags)
    except RecordError as exc:
        raise ConflictError(str(exc), vendor=client.vendor, operation=operation) from None


def quarantine(client: MlflowRegistryClient, *, name: str, version: str, reason: str,
               user: str | None, run_id: str, step_key: str) -> dict[str, Any]:
    version_info = client.get_version(name, version, "get model version")
    tags = tag_map(version_info)
    record = _record(client, tags, "read quarantine record")
    # A record this very step wrote (an earlier attempt) means its changes are this step's.
    ours = record is not None and record.step_key == step_key
    already = record is not None and not ours
    if record is None:
        record = QuarantineRecord(run_id=run_id, reason=reason,
                                  at=datetime.now(UTC).isoformat(timespec="seconds"),
                                  step_key=step_key)
    aliases = sorted(str(a) for a in version_info.get("aliases") or [])
    record.aliases = sorted(set(record.aliases) | set(aliases))

    api: AuthApi | None = None
    before: AccessState | None = None
    if user:
        api = auth_api(client, user, "get auth user")
        if api is not None:
            before = api.state(name, user)
            if record.access_for(user) is None:
                record.access.append(AccessChange(user, api.name, before.explicit))

    try:
        wanted = record.tags()
    except RecordError as exc:
        raise ConflictError(str(exc), vendor=client.vendor, operation="tag model version") from None
    changed = ours
    # The record goes on first, so an interrupted quarantine can still be released.
    for key, value in wanted.items():
        if tags.get(key) != value:
            client.set_version_tag(name, version, key, value, "tag model version")
            changed = True
    for alias in aliases:
        client.delete_alias(name, alias, "remove model alias")
        changed = True

    access: dict[str, Any] | None = None
    if user:
        access = _take_access(api, before, name, user)
        changed = changed or access["changed"]
    return {"name": name, "version": version, "quarantined": True, "changed": changed,
            "already_quarantined": already, "aliases_removed": aliases,
            "record": record.summary(), "access": access}


def _take_access(api: AuthApi | None, state: AccessState | None, model: str,
                 user: str) -> dict[str, Any]:
    if api is None or state is None:
        return {"user": user, "status": "auth_app_not_enabled", "changed": False, "api": None,
                "permission": None, "effective": None, "is_admin": None}
    if state.explicit != api.block:
        api.change(model, user, state.explicit, api.block)
    return {"user": user, "api": api.name, "is_admin": state.is_admin,
            "status": "already_revoked" if state.explicit == api.block else "revoked",
            "changed": state.explicit != api.block, "permission": api.block,
            # Admins bypass permissions: say so rather than claim the user is locked out.
            "effective": "ADMIN" if state.is_admin else api.block}


def release(client: MlflowRegistryClient, *, name: str, version: str,
            move_aliases: bool) -> dict[str, Any]:
    version_info = client.get_version(name, version, "get model version")
    tags = tag_map(version_info)
    record = _record(client, tags, "read quarantine record")
    result: dict[str, Any] = {"name": name, "version": version, "released": False,
                              "changed": False, "aliases_restored": [], "aliases_skipped": [],
                              "access_restored": [], "access_skipped": [], "record": None}
    if record is None:
        # Tags an interrupted quarantine or release left without their record: clean up.
        leftovers = [key for key in reversed(ALL_TAGS) if key in tags]
        for key in leftovers:
            client.delete_version_tag(name, version, key, "untag model version")
        result["changed"] = bool(leftovers)
        return result
    result.update(released=True, changed=True, record=record.summary())
    targets = client.alias_targets(name, "get registered model")
    for alias in record.aliases:
        now = targets.get(alias)
        if now == version:
            continue
        if now is not None and not move_aliases:
            # Someone pointed the alias at another version during the case: theirs wins.
            result["aliases_skipped"].append({"alias": alias, "points_to": now})
            continue
        client.set_alias(name, alias, version, "restore model alias")
        result["aliases_restored"].append(alias)
    for change in record.access:
        outcome = _give_back(client, name, change)
        key = "access_restored" if outcome.pop("restored") else "access_skipped"
        result[key].append(outcome)
    # The record goes last, so an interrupted release can be run again.
    for key in reversed(ALL_TAGS):
        if key in tags:
            client.delete_version_tag(name, version, key, "untag model version")
    return result


def _give_back(client: MlflowRegistryClient, model: str, change: AccessChange) -> dict[str, Any]:
    api = auth_api(client, change.user, "get auth user")
    if api is None:
        return {"user": change.user, "permission": change.previous, "restored": False,
                "reason": "the server no longer runs the auth app"}
    state = api.state(model, change.user)
    if state.explicit == change.previous:
        return {"user": change.user, "permission": change.previous, "restored": True}
    if state.explicit != api.block:
        return {"user": change.user, "permission": state.explicit, "restored": False,
                "reason": "the permission was changed during quarantine; left as it is"}
    api.change(model, change.user, state.explicit, change.previous)
    return {"user": change.user, "permission": change.previous, "restored": True}
