"""The result objects of the run operations (`crownguard.engine.runs`): what the CLI prints
and the service serialises. Plain frozen data; none of them does anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import Config
from .journal import Approval, ResumeFailure, RunRecord
from .kinds import ENDED, ApprovalDecision, RunStatus
from .spec import Playbook
from .undo import LinkedChange, UndoCall


@dataclass(frozen=True)
class RunOutcome:
    """A run after an operation drove or changed it: its run record (as `run --json`)."""

    record: dict[str, Any]
    parent_run_id: str | None = None  # of a rerun: the run it runs again

    @property
    def run_id(self) -> str:
        return str(self.record["run_id"])

    @property
    def status(self) -> RunStatus:
        return RunStatus(self.record["status"])


@dataclass(frozen=True)
class WaitInfo:
    """A waiting step: why, who may answer (empty: anyone) and until when."""

    step: str
    reason: str | None
    approvers: tuple[str, ...]
    expires_at: str | None


@dataclass(frozen=True)
class RunDetail:
    """One run as the journal knows it: the record, its events, answers and open waits."""

    run: RunRecord
    record: dict[str, Any]
    events: list[dict[str, Any]]
    approvals: list[Approval]
    waiting: list[WaitInfo]


@dataclass(frozen=True)
class ResumeAll:
    """What `resume_all` did, run by run: those it resumed; those it skipped, with why (held by
    another live process, ended meanwhile: nothing wrong); those it tried and could not resume
    (`failed`, recorded in the journal); those it did not try because they failed
    RESUME_GIVE_UP_AFTER times the same way (`given_up`)."""

    resumed: list[RunOutcome] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[ResumeFailure] = field(default_factory=list)
    given_up: list[ResumeFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every run that needed resuming was resumed."""
        return not self.failed and not self.given_up


@dataclass(frozen=True)
class AnswerResult:
    """An answer to a waiting step. A refused answer is recorded too (`accepted` False, with
    the `reason`) and resumes nothing; an accepted one resumes the run (`outcome`)."""

    run_id: str
    step: str
    decision: ApprovalDecision
    by: str
    accepted: bool
    reason: str | None = None
    outcome: RunOutcome | None = None


@dataclass(frozen=True)
class UndoPlan:
    """What an undo of a run will do: cancel it first when it has not ended, then `calls`."""

    run: RunRecord
    playbook: Playbook
    config: Config
    calls: list[UndoCall]
    only_step: str | None

    @property
    def cancels_first(self) -> bool:
        return self.run.status not in ENDED


@dataclass(frozen=True)
class UndoResult:
    """An undo: the original run's cancellation (when it had not ended; None in a dry run),
    the undo calls made and the undo run's outcome (not journaled in a dry run)."""

    run_id: str
    undo_run_id: str
    calls: list[UndoCall]
    cancelled: RunOutcome | None
    outcome: RunOutcome
    dry_run: bool
    linked: tuple[LinkedChange, ...] = ()  # what the run led to outside its steps, taken back
