"""What a dry run cannot know: the outputs of the steps it did not call, and the answers to
its waits.

A dry run calls no side-effecting action. A later step whose inputs read such a step's output
(`steps.ticket.output.key`) cannot be rendered truly either: it is shown, not called, and its
schema check skips exactly the values that depend on those outputs. These helpers find those
values; the runner decides what to do with them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .errors import ExpressionError
from .expressions import Reads, compile_template, has_template, reads, render
from .kinds import EventType, RunStatus, StepStatus


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


# --- waits: what would run after each answer ---------------------------------------------------

BRANCH_EVENT = "dry_run_branch"  # for a live timeline only: never applied nor journaled
MAX_BRANCHES = 27  # answers played in all, nested waits included (3 waits deep at 3 answers)
ANSWER_WORDS = {"approve": "approved", "reject": "rejected", "expire": "not answered in time"}

# Plays a run on from its events after one answer event: (the record, all events so far).
Continuation = Callable[[list[dict[str, Any]], dict[str, Any]],
                        tuple[dict[str, Any], list[dict[str, Any]]]]


def answer_events(step_id: str, waiting: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The answers a wait can get in a dry run, with the event each settles it with: approve
    (an answer whose `by` and `comment` are not known), reject and, when it has a deadline,
    expire (the step fails, as for real)."""
    approvers = (waiting.get("data") or {}).get("approvers") or []
    who = " or ".join(str(a) for a in approvers) or "an approver"
    answers: list[tuple[str, dict[str, Any]]] = [
        ("approve", {"type": EventType.STEP_SUCCEEDED, "step": step_id, "output_unknown": True,
                     "output": {"dry_run": True, "decision": "approve", "by": None,
                                "comment": None}}),
        ("reject", {"type": EventType.STEP_FAILED, "step": step_id,
                    "error": f"rejected by {who} (in a dry run: who and why are not known)"}),
    ]
    if waiting.get("expires_at"):
        answers.append(("expire", {"type": EventType.STEP_FAILED, "step": step_id,
                                   "error": f"no answer before {waiting['expires_at']}"}))
    return answers


def plan_answers(record: dict[str, Any], events: list[dict[str, Any]], play: Continuation,
                 on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """A dry run that reached a wait, with what would run after each of its answers.

    A dry run does not stop at a wait (core.wait_for_approval, a justification request): the
    record gains `branches`, one per answer, each with its status, the steps it changes (and
    its own `branches` when it waits again) and a `summary` in words. The run's status is the
    worst of them (failed, else waiting when some branch was not played, else succeeded)."""
    budget = [MAX_BRANCHES]
    branches = _branches(record, events, play, on_event, 1, budget)
    status = _worst(branches)
    waits = ", ".join(sorted({b["after"] for b in branches}))
    # The outcome sentence follows the status: the paths' worst, not the wait the plan began at.
    outcome = f"{status}: the worst of the dry run's paths after each answer at {waits}"
    return {**record, "status": status, "outcome": outcome, "branches": branches}


def _branches(record: dict[str, Any], events: list[dict[str, Any]], play: Continuation,
              on_event: Callable[[dict[str, Any]], None] | None, depth: int,
              budget: list[int]) -> list[dict[str, Any]]:
    step_id = next(sid for sid, s in record["steps"].items()
                   if s["status"] == StepStatus.WAITING)
    waiting: dict[str, Any] = next((e for e in reversed(events) if e.get("step") == step_id
                    and e["type"] == EventType.STEP_WAITING), {})
    branches: list[dict[str, Any]] = []
    for answer, event in answer_events(step_id, waiting):
        if budget[0] <= 0:
            break
        budget[0] -= 1
        if on_event is not None:
            on_event({"type": BRANCH_EVENT, "run_id": record["run_id"], "step": step_id,
                      "answer": answer, "depth": depth, "at": _now()})
        after, after_events = play(events, event)
        changed = {sid: s for sid, s in after["steps"].items() if s != record["steps"][sid]}
        branch: dict[str, Any] = {"after": step_id, "answer": answer,
                                  "status": after["status"], "steps": changed}
        if after["status"] == RunStatus.WAITING and budget[0] > 0:
            branch["branches"] = _branches(after, after_events, play, on_event, depth + 1,
                                           budget)
            branch["status"] = _worst(branch["branches"])
        branch["summary"] = describe_branch(branch)
        branches.append(branch)
    return branches


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _worst(branches: list[dict[str, Any]]) -> str:
    statuses = {b["status"] for b in branches}
    for status in (RunStatus.FAILED, RunStatus.WAITING, RunStatus.CANCELLED):
        if status in statuses:
            return str(status)
    return str(RunStatus.SUCCEEDED)


def describe_branch(branch: dict[str, Any]) -> str:
    """One branch in words: `if await_answer is approved: would run record_answer
    (jira.add_comment); skipped escalate; the run would end succeeded`."""
    groups: dict[str, list[str]] = {}
    for sid, step in branch["steps"].items():
        if sid == branch["after"]:
            continue
        output = step.get("output")
        status = str(step["status"])
        label = sid
        if isinstance(output, dict) and output.get("dry_run") and output.get("would_call"):
            status = "would run"
            label += f" ({output['would_call']}" + (
                f", only if {output['if']}" if output.get("if") else "") + ")"
        groups.setdefault(status, []).append(label)
    order = ["would run", "succeeded", "failed", "waiting", "skipped"]
    parts = [f"{status} {', '.join(groups[status])}"
             for status in sorted(groups, key=lambda s: order.index(s) if s in order else 9)]
    what = "; ".join(parts) if parts else "nothing more runs"
    return (f"if {branch['after']} is {ANSWER_WORDS.get(branch['answer'], branch['answer'])}: "
            f"{what}; the run would end {branch['status']}")
