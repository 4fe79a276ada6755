"""A readable, live timeline of a run's events for the terminal.

The timeline is a display: whatever goes wrong in it (a stream that cannot take a character,
a closed pipe, an event it does not understand) is logged once and never reaches the run.
Symbols fall back to ASCII when the stream cannot encode them, colour is used only on a TTY
without NO_COLOR, the step column is as wide as the playbook's longest step id (up to
MAX_STEP_WIDTH, longer ones are cut), output summaries are cut to the terminal's width, and
text from events is shown with its control characters escaped (console.printable).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterable
from typing import Any, TextIO

from ..dryrun import ANSWER_WORDS, BRANCH_EVENT
from ..kinds import EventType, StepStatus
from .console import (
    COLORS,
    UNICODE_SYMBOLS,
    columns,
    fit,
    paint,
    printable,
    symbols_for,
    use_color,
)

log = logging.getLogger(__name__)

# The Unicode set, by status; a Timeline shows `self._mark(status)`, which falls back to ASCII
# and colours where the stream wants it.
SYMBOLS = {status: UNICODE_SYMBOLS[str(status)] for status in (
    StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.WAITING,
    StepStatus.CANCELLED)}
MIN_STEP_WIDTH, MAX_STEP_WIDTH = 14, 40


def _short(value: Any, limit: int = 90, ellipsis: str = "…") -> str:
    if isinstance(value, dict) and "status_code" in value and "body" in value:
        head = f"HTTP {value['status_code']} "
        return head + _short(value["body"], limit - len(head), ellipsis)
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return fit(text, max(limit, 8), ellipsis)


class Timeline:
    """An event sink that prints one line per step event as it happens."""

    def __init__(self, out: TextIO | None = None, indent: str = "  ", width: int | None = None,
                 *, steps: Iterable[str] = (), color: bool | None = None):
        """`steps`: the playbook's step ids, so the step column fits the longest of them."""
        self.out = out or sys.stdout
        self.indent = indent
        longest = max((len(s) for s in steps), default=0)
        self.width = width or min(max(MIN_STEP_WIDTH, longest), MAX_STEP_WIDTH)
        self.symbols = symbols_for(self.out)
        self.color = use_color(self.out) if color is None else color
        self._lock = threading.Lock()
        self._t0: str | None = None
        self._broken = False
        self._dry_run = False
        self._depth = 0  # a dry run's answer branch being shown (nested waits deeper)

    def _clock(self, at: str) -> str:
        return at[11:23] if len(at) >= 23 else at

    def __call__(self, event: dict[str, Any]) -> None:
        """Show one event; never raises (a display failure must not fail the run)."""
        try:
            line = self._line(event)
            if line is None:
                return
            with self._lock:
                self.out.write(f"{self.indent}{self._clock(str(event.get('at', '')))}  "
                               f"{'    ' * self._depth}{line}\n")
                if event.get("type") == BRANCH_EVENT:
                    self._depth += 1  # what follows is this answer's path
                self.out.flush()
        except Exception as exc:
            if not self._broken:  # said once: a closed pipe would say it for every event
                self._broken = True
                log.warning("the timeline cannot show the run's events (%s: %s); the run "
                            "goes on", type(exc).__name__, exc)

    def _mark(self, status: str) -> str:
        return paint(self.symbols[status], COLORS.get(status), self.color)

    def _step(self, step: Any) -> str:
        return f"{fit(printable(step), self.width, self.symbols['ellipsis']):<{self.width}}"

    def _fits(self, value: Any, used: int) -> str:
        """`value` summarised to what is left of the terminal's width after `used`."""
        room = columns() - len(self.indent) - len("00:00:00.000  ") - used
        return printable(_short(value, max(room, 20), self.symbols["ellipsis"]))

    def _line(self, event: dict[str, Any]) -> str | None:
        kind = event["type"]
        step = self._step(event.get("step", ""))
        text = printable
        line: str | None = None
        if kind == EventType.RUN_STARTED:
            self._dry_run = bool(((event.get("inputs") or {}).get("run") or {}).get("dry_run"))
            self._depth = 0
            line = (f"run {text(event['run_id'])[:12]} of playbook '{text(event.get('playbook'))}'"
                    " started")
        elif kind == BRANCH_EVENT:
            self._depth = int(event.get("depth") or 1) - 1
            answer = text(ANSWER_WORDS.get(event["answer"], event["answer"]))
            line = (f"{self.symbols['branch']} dry run: if {step.rstrip()} is {answer}, the run "
                    "goes on:")
        elif kind == EventType.RUN_RESUMED:
            again = ", ".join(text(s) for s in event.get("requeued") or []) or "none"
            line = f"run resumed (in flight before, started again: {again})"
        elif kind == EventType.STEP_STARTED:
            item = f" item {text(event['item'])}" if event.get("item") is not None else ""
            attempt = f" (attempt {event['attempt']})" if event.get("attempt", 1) > 1 else ""
            line = f"{self.symbols['started']} {step} started{item}{attempt}"
        elif kind == EventType.ATTEMPT_FAILED:
            retry = (f", retrying in {event['retry_in']:.2f}s" if event.get("retry_in") is not None
                     else "")
            line = f"{paint('!', COLORS['attempt_failed'], self.color)} {step} attempt " \
                   f"{event.get('attempt')} failed: {text(event.get('error'))}{retry}"
        elif kind == EventType.STEP_SUCCEEDED and isinstance(event.get("output"), dict) \
                and event["output"].get("dry_run") and event["output"].get("would_call"):
            output = event["output"]
            line = f"~ {step} would call {text(output['would_call'])}"
            if output.get("depends_on_not_run"):
                line += (" (inputs depend on steps not run in a dry run: "
                         f"{', '.join(text(s) for s in output['depends_on_not_run'])})")
            if output.get("for_each") is not None:
                line += " for each item of "
                line += self._fits(output["for_each"], len(line))
            else:
                line += f" {self._fits(output.get('inputs'), len(line) + 1)}"
            if output.get("if_depends_on_not_run"):
                line += (f"; only if {text(output['if'])} (depends on "
                         + ", ".join(f"steps.{text(s)}.output"
                                     for s in output["if_depends_on_not_run"])
                         + ", not known in a dry run), otherwise skipped")
        elif kind == EventType.STEP_SUCCEEDED:
            used = len(f"{self.symbols['succeeded']} {step} succeeded ")
            line = f"{self._mark('succeeded')} {step} succeeded " \
                   f"{self._fits(event.get('output'), used)}"
        elif kind == EventType.STEP_FAILED:
            line = f"{self._mark('failed')} {step} failed: {text(event.get('error'))}"
        elif kind == EventType.STEP_SKIPPED:
            line = f"{self._mark('skipped')} {step} skipped ({text(event.get('reason'))})"
        elif kind == EventType.STEP_WAITING:
            line = f"{self._mark('waiting')} {step} waiting: {text(event.get('reason', ''))}"
            if self._dry_run:
                line += " (dry run: what would run after each answer follows)"
        elif kind == EventType.RUN_FINISHED:
            # The outcome (succeeded with handled failures...) where the runner wrote one.
            ended = event.get("outcome") or event.get("status")
            line = (f"run finished: {ended}" if not self._depth
                    else f"after this answer the run would end {ended}")
        elif kind == EventType.RUN_CANCELLED:
            steps = ", ".join(text(s) for s in event.get("cancelled_steps") or []) or "none"
            line = (f"{self._mark('cancelled')} run cancelled: "
                    f"{text(event.get('reason') or 'no reason')}; steps cancelled: {steps}")
        return line


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
        rows.append((sid, str(step["status"]), str(step["attempts"]),
                     printable(step["error"] or "")))
    # The error column takes what the terminal has left (never less than 30 characters).
    used = sum(max(len(r[i]) for r in rows) + 2 for i in range(3))
    room = max(30, columns() - used - 2)
    rows[1:] = [(*r[:3], fit(r[3], room)) for r in rows[1:]]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
