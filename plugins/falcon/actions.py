"""The falcon actions: thin wrappers that resolve the host and call one piece of logic."""

from __future__ import annotations

from typing import Any

from crownguard.engine import VENDOR_RETRY, ActionContext, action

from . import hosts, quarantine, schemas
from .client import FalconClient


@action("falcon.find_host", connection="falcon", retry=VENDOR_RETRY,
        input_schema=schemas.host_input(), output_schema=schemas.FIND_HOST_OUTPUT)
def find_host(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Look up a Falcon host by device id (AID) or hostname.

    A hostname can match several host records (a re-imaged machine keeps its name); all are
    listed in `hosts`, most recently seen first, and the top-level fields describe that first
    one. `status` is the containment state (normal, containment_pending, contained,
    lift_containment_pending). Fails with NotFoundError when nothing matches. Needs the API
    scope Hosts: Read.
    """
    client = ctx.client(FalconClient)
    found = [hosts.summarize(d) for d in hosts.find_hosts(
        client, device_id=inputs.get("device_id"), hostname=inputs.get("hostname"))]
    return {**found[0], "count": len(found), "hosts": found}


@action("falcon.contain_host", connection="falcon", retry=VENDOR_RETRY,
        side_effect=True, undo="falcon.lift_containment",
        input_schema=schemas.host_input(), output_schema=schemas.CONTAINMENT_OUTPUT)
def contain_host(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Network-contain a host, and wait until Falcon reports it `contained`.

    Sends the `contain` host action, then polls the host record through
    `containment_pending` until `contained` (bounded by the step timeout and the connection's
    max_wait_seconds). A host already contained or being contained is not touched again:
    `changed` is false. The host keeps talking to the Falcon cloud only. Undo with
    falcon.lift_containment. Needs the API scopes Hosts: Read and Hosts: Write.
    """
    client = ctx.client(FalconClient)
    return hosts.apply_containment(ctx, client, hosts.resolve_host(client, inputs),
                                   hosts.CONTAIN)


@action("falcon.lift_containment", connection="falcon", retry=VENDOR_RETRY,
        side_effect=True, undo="falcon.contain_host",
        input_schema=schemas.host_input(), output_schema=schemas.CONTAINMENT_OUTPUT)
def lift_containment(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Lift network containment from a host, and wait until Falcon reports it `normal`.

    Sends the `lift_containment` host action and polls through `lift_containment_pending`.
    A host that is not contained is left alone with `changed: false`. Undo with
    falcon.contain_host. Needs the API scopes Hosts: Read and Hosts: Write.
    """
    client = ctx.client(FalconClient)
    return hosts.apply_containment(ctx, client, hosts.resolve_host(client, inputs), hosts.LIFT)


@action("falcon.quarantine_file", connection="falcon", retry=VENDOR_RETRY,
        side_effect=True, undo="falcon.restore_file",
        input_schema=schemas.QUARANTINE_INPUT, output_schema=schemas.QUARANTINE_OUTPUT)
def quarantine_file(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Take a model file off a host with Real Time Response, collecting evidence first.

    Opens an RTR session and uploads a copy of the file to the Falcon cloud (`get`; with
    collect_evidence false it is only hashed with `filehash`). With `sha256` given, a file with
    another hash is left alone. Then the file is removed (`rm`) or moved into the existing
    folder `destination` (`mv`, mode: move). Every command's own result is checked: a failing
    command fails the step and nothing after it runs. A file already gone gives
    `status: absent` (or `moved` when it sits in `destination`) and `changed: false`.
    falcon.restore_file undoes a move; a removal can only be undone from the collected copy.
    Needs Hosts: Read and Real time response: Read and Write (active responder).
    """
    client = ctx.client(FalconClient)
    return quarantine.quarantine_file(ctx, client, hosts.resolve_host(client, inputs), inputs)


@action("falcon.restore_file", connection="falcon", retry=VENDOR_RETRY,
        side_effect=True,
        input_schema=schemas.RESTORE_INPUT, output_schema=schemas.RESTORE_OUTPUT)
def restore_file(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Move a file that falcon.quarantine_file moved aside back to its original path.

    Uses RTR `mv` from `destination` back to `path`. A file already back in place gives
    `changed: false`; a file present in both places is not overwritten (ConflictError).
    Needs Hosts: Read and Real time response: Read and Write (active responder).
    """
    client = ctx.client(FalconClient)
    return quarantine.restore_file(ctx, client, hosts.resolve_host(client, inputs), inputs)


ACTIONS = (find_host, contain_host, lift_containment, quarantine_file, restore_file)
