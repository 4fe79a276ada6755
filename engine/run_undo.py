"""Undo of a journaled run: `prepare_undo` plans the undo calls of its changes (one step's),
`undo` runs them as an undo run of its own. What `crownguard undo`, `POST /v1/runs/{id}/undo`
and the console call; split from runs.py, whose find, replay and cancel it uses."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from .errors import RunsError
from .journal import Journal
from .kinds import RunKind
from .operators import recorded_by
from .plugins import PluginHost
from .run_results import RunOutcome, UndoPlan, UndoResult
from .runner import Runner
from .runs import EventSink, cancel_run, config_for, find_run, stored_playbook
from .undo import LinkedUndo, plan_undo, undo_playbook


def prepare_undo(journal: Journal, host: PluginHost, run_id: str, *, step: str | None = None,
                 config_path: str | None = None) -> UndoPlan:
    """The undo calls of a run's changes (of one step's), latest first. Changes nothing: a
    wrong step or a missing undo action is refused here (UndoError)."""
    run = find_run(journal, run_id)
    playbook = stored_playbook(run, host)
    calls = plan_undo(playbook, journal.events(run.run_id), host, step)
    return UndoPlan(run, playbook, config_for(run, config_path, host), calls, step)


def undo(journal: Journal, host: PluginHost, plan: UndoPlan, *, by: str,
         dry_run: bool = False, on_event: EventSink | None = None,
         via: str | None = None, linked: Sequence[LinkedUndo] = ()) -> UndoResult:
    """Run the undo calls of `plan` as an undo run of their own (journaled unless `dry_run`).

    A run that has not ended is cancelled first, so that none of its steps (an escalation after
    a wait, a comment on the ticket the undo closes) runs later; a dry run only shows it.
    `linked` take back what the run led to outside its steps first (engine/undo.py)."""
    run, playbook, calls = plan.run, plan.playbook, plan.calls
    undo_run_id = uuid.uuid4().hex
    cancelled: RunOutcome | None = None
    changes = [change for hook in linked for change in hook.undo_linked(run, by, dry_run=dry_run)]
    if plan.cancels_first and not dry_run:
        cancelled = cancel_run(journal, host, plan.config, run, playbook,
                            reason=f"undo of its changes (undo run {undo_run_id})",
                            details={"undo_run_id": undo_run_id, **recorded_by(by, via=via)},
                            retry_hint="undo it", on_event=on_event)
        calls = plan_undo(playbook, journal.events(run.run_id), host, plan.only_step)
        if not calls and not any(change.undone for change in changes):
            # The cancellation stands (it is what an undo of a waiting run owes); that there
            # was nothing to revert is still reported.
            raise RunsError(f"run {run.run_id} is cancelled, but there is nothing to undo: no "
                            f"step of '{playbook.name}' changed anything with a declared undo")
    undo_run = undo_playbook(playbook, calls, changes)
    # A dry run of the undo is shown, not journaled (as for `run --dry-run`).
    runner = Runner(host, plan.config, journal=None if dry_run else journal, dry_run=dry_run,
                    on_event=on_event)
    record = runner.run(undo_run, {}, run_id=undo_run_id, kind=RunKind.UNDO,
                        parent_run_id=run.run_id, variables=undo_run.vars,
                        details={**recorded_by(by, via=via), "undo_of": run.run_id, **(
                            {"linked": [c.to_dict() for c in changes]} if changes else {})})
    return UndoResult(run.run_id, undo_run_id, calls, cancelled, RunOutcome(record), dry_run,
                      tuple(changes))
