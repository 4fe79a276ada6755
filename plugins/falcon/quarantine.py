"""Taking a model file off a host with RTR: evidence first, then remove or move it aside."""

from __future__ import annotations

import re
from typing import Any

from crownguard.engine import ActionContext, ConflictError, NotFoundError

from .client import FalconClient
from .rtr import RtrSession


def separator(device: dict[str, Any]) -> str:
    return "\\" if str(device.get("platform_name", "")).lower() == "windows" else "/"


def quarantine_target(path: str, destination: str, sep: str) -> str:
    """Where `path` lands when moved into the `destination` folder."""
    parts = re.split(r"[\\/]" if sep == "\\" else "/", path)
    return destination.rstrip("\\/") + sep + parts[-1]


def quarantine_file(ctx: ActionContext, client: FalconClient, device: dict[str, Any],
                    inputs: dict[str, Any]) -> dict[str, Any]:
    """Evidence first (`get`, or `filehash` without evidence), the hash check, then rm/mv."""
    device_id = str(device["device_id"])
    path = inputs["path"]
    mode = inputs.get("mode", "remove")
    target = (quarantine_target(path, inputs["destination"], separator(device))
              if mode == "move" else None)
    result: dict[str, Any] = {"device_id": device_id, "hostname": str(device.get("hostname", "")),
                              "path": path, "mode": mode, "destination": target,
                              "sha256": None, "evidence": None}
    with RtrSession(ctx, client, device_id) as rtr:
        if inputs.get("collect_evidence", True):
            uploaded = rtr.collect(path)
            present = uploaded is not None
            if uploaded is not None:
                result["sha256"] = _lower(uploaded.get("sha256"))
                result["evidence"] = {
                    "cloud_request_id": uploaded["cloud_request_id"],
                    "session_id": rtr.session_id, "name": uploaded.get("name"),
                    "sha256": result["sha256"], "size": uploaded.get("size")}
        else:
            found = rtr.probe(path)
            present, result["sha256"] = found.present, found.sha256
        if not present:
            if target is not None:
                moved = rtr.probe(target)
                if moved.present:
                    return {**result, "sha256": moved.sha256, "status": "moved",
                            "changed": False}
            return {**result, "status": "absent", "changed": False}
        _check_hash(path, device_id, result["sha256"], inputs.get("sha256"))
        if target is None:
            rtr.run("rm", path).check("remove file")
            return {**result, "status": "removed", "changed": True}
        rtr.run("mv", path, target).check("move file")
        return {**result, "status": "moved", "changed": True}


def _lower(value: Any) -> str | None:
    return str(value).lower() if value else None


def _check_hash(path: str, device_id: str, actual: str | None, expected: str | None) -> None:
    """With an expected SHA-256, a different (or unverifiable) file is left where it is."""
    if not expected:
        return
    if actual is None:
        raise ConflictError(f"could not read the SHA-256 of {path} on host {device_id} to "
                            "compare it with the expected one; left in place",
                            vendor="falcon", operation="quarantine file")
    if actual != expected.lower():
        raise ConflictError(f"{path} on host {device_id} has SHA-256 {actual}, not the "
                            f"expected {expected.lower()}; left in place", vendor="falcon",
                            operation="quarantine file")


def restore_file(ctx: ActionContext, client: FalconClient, device: dict[str, Any],
                 inputs: dict[str, Any]) -> dict[str, Any]:
    device_id = str(device["device_id"])
    path = inputs["path"]
    source = quarantine_target(path, inputs["destination"], separator(device))
    result = {"device_id": device_id, "hostname": str(device.get("hostname", "")),
              "path": path, "source": source}
    with RtrSession(ctx, client, device_id) as rtr:
        in_place = rtr.probe(path)
        in_quarantine = rtr.probe(source)
        if not in_quarantine.present:
            if not in_place.present:
                raise NotFoundError(f"{path} is neither on host {device_id} nor in "
                                    f"{inputs['destination']}", vendor="falcon",
                                    operation="restore file")
            return {**result, "status": "restored", "sha256": in_place.sha256,
                    "changed": False}
        if in_place.present:
            raise ConflictError(f"{path} exists on host {device_id} and in quarantine; not "
                                "overwriting it", vendor="falcon", operation="restore file")
        rtr.run("mv", source, path).check("restore file")
        return {**result, "status": "restored", "sha256": in_quarantine.sha256,
                "changed": True}
