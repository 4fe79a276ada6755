"""Undo: the compensation of a run, for a false positive.

From a run's events, every step whose action declares an undo and whose output says it changed
something (`changed: true`, or no `changed` key at all) gets one undo call, with inputs taken
from the original step: first from its inputs, then from its output, keeping only the keys the
undo action's input schema names (so `falcon.contain_host {device_id}` becomes
`falcon.lift_containment {device_id}`, and a quarantine's recorded aliases feed its release).
The undo calls run in the reverse order of the original steps' completion, one after the
other, each whatever became of the previous (`when: always`), as a playbook run of its own.

A run can also lead to a change that none of its steps holds: the grant of an access request,
which the access desk makes once the model-access-request run decided (docs/access.md). The
caller of an undo hands such changes over as `LinkedUndo`s (the CLI and the service hand the
desk's); they are taken back first (they came after the run's steps), and the undo run
records what became of them (`details.linked`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import UndoError
from .expressions import render
from .journal import RunRecord
from .kinds import EventType, When
from .plugins import PluginHost
from .spec import Playbook, Step


@dataclass(frozen=True)
class UndoCall:
    step: str
    item: int | None
    action: str
    inputs: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class LinkedChange:
    """One change a run led to outside its steps, and what its undo did: `undone` False when
    there was nothing left to take back (in a dry run: whether it would be taken back),
    `note` says what was done or why nothing."""

    what: str
    undone: bool
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "undone": self.undone, "note": self.note}


class LinkedUndo(Protocol):
    """Takes back what `run` led to outside its own steps, as `by`; [] when it led to none."""

    def undo_linked(self, run: RunRecord, by: str, *, dry_run: bool) -> list[LinkedChange]: ...


def _changed(output: Any) -> bool:
    return not isinstance(output, dict) or output.get("changed", True) is not False


def _undo_inputs(schema: dict[str, Any], inputs: dict[str, Any], output: Any) -> dict[str, Any]:
    names = list((schema.get("properties") or {}).keys())
    result: dict[str, Any] = {}
    for name in names:
        if name in inputs:
            result[name] = inputs[name]
        elif isinstance(output, dict) and name in output:
            result[name] = output[name]
    return result


def plan_undo(playbook: Playbook, events: list[dict[str, Any]], host: PluginHost,
              only_step: str | None = None) -> list[UndoCall]:
    """The undo calls for a run, latest change first."""
    if only_step is not None and only_step not in playbook.by_id:
        raise UndoError(f"playbook '{playbook.name}' has no step '{only_step}'")
    inputs: dict[tuple[str, int | None], dict[str, Any]] = {}
    finished: list[tuple[str, int | None, Any]] = []
    for event in events:
        kind = event.get("type")
        key = (event.get("step", ""), event.get("item"))
        if kind == EventType.STEP_STARTED:
            inputs[key] = event.get("inputs") or {}
        elif kind == EventType.ITEM_SUCCEEDED:
            finished.append((key[0], key[1], event.get("output")))
        elif kind == EventType.STEP_SUCCEEDED:
            step = playbook.by_id.get(key[0])
            if step is not None and step.for_each is None:
                finished.append((key[0], None, event.get("output")))
    calls: list[UndoCall] = []
    for step_id, item, output in reversed(finished):
        if only_step is not None and step_id != only_step:
            continue
        action = host.actions.get(playbook.step(step_id).action)
        if action is None or not action.undo or not _changed(output):
            continue
        undo = host.actions.get(action.undo)
        if undo is None:
            raise UndoError(f"step '{step_id}': undo action '{action.undo}' is not installed")
        if isinstance(output, dict) and output.get("dry_run"):
            continue
        original = inputs.get((step_id, item), {})
        if action.undo_with is not None:
            rendered = render(action.undo_with, {"inputs": original, "output": output})
            undo_inputs = {k: v for k, v in rendered.items() if v is not None}
        else:
            undo_inputs = _undo_inputs(undo.input_schema, original, output)
        calls.append(UndoCall(step_id, item, undo.name, undo_inputs,
                              f"undo {step_id}" + (f" item {item}" if item is not None else "")))
    if only_step is not None and not calls:
        raise UndoError(f"step '{only_step}' changed nothing that can be undone")
    return calls


def undo_playbook(original: Playbook, calls: list[UndoCall],
                  linked: list[LinkedChange] | None = None) -> Playbook:
    """A playbook running the undo calls one after the other, whatever each one's outcome
    (none, when only a linked change was taken back: the run records that)."""
    if not calls and not any(change.undone for change in linked or []):
        left = "; ".join(change.note for change in linked or [])
        raise UndoError(f"nothing to undo: no step of '{original.name}' changed anything with "
                        "a declared undo" + (f", and {left}" if left else ""))
    steps: list[Step] = []
    recorded: dict[str, dict[str, Any]] = {}
    for index, call in enumerate(calls):
        step_id = f"undo_{call.step}" + (f"_{call.item}" if call.item is not None else "")
        needs = (steps[-1].id,) if steps else ()
        # Recorded values travel through vars, never as template text: a value that happens to
        # contain "${{" must stay data.
        recorded[step_id] = call.inputs
        with_ = {key: f"${{{{ vars.undo.{json.dumps(step_id)}.{json.dumps(key)} }}}}"
                 for key in call.inputs}
        steps.append(Step(id=step_id, action=call.action, with_=with_, needs=needs,
                          when=When.ALWAYS if needs else When.SUCCESS,
                          description=call.reason, line=index + 1))
    name, description = f"{original.name}-undo", f"Undo of {original.name}"
    # Its text, as a journal keeps every playbook's, so that the undo run can be shown and
    # resumed like any other. The recorded values are not in it: they are the run's vars.
    text = json.dumps({"name": name, "description": description, "steps": [
        {"id": step.id, "action": step.action, "with": step.with_,
         **({"needs": list(step.needs)} if step.needs else {}), "when": str(step.when),
         "description": step.description} for step in steps]}, indent=2)
    return Playbook(name=name, steps=tuple(steps), description=description,
                    source=original.source, vars={"undo": recorded}, text=text)
