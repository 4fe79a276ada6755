"""Finding a host and moving it in or out of network containment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crownguard.engine import ActionContext, ConflictError, InputError, NotFoundError

from .client import FalconClient
from .schemas import PASSTHROUGH


def fql_string(value: str) -> str:
    """A value as an FQL string literal (backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def summarize(device: dict[str, Any]) -> dict[str, Any]:
    """The fields of a Falcon host record a playbook uses, with a lower-case status."""
    summary = {key: device[key] for key in PASSTHROUGH if device.get(key) is not None}
    summary["device_id"] = str(device.get("device_id", ""))
    summary["hostname"] = str(device.get("hostname", ""))
    summary["status"] = str(device.get("status", "")).lower()
    return summary


def find_hosts(client: FalconClient, *, device_id: str | None = None,
               hostname: str | None = None) -> list[dict[str, Any]]:
    """Host records by AID, or every host with that hostname, most recently seen first."""
    if device_id:
        return [client.device(device_id.lower())]
    if not hostname:
        raise InputError("falcon: give a device_id or a hostname")
    ids = client.query_device_ids(f"hostname:{fql_string(hostname)}", sort="last_seen.desc")
    devices = client.get_devices(ids) if ids else []
    if not devices:
        raise NotFoundError(f"no host named '{hostname}'", vendor=client.vendor,
                            operation="query devices", status=None)
    # Re-imaged machines keep their name: the record seen last is the live one.
    return sorted(devices, key=lambda d: str(d.get("last_seen") or ""), reverse=True)


def resolve_host(client: FalconClient, inputs: dict[str, Any]) -> dict[str, Any]:
    """The one host an action acts on: `device_id` wins over `hostname`."""
    return find_hosts(client, device_id=inputs.get("device_id"),
                      hostname=inputs.get("hostname"))[0]


@dataclass(frozen=True)
class Containment:
    """One direction of the containment state machine."""

    action_name: str
    operation: str
    done: str
    pending: str
    opposite_done: str
    opposite_pending: str


CONTAIN = Containment("contain", "contain host", "contained", "containment_pending",
                      "normal", "lift_containment_pending")
LIFT = Containment("lift_containment", "lift containment", "normal", "lift_containment_pending",
                   "contained", "containment_pending")


def wait_for_status(ctx: ActionContext, client: FalconClient, device_id: str,
                    wanted: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        device = client.device(device_id)
        return device if str(device.get("status", "")).lower() == wanted else None

    return client.wait_for(probe, f"host {device_id} to be {wanted}")


def apply_containment(ctx: ActionContext, client: FalconClient, device: dict[str, Any],
                      spec: Containment) -> dict[str, Any]:
    """Move a host to `spec.done`, idempotently, and wait until Falcon reports it there."""
    device_id = str(device["device_id"])
    previous = str(device.get("status", "")).lower()
    status = previous
    if status == spec.opposite_pending:
        # Acting against a transition still in flight races it; let it land first.
        status = str(wait_for_status(ctx, client, device_id, spec.opposite_done)
                     .get("status", "")).lower()
    changed = status not in (spec.done, spec.pending)
    if changed:
        try:
            client.device_action(device_id, spec.action_name, spec.operation)
        except ConflictError:
            # Someone else moved the host meanwhile: fine if it is going where we want.
            if str(client.device(device_id).get("status", "")).lower() not in (spec.done,
                                                                               spec.pending):
                raise
            changed = False
    final = wait_for_status(ctx, client, device_id, spec.done)
    return {**summarize(final), "previous_status": previous, "changed": changed}
