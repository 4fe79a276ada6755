"""The journal's interface and records: what any journal implementation stores and returns,
and who is writing a run (its owner process). Run kinds and statuses are in `kinds`."""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ..errors import JournalError
from ..kinds import (
    ApprovalDecision,
    LeaseHolder,
    ProblemKind,
    ResumeFailureKind,
    RunKind,
    RunStatus,
)
from .audit import (
    APPROVAL_FIELDS,
    ChainEntry,
    ChainProblem,
)
from .waits import OpenWait

ENV_JOURNAL = "CROWNGUARD_JOURNAL"
SCHEMA_VERSION = 3  # 2: entries chain `at` and `type` (column v); resume_failures; 3: open_waits
# A run that failed to resume this many times in a row for the same reason is given up on:
# `resume --all` skips it until asked (`--retry-failed`), `resume RUN_ID` still tries.
RESUME_GIVE_UP_AFTER = 3
DEFAULT_LEASE_SECONDS = 300.0
DEFAULT_BUSY_TIMEOUT = 30.0


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def default_journal_path(env: Mapping[str, str] | None = None) -> Path:
    """`$CROWNGUARD_JOURNAL`, else `$XDG_STATE_HOME/crownguard/journal.sqlite`, else
    `~/.local/state/crownguard/journal.sqlite` (XDG: a relative XDG_STATE_HOME is ignored)."""
    env = os.environ if env is None else env
    if env.get(ENV_JOURNAL):
        return Path(env[ENV_JOURNAL]).expanduser()
    state = env.get("XDG_STATE_HOME", "")
    if state and Path(state).is_absolute():
        return Path(state) / "crownguard" / "journal.sqlite"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".local" / "state" / "crownguard" / "journal.sqlite"


# the writer of a run ---------------------------------------------------------------------------

def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a Linux process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


_CURRENT: dict[int, ProcessIdentity] = {}


@dataclass(frozen=True)
class ProcessIdentity:
    """Which process writes a run: host, pid, boot id and start time tell a live writer from a
    dead one whose pid was reused. Start time and boot id are known on Linux only."""

    host: str
    pid: int
    boot_id: str = ""
    started: str = ""

    @classmethod
    def current(cls) -> ProcessIdentity:
        pid = os.getpid()
        if pid not in _CURRENT:  # recomputed in a forked child
            stat = _proc_stat(pid)
            _CURRENT[pid] = cls(socket.gethostname(), pid, _boot_id(), stat[1] if stat else "")
        return _CURRENT[pid]

    def alive(self) -> bool | None:
        """True or False for a process on this host; None when it cannot be known (another
        host): then only the lease says whether the run is abandoned."""
        here = ProcessIdentity.current()
        if self.host != here.host or os.name == "nt":  # Windows: os.kill(pid, 0) is Ctrl-C
            return None
        if self.boot_id and here.boot_id and self.boot_id != here.boot_id:
            return False  # the machine rebooted since
        if self == here:
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by another user
        stat = _proc_stat(self.pid)
        if stat is None:
            return True  # no /proc: the pid exists, that is all we know
        state, started = stat
        if state in ("Z", "X"):
            return False  # killed, not yet reaped
        return not (self.started and started != self.started)  # else: the pid was reused


# records -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunRecord:
    """A run as the journal knows it (its events come from `events(run_id)`)."""

    run_id: str
    playbook: str
    playbook_path: str | None
    playbook_text: str
    playbook_sha256: str
    inputs: dict[str, Any]
    status: RunStatus
    kind: RunKind
    parent_run_id: str | None
    config_path: str | None
    created_at: str
    updated_at: str
    owner: ProcessIdentity | None
    lease_expires: float | None
    seq: int  # the chained entry that created it

    def to_dict(self, with_text: bool = True) -> dict[str, Any]:
        data = asdict(self)
        data["status"], data["kind"] = str(self.status), str(self.kind)
        if not with_text:
            del data["playbook_text"]
        return data


@dataclass(frozen=True)
class Approval:
    """A decision on a waiting step; `accepted` is False when it was refused (and why)."""

    run_id: str
    step_id: str
    decision: ApprovalDecision
    by: str
    comment: str | None
    at: str
    accepted: bool
    reason: str | None
    seq: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "decision": str(self.decision)}


@dataclass(frozen=True)
class ResumeFailure:
    """Why resuming a run failed last, and how many times in a row it failed that way."""

    run_id: str
    kind: ResumeFailureKind
    reason: str
    count: int
    first_at: str
    last_at: str

    @property
    def given_up(self) -> bool:
        return self.count >= RESUME_GIVE_UP_AFTER

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": str(self.kind), "given_up": self.given_up}


def lease_holder(owner: ProcessIdentity | None, lease_expires: float | None, now: float
                 ) -> LeaseHolder:
    """Who holds a run's lease now: nobody (FREE), this process, or another live one."""
    if owner is None or lease_expires is None or lease_expires < now:
        return LeaseHolder.FREE
    if owner == ProcessIdentity.current():
        return LeaseHolder.MINE
    return LeaseHolder.FREE if owner.alive() is False else LeaseHolder.HELD


# the interface ---------------------------------------------------------------------------------

class Journal(ABC):
    """Durable run state and audit trail. Implementations must make `append` durable and
    atomic (with its chain link) before it returns, and be safe across threads and processes.
    A journal is also the runner's event sink: `Runner(host, journal=journal)`."""

    def __call__(self, event: dict[str, Any]) -> None:
        self.append(event)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def create_run(self, run_id: str, playbook: str, playbook_text: str, *,
                   inputs: dict[str, Any], playbook_path: str | None = None,
                   kind: RunKind | str = RunKind.RUN, parent_run_id: str | None = None,
                   config_path: str | None = None,
                   status: RunStatus | str = RunStatus.RUNNING) -> RunRecord:
        """Record a new run owned (leased) by this process; inputs are redacted by the caller."""

    @abstractmethod
    def append(self, event: dict[str, Any]) -> int:
        """Store one runner event durably and return its seq. A run_finished or run_cancelled
        event sets the run's status. Raises RunHeldElsewhere if another live process holds the
        run, UnknownRun if there is no such run, RunEnded for any event of a cancelled run and
        for a run_cancelled of a run that has ended."""

    def append_many(self, events: list[dict[str, Any]]) -> list[int]:
        """Store the events of one run, in order, as `append` would, all or none (one
        transaction where the journal has them); returns their seqs. What the runner calls
        with the events of one scheduling round."""
        return [self.append(event) for event in events]

    @abstractmethod
    def events(self, run_id: str) -> list[dict[str, Any]]:
        """The run's events in the order they were appended (what `Runner.resume` replays)."""

    @abstractmethod
    def entries(self, run_id: str | None = None, since_seq: int = 0) -> Iterator[ChainEntry]:
        """Chain entries in seq order (all kinds), for timelines and export."""

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord:
        """The run, or UnknownRun."""

    @abstractmethod
    def find_runs(self, prefix: str, limit: int = 2) -> list[RunRecord]:
        """Runs whose id starts with `prefix`, at most `limit`, in id order."""

    @abstractmethod
    def list_runs(self, status: RunStatus | str | None = None, limit: int = 100, *,
                  kind: RunKind | str | None = None, parent_run_id: str | None = None
                  ) -> list[RunRecord]:
        """Runs, newest first."""

    @abstractmethod
    def set_status(self, run_id: str, status: RunStatus | str, *, reason: str | None = None
                   ) -> None:
        """Set a run's status (a chained entry); any status but running frees its lease. A
        cancelled run stays cancelled (RunEnded)."""

    @abstractmethod
    def interrupted_runs(self) -> list[RunRecord]:
        """Runs still `running` whose writer is gone or whose lease expired."""

    @abstractmethod
    def runs_page(self, status: RunStatus | str, after_seq: int = 0, limit: int = 500
                  ) -> list[RunRecord]:
        """Up to `limit` runs of one status created after the run at `after_seq`, oldest
        first: page through all of them by passing the last one's `seq` on."""

    @abstractmethod
    def record_resume_failure(self, run_id: str, kind: ResumeFailureKind | str, reason: str
                              ) -> ResumeFailure:
        """Record that resuming the run failed (counted while the kind and reason repeat) and
        free this process's lease on it, so that a later resume can take it."""

    @abstractmethod
    def clear_resume_failure(self, run_id: str) -> None:
        """Forget the run's resume failures (it was resumed)."""

    @abstractmethod
    def resume_failures(self, run_ids: list[str] | None = None) -> dict[str, ResumeFailure]:
        """The recorded resume failures, of these runs or of all."""

    @abstractmethod
    def claim(self, run_id: str) -> bool:
        """Take the run for this process (to resume it) unless a live process holds it or it
        has finished; sets it `running`. False when it cannot be taken."""

    @abstractmethod
    def renew_lease(self, run_id: str) -> bool:
        """Extend this process's lease on the run (a heartbeat); False if it does not hold it."""

    @abstractmethod
    def record_approval(self, run_id: str, step_id: str, decision: ApprovalDecision | str,
                        by: str, *, comment: str | None = None, accepted: bool = True,
                        reason: str | None = None, at: str | None = None) -> Approval:
        """Record an approval decision, refused ones too (accepted=False with the reason)."""

    @abstractmethod
    def approvals(self, run_id: str) -> list[Approval]:
        """The run's approval decisions in order."""

    def record_access_event(self, request_id: str, change: str, payload: dict[str, Any], *,
                            beside: Callable[[Any, int], None] | None = None) -> int:
        """Chain one change of a model access request (not a run: its run id is
        `access:<request_id>`); `beside(connection, seq)` writes the store's own row in the
        same transaction, and an exception from it undoes the entry. Returns the entry's seq."""
        raise JournalError(f"{type(self).__name__} does not record access requests")

    def approval_problems(self, run_id: str) -> list[ChainProblem]:
        """The run's approvals rows that do not match their chained entry (or have none, or
        whose entry no longer matches its hash): what must not be acted on."""
        rows = self.approvals(run_id)
        if not rows:
            return []
        chained = {e.seq: e for e in self.entries(run_id) if e.kind == "approval"}
        problems = []
        for row in rows:
            entry = chained.get(row.seq)
            why = None
            if entry is None:
                why = "an approval row the chain never recorded"
            elif entry.computed_hash() != entry.hash:
                why = "its chained entry no longer matches its hash"
            else:
                payload = entry.payload if isinstance(entry.payload, dict) else {}
                recorded = {**row.to_dict(), "decision": str(row.decision)}
                differs = [f for f in APPROVAL_FIELDS if payload.get(f) != recorded[f]]
                if differs:
                    why = ("the approval row differs from its chained entry in: "
                           f"{', '.join(differs)}")
            if why:
                problems.append(ChainProblem(ProblemKind.EDITED if entry else
                                             ProblemKind.INSERTED, row.seq, run_id,
                                             "approval", why))
        return problems

    # The open waits (kept with each wait's event; see `waits`): what a timer reads instead of
    # rebuilding every waiting run.

    @abstractmethod
    def open_waits(self, run_id: str) -> list[OpenWait]:
        """The run's steps waiting now, in the order they started waiting."""

    @abstractmethod
    def due_waits(self, now: float, *, after: OpenWait | None = None, limit: int = 500
                  ) -> list[OpenWait]:
        """Waits of waiting runs whose deadline (epoch seconds) is at or before `now`, earliest
        first, after `after` (the last of the previous page)."""

    @abstractmethod
    def next_wait_deadline(self) -> float | None:
        """The earliest deadline of an open wait (epoch seconds); None when none has one."""

    @abstractmethod
    def answered_waits(self, after_seq: int = 0, *, limit: int = 500
                       ) -> tuple[list[OpenWait], int]:
        """Open waits of waiting runs that an accepted approval after `after_seq` answered
        (recorded, the run not continued yet), and the last approval seq looked at: pass it
        on next time."""

    @abstractmethod
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last entry, (0, GENESIS) when empty: keep it elsewhere as an
        anchor, it is what proves later that no entry was cut off the end."""

    @abstractmethod
    def verify(self, anchor: tuple[int, str] | None = None,
               max_problems: int | None = 1000) -> list[ChainProblem]:
        """Every edited, removed, reordered or inserted entry found; empty when intact.
        `anchor` is a `head()` kept elsewhere earlier: it catches a cut or rewritten tail."""

    @abstractmethod
    def export_jsonl(self, fp: IO[str], run_id: str | None = None, since_seq: int = 0) -> int:
        """Write entries as JSON lines with their chain fields (for a SIEM); returns the count."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the journal must not be used afterwards."""
