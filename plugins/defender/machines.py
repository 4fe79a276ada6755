"""Finding a machine, and running machine actions to their end, idempotently.

Defender keeps no "isolated" flag on the machine: the state is the latest Isolate or
Unisolate machine action that did not fail, so that is what the actions read before acting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crownguard.engine import ActionContext, InputError, NotFoundError, VendorError

from .client import DefenderClient
from .schemas import PASSTHROUGH

RUNNING = frozenset({"Pending", "InProgress"})
UNSUCCESSFUL = frozenset({"Failed", "TimeOut", "Cancelled"})


def summarize(machine: dict[str, Any]) -> dict[str, Any]:
    summary = {key: machine[key] for key in PASSTHROUGH if machine.get(key) is not None}
    summary["machine_id"] = str(machine.get("id", ""))
    summary["computer_dns_name"] = str(machine.get("computerDnsName", ""))
    return summary


def find_machines(client: DefenderClient, *, machine_id: str | None = None,
                  hostname: str | None = None) -> list[dict[str, Any]]:
    """Machines by id, or every machine of that name, most recently seen first."""
    if machine_id:
        return [client.machine(machine_id.lower())]
    if not hostname:
        raise InputError("defender: give a machine_id or a hostname")
    found = client.machines_named(hostname)
    if not found:
        raise NotFoundError(f"no machine named '{hostname}'", vendor=client.vendor,
                            operation="list machines")
    # A re-onboarded device gets a new machine id; the one seen last is the live one.
    return sorted(found, key=lambda m: str(m.get("lastSeen") or ""), reverse=True)


def resolve_machine(client: DefenderClient, inputs: dict[str, Any]) -> dict[str, Any]:
    return find_machines(client, machine_id=inputs.get("machine_id"),
                         hostname=inputs.get("hostname"))[0]


def latest(actions: list[dict[str, Any]], types: set[str],
           related_sha1: str | None = None) -> dict[str, Any] | None:
    """The newest action of those types that did not fail (optionally about one file)."""
    relevant = [a for a in actions if a.get("type") in types
                and a.get("status") not in UNSUCCESSFUL
                and (related_sha1 is None or str((a.get("relatedFileInfo") or {})
                                                 .get("fileIdentifier", "")).lower()
                     == related_sha1)]
    return max(relevant, key=lambda a: str(a.get("creationDateTimeUtc") or ""), default=None)


def wait_action(ctx: ActionContext, client: DefenderClient, action: dict[str, Any],
                operation: str) -> dict[str, Any]:
    """Poll a machine action until it ends; an action that ends unsuccessfully is an error."""
    action_id = str(action["id"])
    current = action

    def probe() -> dict[str, Any] | None:
        nonlocal current
        if current.get("status") in RUNNING:
            current = client.machine_action(action_id)
        return current if current.get("status") not in RUNNING else None

    final = client.wait_for(probe, f"{action.get('type', 'machine')} action {action_id}")
    if final.get("status") != "Succeeded":
        raise VendorError(f"machine action {action_id} ({final.get('type')}) ended "
                          f"{final.get('status')}", vendor=client.vendor, operation=operation)
    return final


@dataclass(frozen=True)
class Outcome:
    """The action that holds the wanted state (None: nothing was ever done) and whether this
    call submitted it."""

    action: dict[str, Any] | None
    changed: bool


def bring_about(ctx: ActionContext, client: DefenderClient, machine_id: str, *, want: str,
                opposite: str | None, verb: str, body: dict[str, Any], operation: str,
                related_sha1: str | None = None, absent_is_done: bool = False) -> Outcome:
    """Make the newest successful action of type `want` the machine's state, idempotently.

    A running action of the `opposite` type is waited for first, so the two cannot race on the
    device (Defender may otherwise complete them out of order). With `absent_is_done`, a
    machine that never had a `want`/`opposite` action is already where it should be (release
    of a machine that was never isolated).
    """
    types = {want} | ({opposite} if opposite else set())
    last = latest(client.machine_actions(machine_id), types, related_sha1)
    if last is not None and last.get("type") == opposite and last.get("status") in RUNNING:
        try:
            wait_action(ctx, client, last, operation)
        except VendorError:
            pass  # it failed: the state is what it was before it
        last = latest(client.machine_actions(machine_id), types, related_sha1)
    if last is not None and last.get("type") == want:
        try:
            return Outcome(wait_action(ctx, client, last, operation), ours(last, body))
        except VendorError:
            pass  # the earlier request failed: submit a new one
    elif last is None and absent_is_done:
        return Outcome(None, changed=False)
    submitted = client.submit(machine_id, verb, body, operation)
    if submitted is None:  # someone else's request of the same kind is in flight
        running = latest(client.machine_actions(machine_id), {want}, related_sha1)
        if running is None:
            raise VendorError("Defender says an action is in progress but lists none",
                              vendor=client.vendor, operation=operation, status=400)
        return Outcome(wait_action(ctx, client, running, operation), ours(running, body))
    return Outcome(wait_action(ctx, client, submitted, operation), changed=True)


def ours(action: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether an existing action was submitted by an earlier attempt of this very step: its
    comment carries the run and step, so a retry after a lost answer still reports the change
    it made."""
    return bool(body.get("Comment")) and action.get("requestorComment") == body["Comment"]
