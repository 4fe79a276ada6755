"""The defender actions: resolve the machine, bring about one state, report the final action."""

from __future__ import annotations

from typing import Any

from crownguard.engine import VENDOR_RETRY, ActionContext, BadResponse, action

from . import machines, schemas
from .client import DefenderClient


def comment(ctx: ActionContext, inputs: dict[str, Any], what: str) -> str:
    """The action's comment, marked with the run and step that asked for it (the audit trail in
    Defender's action centre, and how a retried step recognises its own earlier request)."""
    return f"{inputs.get('comment') or what} [crownguard run {ctx.run_id} step {ctx.step_id}]"


def action_fields(machine: dict[str, Any], outcome: machines.Outcome) -> dict[str, Any]:
    held = outcome.action or {}
    return {"machine_id": str(machine.get("id", "")),
            "computer_dns_name": str(machine.get("computerDnsName", "")),
            "action_id": held.get("id"), "action_status": held.get("status"),
            "changed": outcome.changed}


@action("defender.find_machine", connection="defender", retry=VENDOR_RETRY,
        input_schema=schemas.machine_input(), output_schema=schemas.FIND_MACHINE_OUTPUT)
def find_machine(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Look up a Defender for Endpoint machine by machine id or host name.

    A short host name matches its DNS names (`ws-alice-01` finds `ws-alice-01.corp.example`);
    a re-onboarded device can have several machine records, listed in `machines`, most
    recently seen first, with the top-level fields describing that first one. Fails with
    NotFoundError when nothing matches. Needs the application permission Machine.Read.All.
    """
    client = ctx.client(DefenderClient)
    found = [machines.summarize(m) for m in machines.find_machines(
        client, machine_id=inputs.get("machine_id"), hostname=inputs.get("hostname"))]
    return {**found[0], "count": len(found), "machines": found}


@action("defender.isolate_machine", connection="defender", retry=VENDOR_RETRY,
        side_effect=True, undo="defender.release_machine",
        input_schema=schemas.ISOLATE_INPUT, output_schema=schemas.ISOLATION_OUTPUT)
def isolate_machine(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Isolate a machine from the network (Full or Selective) and wait for the result.

    Submits an Isolate machine action and polls it until Succeeded; Failed, TimeOut or
    Cancelled fail the step. A machine whose latest isolation action is an Isolate (done or
    running) is not isolated again: `changed` is false and `isolation_type` is the one in
    force. Undo with defender.release_machine. Needs Machine.Read.All and Machine.Isolate.
    """
    client = ctx.client(DefenderClient)
    machine = machines.resolve_machine(client, inputs)
    kind = inputs.get("isolation_type", "Full")
    outcome = machines.bring_about(
        ctx, client, str(machine["id"]), want="Isolate", opposite="Unisolate", verb="isolate",
        body={"Comment": comment(ctx, inputs, "isolate"), "IsolationType": kind},
        operation="isolate machine")
    held = outcome.action or {}
    return {**action_fields(machine, outcome), "isolated": True,
            "isolation_type": held.get("scope") or kind}


@action("defender.release_machine", connection="defender", retry=VENDOR_RETRY,
        side_effect=True, undo="defender.isolate_machine",
        input_schema=schemas.RELEASE_INPUT, output_schema=schemas.ISOLATION_OUTPUT)
def release_machine(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Release a machine from isolation and wait for the result.

    Submits an Unisolate machine action and polls it until Succeeded. A machine that is not
    isolated (latest isolation action an Unisolate, or none ever) is left alone with
    `changed: false`. Undo with defender.isolate_machine. Needs Machine.Read.All and
    Machine.Isolate.
    """
    client = ctx.client(DefenderClient)
    machine = machines.resolve_machine(client, inputs)
    outcome = machines.bring_about(
        ctx, client, str(machine["id"]), want="Unisolate", opposite="Isolate",
        verb="unisolate", body={"Comment": comment(ctx, inputs, "release from isolation")},
        operation="release machine", absent_is_done=True)
    return {**action_fields(machine, outcome), "isolated": False, "isolation_type": None}


@action("defender.quarantine_file", connection="defender", retry=VENDOR_RETRY,
        side_effect=True,
        input_schema=schemas.QUARANTINE_INPUT, output_schema=schemas.QUARANTINE_OUTPUT)
def quarantine_file(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Stop the processes using a file and quarantine it on one machine (StopAndQuarantineFile).

    Defender needs the file's SHA-1: given a `sha256` (what alert sources carry), the plugin
    reads Defender's file profile to find it (NotFoundError when Defender has never seen the
    file). Polls the machine action until Succeeded. A file already quarantined on that machine
    by an earlier action gives `changed: false`. No undo action: restore a quarantined file from
    the Defender portal or with a live response `MpCmdRun -Restore`. Needs Machine.Read.All,
    File.Read.All (for a SHA-256) and Machine.StopAndQuarantine.
    """
    client = ctx.client(DefenderClient)
    sha256 = str(inputs["sha256"]).lower() if inputs.get("sha256") else None
    sha1 = str(inputs.get("sha1") or "").lower()
    if not sha1 and sha256:
        sha1 = str(client.file(sha256).get("sha1") or "").lower()
        if len(sha1) != 40:
            raise BadResponse(f"the file profile of {sha256} has no SHA-1",
                              vendor=client.vendor, operation="get file")
    machine = machines.resolve_machine(client, inputs)
    outcome = machines.bring_about(
        ctx, client, str(machine["id"]), want="StopAndQuarantineFile", opposite=None,
        verb="StopAndQuarantineFile",
        body={"Comment": comment(ctx, inputs, "quarantine model file"), "Sha1": sha1},
        operation="stop and quarantine file", related_sha1=sha1)
    return {**action_fields(machine, outcome), "sha1": sha1, "sha256": sha256}


ACTIONS = (find_machine, isolate_machine, release_machine, quarantine_file)
