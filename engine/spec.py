"""Playbooks: safe loading, the v1 JSON Schema, typed objects and every static check.

`load_playbook(path, actions)` returns a Playbook or raises SpecError listing every problem
found, grouped (syntax, graph, expressions, actions), each as `file:line: message`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from .actions import RetryPolicy
from .errors import ExpressionError, Problem, SpecError
from .expressions import (
    CONTEXT_ROOTS,
    compile_expression,
    compile_template,
    function_problems,
    has_template,
    iter_strings,
    negation_traps,
    referenced_roots,
)
from .graph import build_graph, find_cycles
from .kinds import When
from .loader import Document, load_file, parse_text, pointer_join
from .validation import describe_schema_error, schema_errors

if TYPE_CHECKING:
    from .actions import Action

DEFAULT_FOR_EACH_CONCURRENCY = 8
GROUP_ORDER = ("syntax", "graph", "expressions", "actions")


def playbook_schema() -> dict[str, Any]:
    """The shipped JSON Schema of playbook format v1."""
    text = resources.files("crownguard.engine").joinpath("schemas/playbook-v1.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


_SCHEMA = playbook_schema()


@dataclass(frozen=True)
class Step:
    id: str
    action: str
    with_: dict[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    when: When = When.SUCCESS
    if_: str | None = None
    for_each: str | list[Any] | None = None
    concurrency: int = DEFAULT_FOR_EACH_CONCURRENCY
    retry: RetryPolicy | None = None
    timeout_seconds: float | None = None
    description: str = ""
    line: int | None = None


@dataclass(frozen=True)
class Playbook:
    name: str
    steps: tuple[Step, ...]
    description: str = ""
    trigger_if: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    text: str = ""  # the file as loaded: a journal keeps it so resume and undo need no file

    @cached_property
    def graph(self) -> nx.DiGraph:
        """The step graph, compiled once per playbook."""
        return build_graph(self.steps)

    @cached_property
    def by_id(self) -> dict[str, Step]:
        return {s.id: s for s in self.steps}

    @cached_property
    def order(self) -> dict[str, int]:
        """Each step's place in the playbook."""
        return {s.id: i for i, s in enumerate(self.steps)}

    @cached_property
    def need_counts(self) -> dict[str, int]:
        """How many distinct steps each step needs."""
        return {s.id: len(set(s.needs)) for s in self.steps}

    @cached_property
    def successors(self) -> dict[str, tuple[str, ...]]:
        """The steps that need each step, from the graph, once per playbook."""
        return {s.id: tuple(self.graph.successors(s.id)) for s in self.steps}

    def step(self, step_id: str) -> Step:
        return self.by_id[step_id]


def bare_expression(text: str) -> str:
    """`if` takes bare JMESPath; `${{ expr }}` is accepted too and unwrapped."""
    stripped = text.strip()
    if stripped.startswith("${{") and stripped.endswith("}}"):
        template = compile_template(stripped)
        if len(template.parts) == 1 and template.parts[0].is_expression:
            return template.parts[0].text
    return stripped


def _build_step(raw: dict[str, Any], line: int | None) -> Step:
    needs = raw.get("needs", [])
    if isinstance(needs, str):
        needs = [needs]
    return Step(
        id=raw["id"], action=raw["action"], with_=dict(raw.get("with") or {}),
        needs=tuple(needs), when=When(raw.get("when", When.SUCCESS)),
        if_=bare_expression(raw["if"]) if raw.get("if") else None,
        for_each=raw.get("for_each"),
        concurrency=int(raw.get("concurrency", DEFAULT_FOR_EACH_CONCURRENCY)),
        retry=RetryPolicy.from_spec(raw.get("retry")),
        timeout_seconds=raw.get("timeout_seconds"), description=raw.get("description", ""),
        line=line)


def _tolerant_step(raw: Any, line: int | None) -> Step | None:
    """A step from a raw entry that failed the schema: the fields of the right type are kept,
    so the graph, expression and action checks still see it. None when it has no usable id."""
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        return None
    needs = raw.get("needs", [])
    needs = [needs] if isinstance(needs, str) else needs if isinstance(needs, list) else []
    when = raw.get("when", When.SUCCESS)
    concurrency = raw.get("concurrency")
    try:
        retry = RetryPolicy.from_spec(raw.get("retry"))
    except (TypeError, ValueError, KeyError, AttributeError):
        retry = None
    try:
        if_ = bare_expression(raw["if"]) if isinstance(raw.get("if"), str) and raw["if"] else None
    except ExpressionError:
        if_ = raw["if"]
    timeout = raw.get("timeout_seconds")
    return Step(
        id=raw["id"], action=raw["action"] if isinstance(raw.get("action"), str) else "",
        with_=dict(raw["with"]) if isinstance(raw.get("with"), dict) else {},
        needs=tuple(n for n in needs if isinstance(n, str)),
        when=When(when) if when in [w.value for w in When] else When.SUCCESS, if_=if_,
        for_each=raw.get("for_each") if isinstance(raw.get("for_each"), (str, list)) else None,
        concurrency=concurrency if isinstance(concurrency, int) and concurrency > 0
        else DEFAULT_FOR_EACH_CONCURRENCY, retry=retry,
        timeout_seconds=timeout if isinstance(timeout, (int, float)) else None,
        description=str(raw.get("description") or ""), line=line)


class _Inspector:
    """Runs every check over one document and collects problems."""

    def __init__(self, doc: Document, actions: dict[str, Action] | None):
        self.doc = doc
        self.actions = actions
        self.problems: list[Problem] = []
        self.indexes: list[int] = []  # each checked step's position in the file's steps

    def add(self, pointer: str, message: str, group: str) -> None:
        self.problems.append(self.doc.problem(pointer, message, group))

    def step_label(self, index: int, raw: Any) -> str:
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            return f"step '{raw['id']}'"
        return f"step #{index + 1}"

    def run(self) -> Playbook | None:
        data = self.doc.data
        if not isinstance(data, dict):
            self.add("", "a playbook must be a mapping with 'name' and 'steps'", "syntax")
            return None
        self.check_schema(data)
        playbook = self.build(data) if not self.problems else self.build_tolerant(data)
        # A schema error does not hide the rest: the other checks run over what is usable.
        self.check_graph(playbook)
        self.check_expressions(playbook)
        if self.actions is not None:
            self.check_actions(playbook)
        return playbook

    def build(self, data: dict[str, Any]) -> Playbook:
        steps = [_build_step(raw, self.doc.line_of(f"/steps/{i}"))
                 for i, raw in enumerate(data["steps"])]
        self.indexes = list(range(len(steps)))
        return Playbook(name=data["name"], steps=tuple(steps),
                        description=data.get("description", ""),
                        trigger_if=bare_expression(data["trigger"]["if"])
                        if data.get("trigger", {}).get("if") else None,
                        vars=dict(data.get("vars") or {}), source=self.doc.file,
                        text=self.doc.text)

    def build_tolerant(self, data: dict[str, Any]) -> Playbook:
        """The checkable part of a playbook that failed the schema (never run, only checked)."""
        raw_steps: list[Any] = data["steps"] if isinstance(data.get("steps"), list) else []
        steps: list[Step] = []
        self.indexes = []
        for i, raw in enumerate(raw_steps):
            step = _tolerant_step(raw, self.doc.line_of(f"/steps/{i}"))
            if step is not None:
                steps.append(step)
                self.indexes.append(i)
        trigger = data.get("trigger")
        trigger_if = trigger.get("if") if isinstance(trigger, dict) else None
        try:
            trigger_if = bare_expression(trigger_if) if isinstance(trigger_if, str) \
                and trigger_if else None
        except ExpressionError:
            pass
        name, description = data.get("name"), data.get("description")
        return Playbook(name=name if isinstance(name, str) else "", steps=tuple(steps),
                        description=description if isinstance(description, str) else "",
                        trigger_if=trigger_if, source=self.doc.file, text=self.doc.text)

    def raw_step(self, index: int) -> dict[str, Any]:
        raw: dict[str, Any] = self.doc.data["steps"][index]
        return raw

    def check_schema(self, data: dict[str, Any]) -> None:
        for error in schema_errors(_SCHEMA, data):
            path = list(error.absolute_path)
            pointer = pointer_join("", *path)
            if error.validator == "additionalProperties" and isinstance(error.instance, dict) \
                    and isinstance(error.schema, dict):
                extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
                if extra:  # point at the first unknown key itself
                    pointer = pointer_join(pointer, extra[0])
            where = ""
            if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
                where = self.step_label(path[1], data["steps"][path[1]]) + ": "
                rest = path[2:]
                error_path = "/".join(str(p) for p in rest)
            else:
                error_path = "/".join(str(p) for p in path)
            message = _schema_message(error, error_path)
            self.add(pointer, where + message, "syntax")

    def check_graph(self, playbook: Playbook) -> None:
        seen: dict[str, int] = {}
        for index, step in zip(self.indexes, playbook.steps, strict=True):
            pointer = f"/steps/{index}"
            if step.id in seen:
                self.add(pointer + "/id", f"step '{step.id}': duplicate id (first defined as "
                                          f"step #{seen[step.id] + 1})", "graph")
            seen.setdefault(step.id, index)
            for n, need in enumerate(step.needs):
                if need == step.id:
                    self.add(f"{pointer}/needs", f"step '{step.id}': needs itself", "graph")
                elif need not in seen and need not in playbook.by_id:
                    self.add(f"{pointer}/needs/{n}" if len(step.needs) > 1
                             or isinstance(self.raw_step(index).get("needs"), list)
                             else f"{pointer}/needs",
                             f"step '{step.id}': needs unknown step '{need}'", "graph")
            if step.when != When.SUCCESS and not step.needs:
                self.add(f"{pointer}/when", f"step '{step.id}': 'when: {step.when}' only makes "
                                            "sense with 'needs'", "graph")
            if step.for_each is None and "concurrency" in self.raw_step(index):
                self.add(f"{pointer}/concurrency", f"step '{step.id}': 'concurrency' applies "
                                                   "only to a for_each step", "graph")
        for cycle in find_cycles(playbook.graph):
            index = next(i for i, s in zip(self.indexes, playbook.steps, strict=True)
                         if s.id == cycle[0])
            self.add(f"/steps/{index}/needs",
                     "cycle between steps: " + " -> ".join([*cycle, cycle[0]]), "graph")

    def check_expressions(self, playbook: Playbook) -> None:
        if playbook.trigger_if:
            self.check_expression("/trigger/if", "trigger", playbook.trigger_if, set(),
                                  allow_steps=False, allow_item=False)
        for index, step in zip(self.indexes, playbook.steps, strict=True):
            upstream = nx.ancestors(playbook.graph, step.id)
            base = f"/steps/{index}"
            label = f"step '{step.id}'"
            if step.if_:
                self.check_expression(f"{base}/if", label, step.if_, upstream,
                                      allow_item=False)
            if isinstance(step.for_each, str):
                template = self.check_template(f"{base}/for_each", label, step.for_each,
                                               upstream, allow_item=False)
                if template is not None and not (len(template.parts) == 1
                                                 and template.parts[0].is_expression):
                    self.add(f"{base}/for_each", f"{label}: for_each must be a single "
                                                 "'${{ expression }}' giving a list", "expressions")
            for pointer, text in iter_strings(step.with_, f"{base}/with"):
                self.check_template(pointer, label, text, upstream,
                                    allow_item=step.for_each is not None)

    def check_template(self, pointer: str, label: str, text: str, upstream: set[str],
                       allow_item: bool) -> Any:
        if "${{" not in text:
            return None
        try:
            template = compile_template(text)
        except ExpressionError as exc:
            self.add(pointer, f"{label}: {exc}", "expressions")
            return None
        for expression in template.expressions:
            self.check_expression(pointer, label, expression, upstream, allow_item=allow_item)
        return template

    def check_expression(self, pointer: str, label: str, expression: str, upstream: set[str],
                         *, allow_steps: bool = True, allow_item: bool = True) -> None:
        try:
            compile_expression(expression)
            found_roots, steps = referenced_roots(expression)
            traps = negation_traps(expression)
            calls = function_problems(expression)
        except ExpressionError as exc:
            self.add(pointer, f"{label}: {exc}", "expressions")
            return
        for problem in calls:
            self.add(pointer, f"{label}: expression '{expression}': {problem}", "expressions")
        for operand in traps:
            self.add(pointer, f"{label}: expression '{expression}': '!' applies to "
                              f"'{operand}' alone, so what follows reads a field of true/false "
                              "and is always null; put the path in parentheses: "
                              f"!({operand}...)", "expressions")
        roots = [r for r in CONTEXT_ROOTS if (allow_item or r != "item")
                 and (allow_steps or r != "steps")]
        for root in sorted(found_roots - set(roots)):
            hint = " ('item' exists only in a for_each step)" if root == "item" else ""
            self.add(pointer, f"{label}: expression '{expression}' reads '{root}', which is not "
                              f"in the context (use one of: {', '.join(roots)}){hint}",
                     "expressions")
        for ref in sorted(steps):
            if ref not in upstream:
                if not allow_steps:
                    reason = "step outputs are not available here"
                elif ref in self.known_ids:
                    reason = (f"step '{ref}' is not upstream (add it to 'needs', directly or "
                              "through another step)")
                else:
                    reason = f"there is no step '{ref}'"
                self.add(pointer, f"{label}: expression '{expression}' reads steps.{ref}: "
                                  f"{reason}", "expressions")

    @cached_property
    def known_ids(self) -> set[str]:
        steps = self.doc.data.get("steps")
        return {s["id"] for s in steps if isinstance(s, dict) and isinstance(s.get("id"), str)} \
            if isinstance(steps, list) else set()

    def check_actions(self, playbook: Playbook) -> None:
        assert self.actions is not None
        for index, step in zip(self.indexes, playbook.steps, strict=True):
            base = f"/steps/{index}"
            if not step.action:  # not a string: the schema has said so
                continue
            action = self.actions.get(step.action)
            if action is None:
                plugin = step.action.split(".")[0]
                known = sorted(a for a in self.actions if a.startswith(plugin + "."))
                hint = (f" (plugin '{plugin}' offers: {', '.join(known)})" if known
                        else f" (no installed plugin provides '{plugin}.*')")
                self.add(f"{base}/action", f"step '{step.id}': unknown action "
                                           f"'{step.action}'{hint}", "actions")
                continue
            for message, sub in literal_input_problems(action.input_schema, step.with_):
                self.add(pointer_join(f"{base}/with", *sub) if sub else f"{base}/with"
                         if "with" in self.raw_step(index) else base,
                         f"step '{step.id}': {step.action} input {message}", "actions")


def literal_input_problems(schema: dict[str, Any],
                           inputs: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """Schema violations of the literal part of `inputs`; templated values are checked at run
    time, so errors about them (or inside them) are left out."""
    found: list[tuple[str, list[Any]]] = []
    for error in schema_errors(schema, inputs):
        path = list(error.absolute_path)
        value: Any = inputs
        templated = False
        for part in path:
            value = value[part]
            if has_template(value):
                templated = True
                break
        if error.validator not in ("required", "additionalProperties") and has_template(value):
            templated = True
        if not templated:
            found.append((describe_schema_error(error), path))
    return found


def _schema_message(error: Any, path: str) -> str:
    where = f"'{path}'" if path else ""
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        keys = ", ".join(f"'{k}'" for k in extra)
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return (f"{where + ': ' if where else ''}unknown key{'s' if len(extra) > 1 else ''} "
                f"{keys} (allowed: {allowed})")
    if error.validator == "required":
        return (f"{where + ': ' if where else ''}"
                + error.message.replace("is a required property", "is required"))
    if error.validator == "pattern":
        return f"{where}: {error.instance!r} does not match {error.schema['pattern']}"
    if error.validator == "enum":
        options = ", ".join(str(o) for o in error.schema["enum"])
        return f"{where}: {error.instance!r} is not one of {options}"
    if error.validator == "oneOf" and error.context:
        best = min(error.context, key=lambda e: len(list(e.absolute_path)))
        return f"{where}: {best.message}"
    return f"{where + ': ' if where else ''}{error.message}"


def inspect_document(doc: Document, actions: dict[str, Action] | None) -> Playbook:
    inspector = _Inspector(doc, actions)
    playbook = inspector.run()
    if inspector.problems or playbook is None:
        order = {g: i for i, g in enumerate(GROUP_ORDER)}
        problems = sorted(inspector.problems, key=lambda p: (order.get(p.group, 9),
                                                             p.line or 0))
        raise SpecError(problems)
    return playbook


def load_playbook(path: str | Path, actions: dict[str, Action] | None = None) -> Playbook:
    """Load and check a playbook file. Pass the installed actions to check them too."""
    return inspect_document(load_file(path), actions)


def parse_playbook(text: str, actions: dict[str, Action] | None = None,
                   file: str = "<playbook>") -> Playbook:
    return inspect_document(parse_text(text, file), actions)
