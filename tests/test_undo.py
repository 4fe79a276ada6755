from __future__ import annotations

from typing import Any

import pytest

from crownguard.engine import ActionContext, action, hookimpl
from crownguard.engine.errors import UndoError
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.spec import parse_playbook
from crownguard.engine.undo import plan_undo, undo_playbook


class Vendor:
    """A tiny stateful vendor: hosts can be contained, users suspended."""

    def __init__(self) -> None:
        self.contained: set[str] = set()
        self.suspended: set[str] = set()

    @hookimpl
    def crownguard_register_actions(self, register: Any) -> None:
        vendor = self
        host_in = {"type": "object", "properties": {"device_id": {"type": "string"}},
                   "required": ["device_id"], "additionalProperties": False}
        user_in = {"type": "object", "properties": {"user": {"type": "string"}},
                   "required": ["user"], "additionalProperties": False}

        @action("v.contain", side_effect=True, undo="v.lift", input_schema=host_in)
        def contain(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
            changed = inputs["device_id"] not in vendor.contained
            vendor.contained.add(inputs["device_id"])
            return {"device_id": inputs["device_id"], "changed": changed}

        @action("v.lift", side_effect=True, undo="v.contain", input_schema=host_in)
        def lift(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
            changed = inputs["device_id"] in vendor.contained
            vendor.contained.discard(inputs["device_id"])
            return {"changed": changed}

        @action("v.suspend", side_effect=True, undo="v.unsuspend", input_schema=user_in)
        def suspend(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
            changed = inputs["user"] not in vendor.suspended
            vendor.suspended.add(inputs["user"])
            return {"changed": changed, "user_id": "00u" + inputs["user"]}

        @action("v.unsuspend", side_effect=True, input_schema={
            "type": "object", "properties": {"user_id": {"type": "string"}},
            "required": ["user_id"], "additionalProperties": False})
        def unsuspend(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
            user = inputs["user_id"].removeprefix("00u")
            changed = user in vendor.suspended
            vendor.suspended.discard(user)
            return {"changed": changed}

        for item in (contain, lift, suspend, unsuspend):
            register(item)


PLAYBOOK = """
name: respond
steps:
  - {id: contain, action: v.contain, with: {device_id: "${{ event.device }}"}}
  - {id: again, action: v.contain, needs: [contain], with: {device_id: "${{ event.device }}"}}
  - {id: suspend, action: v.suspend, for_each: "${{ event.users }}", with: {user: "${{ item }}"}}
  - {id: note, action: core.noop, needs: [contain]}
"""


@pytest.fixture
def setup() -> tuple[PluginHost, Vendor]:
    vendor = Vendor()
    host = PluginHost()
    host.add("crownguard.plugins.core", "core")
    host.add(vendor, "v")
    return host, vendor


def test_undo_reverts_only_what_changed_in_reverse(setup: tuple[PluginHost, Vendor]) -> None:
    host, vendor = setup
    events: list[dict[str, Any]] = []
    playbook = parse_playbook(PLAYBOOK, host.actions)
    record = Runner(host, journal=events.append).run(
        playbook, {"device": "d-1", "users": ["ann", "bob"]})
    assert record["status"] == "succeeded"
    assert vendor.contained == {"d-1"} and vendor.suspended == {"ann", "bob"}
    calls = plan_undo(playbook, events, host)
    # 'again' changed nothing; 'note' has no undo; the suspend items map output user_id.
    assert {(c.step, c.item, c.action) for c in calls} == {
        ("contain", None, "v.lift"), ("suspend", 0, "v.unsuspend"), ("suspend", 1, "v.unsuspend")}
    assert next(c.inputs for c in calls if c.step == "suspend")["user_id"].startswith("00u")
    order = [(c.step, c.item) for c in calls]
    finish = [(e["step"], e.get("item")) for e in events
              if e["type"] == "item_succeeded"
              or (e["type"] == "step_succeeded" and e["step"] != "suspend")]
    assert order == [s for s in reversed(finish) if s in order]
    undo_record = Runner(host).run(undo_playbook(playbook, calls), {})
    assert undo_record["status"] == "succeeded"
    assert vendor.contained == set() and vendor.suspended == set()


def test_undo_of_one_step_and_errors(setup: tuple[PluginHost, Vendor]) -> None:
    host, _vendor = setup
    events: list[dict[str, Any]] = []
    playbook = parse_playbook(PLAYBOOK, host.actions)
    Runner(host, journal=events.append).run(playbook, {"device": "d-1", "users": []})
    calls = plan_undo(playbook, events, host, only_step="contain")
    assert [c.action for c in calls] == ["v.lift"]
    with pytest.raises(UndoError, match="changed nothing"):
        plan_undo(playbook, events, host, only_step="again")
    with pytest.raises(UndoError, match="no step 'ghost'"):
        plan_undo(playbook, events, host, only_step="ghost")
    with pytest.raises(UndoError, match="nothing to undo"):
        undo_playbook(playbook, [])


def test_recorded_values_are_data_not_templates(setup: tuple[PluginHost, Vendor]) -> None:
    host, vendor = setup
    events: list[dict[str, Any]] = []
    playbook = parse_playbook(PLAYBOOK, host.actions)
    Runner(host, journal=events.append).run(playbook, {"device": "${{ run.id }}", "users": []})
    record = Runner(host).run(undo_playbook(playbook, plan_undo(playbook, events, host)), {})
    assert record["status"] == "succeeded"
    assert vendor.contained == set()  # the literal id "${{ run.id }}" was lifted
