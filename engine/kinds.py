"""Every status and kind of the generic engine, spelled once, and the sets built from them.

Compare with these, never with their strings: `state.status == StepStatus.WAITING`,
`run.status in ENDED`. They are `StrEnum`s, so they serialise (journal, JSON, the run record)
as their plain values and compare equal to them.
"""

from __future__ import annotations

from enum import StrEnum


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class RunStatus(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EventType(StrEnum):
    RUN_STARTED = "run_started"
    RUN_RESUMED = "run_resumed"        # a later process took the run up again (audit only)
    STEP_STARTED = "step_started"      # an attempt (of one for_each item) begins
    ATTEMPT_FAILED = "attempt_failed"  # an attempt failed; retry_in says whether another comes
    ITEM_SUCCEEDED = "item_succeeded"  # one for_each item finished
    STEP_WAITING = "step_waiting"
    STEP_SUCCEEDED = "step_succeeded"
    STEP_FAILED = "step_failed"
    STEP_SKIPPED = "step_skipped"
    RUN_CANCELLED = "run_cancelled"
    RUN_FINISHED = "run_finished"


class When(StrEnum):
    """When a step runs, given the statuses of the steps it needs."""

    SUCCESS = "success"  # all its needs succeeded
    FAILURE = "failure"  # any of its needs failed
    ALWAYS = "always"    # all its needs are final, whatever became of them


class RunKind(StrEnum):
    RUN = "run"
    UNDO = "undo"
    RERUN = "rerun"  # a new run of an ended run's playbook, inputs and event (parent_run_id)


class ApprovalDecision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class LeaseHolder(StrEnum):
    """Who holds a run's lease, as the journal sees it from this process."""

    MINE = "mine"  # this process
    HELD = "held"  # another live process, lease current
    FREE = "free"  # nobody (never held, lease lapsed, or its holder is dead)


class EntryKind(StrEnum):
    """What a journal entry records."""

    RUN = "run"            # a run was created
    EVENT = "event"        # a run event from the runner (step_started, ...)
    STATUS = "status"      # a run's status was set (resumed, waiting, cancelled by hand)
    APPROVAL = "approval"  # an approval decision, accepted or refused
    ACCESS = "access"      # a change of a model access request (run id `access:<id>`)


class ProblemKind(StrEnum):
    """What verification found wrong with an entry."""

    EDITED = "edited"          # its content no longer matches its hash, or it was rehashed
    REMOVED = "removed"        # entries are missing (a gap, a broken link, a cut tail)
    REORDERED = "reordered"    # an intact entry sits at another place than it was written
    INSERTED = "inserted"      # an entry or row that the chain never recorded
    INCOMPLETE = "incomplete"  # verification stopped after too many problems
    DAMAGED = "damaged"        # the file itself is unreadable (integrity check, garbage line)


class ResumeFailureKind(StrEnum):
    """Why `resume` could not drive a run (recorded per run, shown by `runs`)."""

    CONFIG = "config"      # its connections file is gone or does not load (an unset env var)
    PLAYBOOK = "playbook"  # its stored playbook text no longer parses (a plugin was removed)
    FORGED = "forged"      # an approvals row does not match its chained audit entry
    CRASH = "crash"        # anything else raised while resuming it


# Steps --------------------------------------------------------------------------------------

# A final step takes no further event but a run_cancelled's (which only moves the others).
FINAL = frozenset({StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED,
                   StepStatus.CANCELLED})
# A run_cancelled event moves every step that is not final to cancelled.
CANCELLABLE = frozenset(StepStatus) - FINAL
# Steps a process is busy with or that wait for an answer: the run has not ended.
IN_FLIGHT = frozenset({StepStatus.RUNNING, StepStatus.WAITING})

# Runs ---------------------------------------------------------------------------------------

# A run that has ended takes no more steps: it cannot be resumed, answered or cancelled.
ENDED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
# An ended run that may be run again (`rerun`): one that did not succeed.
RERUNNABLE = frozenset({RunStatus.FAILED, RunStatus.CANCELLED})


class FaultKind(StrEnum):
    """What a mock server's `inject()` makes the next matching requests do."""

    LATENCY = "latency"              # answer late
    STATUS = "status"                # answer an error status (429, 5xx...)
    TIMEOUT = "timeout"              # answer only after the client gave up
    MALFORMED = "malformed"          # a 200 whose body is not JSON
    RESET = "reset"                  # an empty, connection-closing answer
    LOST_RESPONSE = "lost_response"  # apply the request, then lose the answer

