"""A readable, live timeline of a run's events for the terminal."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO

from ..dryrun import ANSWER_WORDS, BRANCH_EVENT
from ..kinds import EventType, StepStatus

SYMBOLS = {StepStatus.SUCCEEDED: "✔", StepStatus.FAILED: "✘", StepStatus.SKIPPED: "↷",
           StepStatus.WAITING: "⏸", StepStatus.CANCELLED: "■"}


def _short(value: Any, limit: int = 90) -> str:
    if isinstance(value, dict) and "status_code" in value and "body" in value:
        return f"HTTP {value['status_code']} " + _short(value["body"], limit - 9)
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Timeline:
    """An event sink that prints one line per step event as it happens."""

    def __init__(self, out: TextIO | None = None, indent: str = "  ", width: int = 14):
        self.out = out or sys.stdout
        self.indent = indent
        self.width = width
        self._lock = threading.Lock()
        self._t0: str | None = None
        self._dry_run = False
        self._depth = 0  # a dry run's answer branch being shown (nested waits deeper)

    def _clock(self, at: str) -> str:
        return at[11:23] if len(at) >= 23 else at

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        step = event.get("step", "")
        line: str | None = None
        if kind == EventType.RUN_STARTED:
            self._dry_run = bool(((event.get("inputs") or {}).get("run") or {}).get("dry_run"))
            self._depth = 0
            line = f"run {event['run_id'][:12]} of playbook '{event.get('playbook')}' started"
        elif kind == BRANCH_EVENT:
            self._depth = int(event.get("depth") or 1) - 1
            line = (f"⑂ dry run: if {step} is "
                    f"{ANSWER_WORDS.get(event['answer'], event['answer'])}, the run goes on:")
        elif kind == EventType.RUN_RESUMED:
            again = ", ".join(event.get("requeued") or []) or "none"
            line = f"run resumed (in flight before, started again: {again})"
        elif kind == EventType.STEP_STARTED:
            item = f" item {event['item']}" if event.get("item") is not None else ""
            attempt = f" (attempt {event['attempt']})" if event.get("attempt", 1) > 1 else ""
            line = f"▶ {step:<{self.width}} started{item}{attempt}"
        elif kind == EventType.ATTEMPT_FAILED:
            retry = (f", retrying in {event['retry_in']:.2f}s" if event.get("retry_in") is not None
                     else "")
            line = f"! {step:<{self.width}} attempt {event.get('attempt')} failed: " \
                   f"{event.get('error')}{retry}"
        elif kind == EventType.STEP_SUCCEEDED and isinstance(event.get("output"), dict) \
                and event["output"].get("dry_run") and event["output"].get("would_call"):
            output = event["output"]
            line = f"~ {step:<{self.width}} would call {output['would_call']}"
            if output.get("depends_on_not_run"):
                line += (" (inputs depend on steps not run in a dry run: "
                         f"{', '.join(output['depends_on_not_run'])})")
            if output.get("for_each") is not None:
                line += f" for each item of {_short(output['for_each'], 120)}"
            else:
                line += f" {_short(output.get('inputs'), 120)}"
            if output.get("if_depends_on_not_run"):
                line += (f"; only if {output['if']} (depends on "
                         + ", ".join(f"steps.{s}.output" for s in output["if_depends_on_not_run"])
                         + ", not known in a dry run), otherwise skipped")
        elif kind == EventType.STEP_SUCCEEDED:
            output = _short(event.get("output"))
            line = f"{SYMBOLS[StepStatus.SUCCEEDED]} {step:<{self.width}} succeeded {output}"
        elif kind == EventType.STEP_FAILED:
            line = f"{SYMBOLS[StepStatus.FAILED]} {step:<{self.width}} failed: {event.get('error')}"
        elif kind == EventType.STEP_SKIPPED:
            line = (f"{SYMBOLS[StepStatus.SKIPPED]} {step:<{self.width}} skipped "
                    f"({event.get('reason')})")
        elif kind == EventType.STEP_WAITING:
            line = (f"{SYMBOLS[StepStatus.WAITING]} {step:<{self.width}} waiting: "
                    f"{event.get('reason', '')}")
            if self._dry_run:
                line += " (dry run: what would run after each answer follows)"
        elif kind == EventType.RUN_FINISHED:
            line = (f"run finished: {event.get('status')}" if not self._depth
                    else f"after this answer the run would end {event.get('status')}")
        elif kind == EventType.RUN_CANCELLED:
            steps = ", ".join(event.get("cancelled_steps") or []) or "none"
            line = (f"{SYMBOLS[StepStatus.CANCELLED]} run cancelled: "
                    f"{event.get('reason') or 'no reason'}; steps cancelled: {steps}")
        if line is None:
            return
        with self._lock:
            self.out.write(f"{self.indent}{self._clock(event['at'])}  {'    ' * self._depth}"
                           f"{line}\n")
            if kind == BRANCH_EVENT:
                self._depth += 1
            self.out.flush()


def dry_run_branches(record: dict[str, Any], indent: str = "") -> list[str]:
    """A dry run's answers to its waits, one line each (nested waits indented)."""
    lines = []
    for branch in record.get("branches") or []:
        lines.append(f"{indent}{branch['summary']}")
        lines += dry_run_branches(branch, indent + "  ")
    return lines


def summary_table(record: dict[str, Any]) -> str:
    rows = [("step", "status", "attempts", "error")]
    for sid, step in record["steps"].items():
        rows.append((sid, step["status"], str(step["attempts"]), (step["error"] or "")[:70]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
