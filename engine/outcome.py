"""What a run's end means for the SOC reading it, beyond its status.

A run `succeeded` when every failed step was handled by a `when: failure` step that ran and
succeeded; that is true of a run whose containment all failed and whose escalation worked, and
of one whose approval was rejected or whose wait expired. The outcome fields say so, first as
data, then in one sentence. The conductor builds them into every run record, so `run --json`,
`runs`, `runs show`, `respond`, the timeline and the service all read the same fields:

    handled_failures    [{step, action, error}]  failed steps a `when: failure` step handled
    unhandled_failures  [{step, action, error}]  failed steps nothing handled (the run failed)
    rejected_approvals  [{step, action, error, handled}]  waits answered "reject"
    expired_waits       [{step, action, error, handled}]  waits nobody answered in time
    degraded            the run succeeded, but with any of the above (`--strict` exits 4)
    outcome             "succeeded with 5 handled failures: contain, ...", "succeeded after a
                        rejected approval at await_answer", "failed with 1 unhandled ..."

The two failure lists hold every failed step between them; a rejected approval or an expired
wait is a failed step too, so it is in one of them as well as in its own list (the sentence
names it once, after "after").

Pure: no I/O, no journal; everything comes from the conductor's step states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .kinds import RunStatus

WaitEnd = Literal["rejected", "expired"]

# How runner.settle_waits words a rejection; an expiry is any other failure of a waiting step.
# Read from the error so that journals written before the outcome fields existed show it too.
REJECTED_PREFIX = "rejected by "

OUTCOME_FIELDS = ("handled_failures", "unhandled_failures", "rejected_approvals",
                  "expired_waits", "degraded", "outcome")


@dataclass(frozen=True)
class FailedStep:
    """A failed step of a run: whether a `when: failure` step handled it, and whether it was
    a wait that ended without an approval (`wait`)."""

    step: str
    action: str
    error: str | None
    handled: bool
    wait: WaitEnd | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "action": self.action, "error": self.error}


def wait_end(error: str | None) -> WaitEnd:
    """How a waiting step that failed ended: rejected by someone, or expired unanswered."""
    return "rejected" if (error or "").startswith(REJECTED_PREFIX) else "expired"


def outcome_fields(status: RunStatus, failed: list[FailedStep],
                   waiting: list[str]) -> dict[str, Any]:
    """The outcome fields of a run record (see the module docstring)."""
    rejected = [f for f in failed if f.wait == "rejected"]
    expired = [f for f in failed if f.wait == "expired"]
    handled = [f for f in failed if f.handled]
    return {
        "handled_failures": [f.to_dict() for f in handled],
        "unhandled_failures": [f.to_dict() for f in failed if not f.handled],
        "rejected_approvals": [{**f.to_dict(), "handled": f.handled} for f in rejected],
        "expired_waits": [{**f.to_dict(), "handled": f.handled} for f in expired],
        "degraded": status == RunStatus.SUCCEEDED and bool(handled or rejected or expired),
        "outcome": describe(status, failed, waiting),
    }


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'s' if n != 1 else ''}"


def _names(steps: list[FailedStep]) -> str:
    return ", ".join(f.step for f in steps)


def describe(status: RunStatus, failed: list[FailedStep], waiting: list[str]) -> str:
    """One sentence: the status, then what a reader of the status alone would miss."""
    text = str(status) + (f" at {', '.join(waiting)}" if waiting else "")
    plain = [f for f in failed if f.wait is None]
    clauses = []
    if unhandled := [f for f in plain if not f.handled]:
        clauses.append(f"{_count(len(unhandled), 'unhandled failure')}: {_names(unhandled)}")
    if handled := [f for f in plain if f.handled]:
        clauses.append(f"{_count(len(handled), 'handled failure')}: {_names(handled)}")
    if clauses:
        text += " with " + "; ".join(clauses)
    afters = []
    if rejected := [f for f in failed if f.wait == "rejected"]:
        afters.append(("a rejected approval" if len(rejected) == 1
                       else f"{len(rejected)} rejected approvals") + f" at {_names(rejected)}")
    if expired := [f for f in failed if f.wait == "expired"]:
        afters.append(("an expired wait" if len(expired) == 1
                       else f"{len(expired)} expired waits") + f" at {_names(expired)}")
    if afters:
        text += ("; " if clauses else " ") + "after " + " and ".join(afters)
    return text


def degraded(record: dict[str, Any]) -> bool:
    """Whether a run record says: succeeded, but with handled failures, a rejected approval
    or an expired wait (what `--strict` refuses)."""
    return bool(record.get("degraded"))
