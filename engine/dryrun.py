"""What a dry run cannot know: the outputs of the steps it did not call.

A dry run calls no side-effecting action. A later step whose inputs read such a step's output
(`steps.ticket.output.key`) cannot be rendered truly either: it is shown, not called, and its
schema check skips exactly the values that depend on those outputs. These helpers find those
values; the runner decides what to do with them.
"""

from __future__ import annotations

from typing import Any

from .errors import ExpressionError
from .expressions import Reads, compile_template, has_template, reads, render


def outputs_read(read: Reads, candidates: set[str]) -> set[str]:
    """Which of the `candidates` step ids an expression that reads `read` takes the output
    of (`steps.<id>.status` and `.error` are not outputs; reading all of `steps` reads each)."""
    if not isinstance(read, dict):
        return set(candidates)  # `@` or the like: everything
    steps = read.get("steps")
    if steps is None:
        return set()
    if not isinstance(steps, dict):
        return set(candidates)
    return {sid for sid, sub in steps.items() if sid in candidates
            and (not isinstance(sub, dict) or "output" in sub)}


def outputs_not_called(template: str, not_called: set[str]) -> set[str]:
    """The steps of `not_called` whose output the template reads."""
    found: set[str] = set()
    if not_called:
        for expression in compile_template(template).expressions:
            found |= outputs_read(reads(expression), not_called)
    return found


def render_dry(value: Any, context: dict[str, Any], not_called: set[str],
               unknown: dict[tuple[str | int, ...], set[str]],
               path: tuple[str | int, ...] = ()) -> Any:
    """`render`, noting in `unknown` (by path) each value that reads a not-called step's
    output; such a value that fails to render is null (unknown all the same)."""
    if isinstance(value, str):
        steps = outputs_not_called(value, not_called) if has_template(value) else set()
        if not steps:
            return render(value, context)
        unknown[path] = steps
        try:
            return render(value, context)
        except ExpressionError:
            return None  # e.g. a function given the missing output
    if isinstance(value, dict):
        return {k: render_dry(v, context, not_called, unknown, (*path, k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [render_dry(v, context, not_called, unknown, (*path, i))
                for i, v in enumerate(value)]
    return value
