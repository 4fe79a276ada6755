"""Before a run starts: what its steps need from the connections file, checked up front.

A step whose action's connection is missing fails only when it is reached, after the steps
before it acted; a routed run (`crownguard respond`) has claimed its dedupe slot by then. So
`unready(...)` looks at the steps that may run for this event, risk and vars, and lists

- every connection their actions use that the connections file does not have (an action finds
  its connection by name: `Action.connection`, `ctx.client(...)`), and
- every input that a `vars.*` value fills and that does not match the action's schema (a var
  left unset, a channel given as a number).

A step is left out only when it cannot run: its own `if` reads nothing but `event`, `risk`,
`vars` and `run` and is false, or the steps it needs cannot run (`when: success`: one of
them; `when: failure`: all of them). Anything decided by step outputs may run, so a failure
handler's connection is needed too. Inputs that read step outputs, `item` or only the event
are not judged here: the event is what it is, and the run reports them as it goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from .errors import ExpressionError, InputError
from .expressions import compile_template, evaluate, has_template, referenced_roots, render, truthy
from .kinds import When

if TYPE_CHECKING:
    from .actions import Action
    from .config import Config
    from .spec import Playbook, Step

# What an expression may read and still be decided before the run: no step has run yet.
KNOWN_BEFORE_RUN = frozenset({"event", "risk", "vars", "run"})


@dataclass(frozen=True)
class Unready:
    """One thing a step will need that the run would not have."""

    playbook: str
    step: str
    action: str
    problem: str

    def __str__(self) -> str:
        return f"playbook '{self.playbook}': step '{self.step}' ({self.action}): {self.problem}"


def run_context(playbook: Playbook, config: Config, *, event: dict[str, Any] | None = None,
                risk: dict[str, Any] | None = None,
                variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """The expression context a run of `playbook` starts with, as the Runner builds it (the
    run id is not known yet: empty)."""
    source = playbook.source
    return {
        "event": event or {},
        "vars": {**playbook.vars, **config.vars, **(variables or {})},
        "risk": risk or {},
        "run": {"id": "", "playbook": playbook.name, "dry_run": False,
                "playbook_dir": str(Path(source).resolve().parent)
                if source and not source.startswith("<") else None},
    }


def _roots(text: str) -> set[str]:
    roots: set[str] = set()
    for expression in compile_template(text).expressions:
        roots |= referenced_roots(expression)[0]
    return roots


def _own_if(step: Step, context: dict[str, Any]) -> bool | None:
    """The step's `if` when it can be decided before the run (no `if`: True); else None."""
    if not step.if_:
        return True
    try:
        if not referenced_roots(step.if_)[0] <= KNOWN_BEFORE_RUN:
            return None
        return truthy(evaluate(step.if_, context))
    except ExpressionError:
        return None  # the run fails the step with the error; its needs stay needed


def may_run(playbook: Playbook, context: dict[str, Any]) -> dict[str, bool]:
    """The steps that may run, each with whether its own `if` is known to hold (True) or
    depends on what earlier steps do (False)."""
    cannot: set[str] = set()
    found: dict[str, bool] = {}
    for step_id in nx.topological_sort(playbook.graph):
        step = playbook.step(step_id)
        blocked = [need in cannot for need in step.needs]
        if (step.when == When.SUCCESS and any(blocked)) or \
                (step.when == When.FAILURE and all(blocked)):
            cannot.add(step_id)
            continue
        holds = _own_if(step, context)
        if holds is False:
            cannot.add(step_id)
            continue
        found[step_id] = holds is True
    return found


def _vars_inputs(value: Any, context: dict[str, Any], unknown: list[tuple[str | int, ...]],
                 failed: list[str], path: tuple[str | int, ...] = ()) -> Any:
    """The inputs as far as `vars` fill them: every other templated value is unknown."""
    if isinstance(value, str):
        if not has_template(value):
            return value
        roots = _roots(value)
        if "vars" in roots and roots <= KNOWN_BEFORE_RUN:
            try:
                return render(value, context)
            except ExpressionError as exc:
                if roots == {"vars"}:  # no event value can be the cause
                    failed.append(f"input {'.'.join(map(str, path))}: {exc}")
        unknown.append(path)
        return None
    if isinstance(value, dict):
        return {k: _vars_inputs(v, context, unknown, failed, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_vars_inputs(v, context, unknown, failed, (*path, i)) for i, v in enumerate(value)]
    return value


def unready(playbook: Playbook, actions: Mapping[str, Action], config: Config, *,
            event: dict[str, Any] | None = None, risk: dict[str, Any] | None = None,
            variables: dict[str, Any] | None = None) -> list[Unready]:
    """What the steps that may run for this event need and the run would not have (see the
    module docstring); empty when the run can start."""
    context = run_context(playbook, config, event=event, risk=risk, variables=variables)
    configured = config.connections.names()
    problems: list[Unready] = []
    for step_id, decided in may_run(playbook, context).items():
        step = playbook.step(step_id)
        action = actions.get(step.action)
        if action is None:
            problems.append(Unready(playbook.name, step_id, step.action,
                                    "no installed plugin provides this action"))
            continue
        if action.connection and action.connection not in config.connections:
            problems.append(Unready(
                playbook.name, step_id, step.action,
                f"needs the connection '{action.connection}', which the connections file "
                f"does not have (configured: {', '.join(configured) or 'none'})"))
        if decided and step.for_each is None:
            problems += [Unready(playbook.name, step_id, step.action, text)
                         for text in _input_problems(step, action, context)]
    return problems


def _input_problems(step: Step, action: Action, context: dict[str, Any]) -> list[str]:
    unknown: list[tuple[str | int, ...]] = []
    failed: list[str] = []
    inputs = _vars_inputs(step.with_, context, unknown, failed)
    try:
        action.validate_inputs(inputs, unknown=unknown)
    except InputError as exc:
        failed.append(f"{exc} (set by vars: the playbook's, or settings.vars of the "
                      "connections file)")
    return failed
