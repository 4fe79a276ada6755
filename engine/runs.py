"""Operations on journaled runs: find, show, list, resume, answer, cancel, rerun; undo is in
run_undo.py.

What the CLI and the service both call. Each takes plain arguments (a run id or a unique prefix
of at least 8 characters, a decision, a comment, the `by` identity of the caller), acts through
the journal and returns a result object; none prints. Failures raise the error tree:
`UnknownRun`, `AmbiguousRun`, `RunStateError` (the run's state does not allow it), `RunsError`
(the request itself is wrong), `UndoError`. `on_event` is an optional sink that sees every
event of the runs an operation drives (a live timeline).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .approvers import refusal, step_approvers
from .conductor import Conductor
from .config import Config, load_config
from .errors import (
    AmbiguousRun,
    CrownguardError,
    JournalError,
    JournalUnavailable,
    RunEnded,
    RunHeldElsewhere,
    RunsError,
    RunStateError,
    UnknownRun,
)
from .journal import Journal, RunRecord
from .journal.audit import sha256_text
from .journal.base import lease_holder, utc_now
from .kinds import (
    ENDED,
    RERUNNABLE,
    ApprovalDecision,
    EventType,
    LeaseHolder,
    ResumeFailureKind,
    RunKind,
    RunStatus,
    StepStatus,
)
from .operators import recorded_by
from .plugins import PluginHost
from .run_results import (
    AnswerResult,
    ResumeAll,
    RunDetail,
    RunOutcome,
    WaitInfo,
)
from .runner import Runner
from .secrets import MASK
from .spec import Playbook, parse_playbook

MIN_PREFIX = 8  # a run id may be given by any unique prefix of 8 characters or more

EventSink = Callable[[dict[str, Any]], None]


# finding runs ----------------------------------------------------------------------------------

def find_run(journal: Journal, run_id: str) -> RunRecord:
    """The run with this id, else the one run whose id starts with it (8 characters or more).
    Raises UnknownRun, or AmbiguousRun naming the candidates."""
    try:
        return journal.get_run(run_id)
    except UnknownRun:
        if len(run_id) < MIN_PREFIX:
            raise
        found = journal.find_runs(run_id, limit=5)
        if not found:
            raise
        if len(found) > 1:
            names = ", ".join(r.run_id for r in found[:4]) + (", ..." if len(found) > 4 else "")
            raise AmbiguousRun(f"run id prefix {run_id} matches more than one run ({names}): "
                               "give more of it") from None
        return found[0]


def list_runs(journal: Journal, status: RunStatus | str | None = None, limit: int = 50,
              ) -> list[RunRecord]:
    """Runs, newest first, optionally of one status."""
    return journal.list_runs(status, limit=limit)


def stored_playbook(run: RunRecord, host: PluginHost) -> Playbook:
    """The playbook as it was when the run started (the journal keeps its text)."""
    return parse_playbook(run.playbook_text, host.actions,
                          file=run.playbook_path or f"<{run.playbook}>")


class PlaybookCache:
    """Stored playbooks parsed once per text: thousands of runs of one playbook share it.

    Keyed by the SHA-256 of the text itself (not the journaled digest, which a row could
    disagree with) and the file name its messages cite. Playbooks are immutable."""

    def __init__(self, host: PluginHost):
        self.host = host
        self._parsed: dict[tuple[str, str], Playbook] = {}

    def __call__(self, run: RunRecord) -> Playbook:
        key = (sha256_text(run.playbook_text), run.playbook_path or f"<{run.playbook}>")
        if key not in self._parsed:
            self._parsed[key] = stored_playbook(run, self.host)
        return self._parsed[key]


def replay(journal: Journal, run: RunRecord, host: PluginHost) -> Conductor:
    """The run's state, rebuilt from its journaled events."""
    return Conductor.replay(stored_playbook(run, host), run.inputs, journal.events(run.run_id))


def config_for(run: RunRecord, given: str | None, host: PluginHost) -> Config:
    """The connections file `given`, else the one the run was started with."""
    path = given or run.config_path
    if path is None:
        return load_config(None, host.connection_types)
    if not given and not Path(path).exists():
        raise RunsError(f"run {run.run_id} was started with connections file {path}, which is "
                        "gone: pass --config")
    return load_config(path, host.connection_types)


def accepted_answers(journal: Journal, run_id: str) -> dict[str, dict[str, Any]]:
    """The accepted answers of a run's waiting steps, as `Runner.resume` takes them."""
    answers: dict[str, dict[str, Any]] = {}
    for approval in journal.approvals(run_id):
        if approval.accepted:
            answers[approval.step_id] = {"decision": str(approval.decision), "by": approval.by,
                                         "comment": approval.comment, "at": approval.at}
    return answers


def cancelled_message(journal: Journal, run_id: str, nothing_to: str) -> str:
    """Why a cancelled run cannot go on: when and by what it was cancelled."""
    cancel = next((e for e in reversed(journal.events(run_id))
                   if e.get("type") == EventType.RUN_CANCELLED), None)
    if cancel is None:  # cancelled by a status change (Journal.set_status), not an event
        return f"run {run_id} was cancelled; nothing to {nothing_to}"
    if cancel.get("undo_run_id"):
        return (f"run {run_id} was undone and cancelled at {cancel.get('at')} (undo run "
                f"{cancel['undo_run_id']}); nothing to {nothing_to}")
    why = f" ({cancel['reason']})" if cancel.get("reason") else ""
    return f"run {run_id} was cancelled at {cancel.get('at')}{why}; nothing to {nothing_to}"


def _waits(conductor: Conductor) -> list[WaitInfo]:
    waits = []
    for step_id, state in conductor.steps.items():
        if state.status == StepStatus.WAITING:
            wait = state.waiting or {}
            approvers = ((wait.get("data") or {}).get("approvers")) or []
            waits.append(WaitInfo(step_id, wait.get("reason"), tuple(approvers),
                                  wait.get("expires_at")))
    return waits


def operator_actions(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Who started (a rerun, an undo) and who cancelled a run, from its events:
    `[{"action": "started"|"cancelled", "by", "via", "at"}]`, oldest first. Answers are the
    journal's approvals."""
    kinds = {EventType.RUN_STARTED: "started", EventType.RUN_CANCELLED: "cancelled"}
    return [{"action": kinds[event["type"]], "by": event["by"], "via": event.get("via"),
             "at": event.get("at")}
            for event in events if event.get("type") in kinds and event.get("by")]


def show(journal: Journal, host: PluginHost, run_id: str) -> RunDetail:
    """One run with its record (rebuilt from the events), answers and open waits."""
    run = find_run(journal, run_id)
    events = journal.events(run.run_id)
    conductor = Conductor.replay(stored_playbook(run, host), run.inputs, events)
    return RunDetail(run, conductor.record(run.run_id), events, journal.approvals(run.run_id),
                     _waits(conductor))


# resuming --------------------------------------------------------------------------------------

class _Failed(Exception):
    """Resuming a run failed for a reason worth recording (not: it is held elsewhere, it
    ended); carries the original error to raise to a caller of `resume`."""

    def __init__(self, kind: ResumeFailureKind, cause: Exception, reason: str | None = None):
        super().__init__(reason or str(cause))
        self.kind, self.cause, self.reason = kind, cause, reason or str(cause)


def _started(journal: Journal, run: RunRecord, playbook: str,
             on_event: Callable[[dict[str, Any]], None] | None) -> list[dict[str, Any]]:
    """The run's events, beginning with its run_started. A run is created and started in two
    transactions (`create_run`, then the first append): a process that died between them left
    a run with no start, which is recorded now, marked `recovered`, before it is resumed, so
    the journal of every run begins the same way."""
    events = journal.events(run.run_id)
    if events and events[0].get("type") == EventType.RUN_STARTED:
        return events
    started = {"type": str(EventType.RUN_STARTED), "playbook": playbook, "inputs": run.inputs,
               "run_id": run.run_id, "at": utc_now(), "recovered": True}
    journal.append(started)
    if on_event is not None:
        on_event(started)
    return [started, *events]


def _crash_reason(exc: Exception, config: Config | None) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if config is not None:  # an unexpected error may carry anything: redact it
        text = config.redactor.redact(text)
    return text if len(text) <= 500 else text[:497] + "..."


def _forged(journal: Journal, run_id: str) -> str | None:
    """Why the run's answers must not be acted on: an approvals row that does not match its
    chained audit entry (edited or inserted beside the chain), else None."""
    problems = journal.approval_problems(run_id)
    if not problems:
        return None
    seqs = ", ".join(str(p.seq) for p in problems)
    return (f"run {run_id}: {len(problems)} approval(s) at seq {seqs} do not match the audit "
            f"chain ({problems[0].detail}): not acted on; run `crownguard audit verify`")


def _drive(journal: Journal, host: PluginHost, run: RunRecord, config_path: str | None,
           on_event: EventSink | None, playbooks: PlaybookCache,
           loaded: Config | None = None) -> RunOutcome:
    """Resume one run. RunStateError when its state does not allow it (nothing wrong with
    it), _Failed when it cannot be resumed for a reason to record."""
    run_id = run.run_id
    if run.status == RunStatus.CANCELLED:
        raise RunStateError(cancelled_message(journal, run_id, "resume"))
    try:
        config = loaded if loaded is not None else config_for(run, config_path, host)
    except CrownguardError as exc:  # gone, or does not load (an env var unset now)
        raise _Failed(ResumeFailureKind.CONFIG, exc) from None
    if run.status in ENDED:
        raise RunStateError(f"run {run_id} has already ended ({run.status})")
    try:
        playbook = playbooks(run)
    except CrownguardError as exc:  # a plugin it needs is gone, an action renamed
        raise _Failed(ResumeFailureKind.PLAYBOOK, exc) from None
    # Answers come from the approvals table; act on none unless each matches its entry.
    forged = _forged(journal, run_id)
    if forged:
        raise _Failed(ResumeFailureKind.FORGED, RunStateError(forged))
    if not journal.claim(run_id):
        if journal.get_run(run_id).status == RunStatus.CANCELLED:  # cancelled just now
            raise RunStateError(cancelled_message(journal, run_id, "resume"))
        raise RunStateError(f"run {run_id} is being run by another live process")
    dry_run = bool((run.inputs.get("run") or {}).get("dry_run"))
    runner = Runner(host, config, journal=journal, dry_run=dry_run, on_event=on_event)
    try:
        events = _started(journal, run, playbook.name, on_event)
        record = runner.resume(playbook, run_id, run.inputs, events,
                               accepted_answers(journal, run_id))
    except (RunHeldElsewhere, RunEnded, JournalUnavailable):
        raise  # taken over or cancelled while it ran, or the database gone: not its fault
    except Exception as exc:
        raise _Failed(ResumeFailureKind.CRASH, exc, _crash_reason(exc, config)) from exc
    journal.clear_resume_failure(run_id)
    return RunOutcome(record)


def resume(journal: Journal, host: PluginHost, run_id: str, *, config_path: str | None = None,
           on_event: EventSink | None = None, playbooks: PlaybookCache | None = None,
           config: Config | None = None) -> RunOutcome:
    """Continue an interrupted or waiting run: settle its answered or expired waits, start its
    in-flight steps again and drive it to its end or its next wait. Tried even when `resume
    --all` gave up on it. When it cannot be resumed (its connections file, its playbook, a
    forged answer, a crash), that is recorded with the run (`journal.resume_failures`) and the
    error raised; a success clears the record. `config` (loaded) replaces `config_path`."""
    run = find_run(journal, run_id)
    try:
        return _drive(journal, host, run, config_path, on_event,
                      playbooks or PlaybookCache(host), config)
    except _Failed as failed:
        journal.record_resume_failure(run.run_id, failed.kind, failed.reason)
        raise failed.cause from None


def _wait_to_settle(journal: Journal, run: RunRecord, playbooks: PlaybookCache,
                    now: datetime) -> bool:
    """Whether a waiting run has an answer or an expired wait to settle."""
    answered = accepted_answers(journal, run.run_id)
    expiring = [wait for wait in _waits(Conductor.replay(playbooks(run), run.inputs,
                                                         journal.events(run.run_id)))
                if wait.step in answered or (wait.expires_at and datetime.fromisoformat(
                    wait.expires_at.replace("Z", "+00:00")) <= now)]
    return bool(expiring)


def _candidates(journal: Journal, host: PluginHost, playbooks: PlaybookCache,
                page_size: int) -> Iterator[tuple[RunRecord, Exception | None]]:
    """Every interrupted run, then every waiting run with something to settle, read in pages
    (seq order, so runs resumed meanwhile neither repeat nor hide others). A waiting run whose
    state cannot even be rebuilt comes with the error."""
    now = time.time()
    after = 0
    while page := journal.runs_page(RunStatus.RUNNING, after, page_size):
        after = page[-1].seq
        for run in page:
            if lease_holder(run.owner, run.lease_expires, now) == LeaseHolder.FREE:
                yield run, None
    moment = datetime.now(UTC)
    after = 0
    while page := journal.runs_page(RunStatus.WAITING, after, page_size):
        after = page[-1].seq
        for run in page:
            try:
                if _wait_to_settle(journal, run, playbooks, moment):
                    yield run, None
            except Exception as exc:  # one unreadable run must not stop the rest
                yield run, exc


def resume_all(journal: Journal, host: PluginHost, *, config_path: str | None = None,
               on_event: EventSink | None = None, retry_failed: bool = False,
               page_size: int = 500) -> ResumeAll:
    """Resume every interrupted run, and every waiting run that has something to settle (an
    accepted answer, an expired wait), each on its own: one that cannot be resumed is recorded
    and reported, and the others go on. A run that failed RESUME_GIVE_UP_AFTER times in a row
    the same way is not tried again unless `retry_failed` (or `resume(run_id)`)."""
    # Waiting runs only when there is something to settle: claiming every waiting run on every
    # call would bloat the audit trail.
    playbooks = PlaybookCache(host)
    result = ResumeAll()
    for run, unreadable in _candidates(journal, host, playbooks, page_size):
        previous = journal.resume_failures([run.run_id]).get(run.run_id)
        if previous is not None and previous.given_up and not retry_failed:
            result.given_up.append(previous)
            continue
        try:
            if unreadable is not None:
                raise _Failed(ResumeFailureKind.PLAYBOOK
                              if isinstance(unreadable, CrownguardError)
                              else ResumeFailureKind.CRASH, unreadable,
                              _crash_reason(unreadable, None))
            result.resumed.append(_drive(journal, host, run, config_path, on_event,
                                         playbooks))
        except _Failed as failed:
            result.failed.append(journal.record_resume_failure(run.run_id, failed.kind,
                                                               failed.reason))
        except (RunsError, JournalError) as exc:  # held elsewhere, ended or cancelled meanwhile
            result.skipped.append((run.run_id, str(exc)))
    return result


# answering -------------------------------------------------------------------------------------

def answer(journal: Journal, host: PluginHost, run_id: str, step: str,
           decision: ApprovalDecision | str, *, by: str, comment: str | None = None,
           config_path: str | None = None, on_event: EventSink | None = None,
           aliases: Sequence[str] = ()) -> AnswerResult:
    """Answer a waiting step as `by` and resume the run.

    `aliases` are other names of the same person that also count for the approver check (a
    Slack user id next to the e-mail); `by` stays the identity recorded, the aliases go into
    the approval's `reason`. Refused, and recorded as refused, when neither `by` nor an alias
    is among the step's approvers (else the connections file's; see approvers.refusal) or
    when the run was cancelled (an undo of a waiting run cancels it). Raises RunsError for a
    step the run does not have, RunStateError for one not waiting."""
    aliases = [a for a in aliases if a and a != by]
    try:
        choice = ApprovalDecision(decision)
    except ValueError:
        raise RunsError(f"decision must be approve or reject, not {decision!r}") from None
    run = find_run(journal, run_id)
    run_id = run.run_id

    def refuse(reason: str) -> AnswerResult:
        journal.record_approval(run_id, step, choice, by, comment=comment, accepted=False,
                                reason=reason)
        return AnswerResult(run_id, step, choice, by, accepted=False, reason=reason)

    if run.status == RunStatus.CANCELLED:
        if step not in stored_playbook(run, host).by_id:
            raise RunsError(f"run {run_id} has no step '{step}'")
        return refuse(cancelled_message(journal, run_id, "approve"))
    config = config_for(run, config_path, host)
    state = replay(journal, run, host).steps.get(step)
    if state is None:
        raise RunsError(f"run {run_id} has no step '{step}'")
    if state.status != StepStatus.WAITING:
        raise RunStateError(f"step '{step}' of run {run_id} is not waiting (it is "
                            f"{state.status})")
    refused = refusal(by, step_approvers(state.waiting, config.approvers), aliases)
    if refused is not None:
        return refuse(refused)
    at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    journal.record_approval(run_id, step, choice, by, comment=comment, at=at,
                            reason=f"also known as {', '.join(aliases)}" if aliases else None)
    outcome = resume(journal, host, run_id, config_path=config_path, on_event=on_event)
    return AnswerResult(run_id, step, choice, by, accepted=True, outcome=outcome)


# cancelling and running again ------------------------------------------------------------------

def cancel_run(journal: Journal, host: PluginHost, config: Config, run: RunRecord,
               playbook: Playbook, *, reason: str, details: dict[str, Any], retry_hint: str,
               on_event: EventSink | None) -> RunOutcome:
    runner = Runner(host, config, journal=journal, on_event=on_event)
    try:
        return RunOutcome(runner.cancel(playbook, run.run_id, run.inputs,
                                        journal.events(run.run_id), reason=reason,
                                        details=details))
    except RunHeldElsewhere:
        raise RunStateError(f"run {run.run_id} is being run by another live process: "
                            f"{retry_hint} once that process has finished or stopped") from None
    except RunEnded as exc:  # it ended between our look and the cancellation
        raise RunStateError(f"run {run.run_id}: {exc}; {retry_hint} again") from None


def cancel(journal: Journal, host: PluginHost, run_id: str, *, by: str,
           reason: str | None = None, config_path: str | None = None,
           on_event: EventSink | None = None, via: str | None = None) -> RunOutcome:
    """Cancel a run that has not ended (waiting, or interrupted with steps left): no step of
    it runs any more, answers to it are refused. Recorded with `by` (and `via`, how that name
    is known) and the `reason`."""
    run = find_run(journal, run_id)
    if run.status == RunStatus.CANCELLED:
        raise RunStateError(cancelled_message(journal, run.run_id, "cancel"))
    if run.status in ENDED:
        raise RunStateError(f"run {run.run_id} has already ended ({run.status}): nothing to "
                            "cancel")
    config = config_for(run, config_path, host)
    return cancel_run(journal, host, config, run, stored_playbook(run, host),
                   reason=reason or f"cancelled by {by}", details=recorded_by(by, via=via),
                   retry_hint="cancel it", on_event=on_event)


def _masked(value: Any) -> bool:
    if isinstance(value, str):
        return MASK in value
    if isinstance(value, dict):
        return any(_masked(v) for v in value.values())
    if isinstance(value, list):
        return any(_masked(v) for v in value)
    return False


def rerun(journal: Journal, host: PluginHost, run_id: str, *, by: str,
          config_path: str | None = None, on_event: EventSink | None = None,
          via: str | None = None) -> RunOutcome:
    """A new run of an ended (failed or cancelled) run's playbook, as the journal kept it, with
    the same event, risk and vars; linked to it (kind `rerun`, parent_run_id)."""
    run = find_run(journal, run_id)
    if run.kind == RunKind.UNDO:
        raise RunsError(f"run {run.run_id} is an undo run: undo run {run.parent_run_id} again "
                        "instead")
    if run.status not in RERUNNABLE:
        raise RunStateError(f"run {run.run_id} is {run.status}: only a failed or cancelled run "
                            "can be run again")
    inputs = {key: run.inputs.get(key) or {} for key in ("event", "risk", "vars")}
    if _masked(inputs):
        # The journal keeps inputs redacted: running on the mask would act on the wrong value.
        raise RunsError(f"run {run.run_id}'s journaled event, risk or vars hold a redacted "
                        f"value ({MASK}): run the playbook again with the original event")
    config = config_for(run, config_path, host)
    runner = Runner(host, config, journal=journal, on_event=on_event)
    record = runner.run(stored_playbook(run, host), inputs["event"], risk=inputs["risk"],
                        variables=inputs["vars"], kind=RunKind.RERUN, parent_run_id=run.run_id,
                        details={**recorded_by(by, via=via), "rerun_of": run.run_id})
    return RunOutcome(record, parent_run_id=run.run_id)
