"""CLI commands over the run journal: resume, approve, undo, runs, audit.

All take `--journal PATH` (else `$CROWNGUARD_JOURNAL`, else the XDG state default) and, where
they act at vendors, `--config FILE`.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..actions import ActionContext
from ..conductor import Conductor
from ..config import Config, load_config
from ..errors import RunEnded, RunHeldElsewhere, RunsError
from ..journal import (
    Journal,
    RunRecord,
    default_journal_path,
    open_journal,
)
from ..kinds import RunKind
from ..plugins import PluginHost
from ..runner import Runner
from ..spec import Playbook, parse_playbook
from ..undo import plan_undo, undo_playbook
from .timeline import Timeline, summary_table

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WAITING = 0, 1, 2, 3
ENDED = ("succeeded", "failed", "cancelled")


def add_journal_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--journal", metavar="PATH",
                        help="the run journal (default: $CROWNGUARD_JOURNAL, else "
                             "~/.local/state/crownguard/journal.sqlite)")


def journal_for(args: argparse.Namespace, create: bool = False) -> Journal:
    """The journal named by --journal / $CROWNGUARD_JOURNAL / the default. Commands that only
    read or continue runs refuse a journal that does not exist (a mistyped path)."""
    path = getattr(args, "journal", None)
    resolved = Path(path).expanduser() if path else default_journal_path()
    if not create and not resolved.exists():
        raise RunsError(f"no journal at {resolved} (check --journal or $CROWNGUARD_JOURNAL)")
    return open_journal(resolved)


def config_for(run: RunRecord, given: str | None, host: PluginHost) -> Config:
    """--config when given, else the connections file the run was started with."""
    path = given or run.config_path
    if path is None:
        return load_config(None, host.connection_types)
    if not given and not Path(path).exists():
        raise RunsError(f"run {run.run_id} was started with connections file {path}, which is "
                        "gone: pass --config")
    return load_config(path, host.connection_types)


def status_exit(status: str) -> int:
    return {"succeeded": EXIT_OK, "waiting": EXIT_WAITING}.get(status, EXIT_FAILED)


def stored_playbook(run: RunRecord, host: PluginHost) -> Playbook:
    """The playbook as it was when the run started (the journal keeps its text)."""
    return parse_playbook(run.playbook_text, host.actions,
                          file=run.playbook_path or f"<{run.playbook}>")


def answers_for(journal: Journal, run_id: str) -> dict[str, dict[str, Any]]:
    answers: dict[str, dict[str, Any]] = {}
    for approval in journal.approvals(run_id):
        if approval.accepted:
            answers[approval.step_id] = {"decision": str(approval.decision), "by": approval.by,
                                         "comment": approval.comment, "at": approval.at}
    return answers


def _print_record(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(record, indent=2, default=str))
    else:
        print()
        print(summary_table(record))
        print(f"\nrun {record['run_id']}: {record['status']}")


def cancelled_message(journal: Journal, run_id: str, nothing_to: str) -> str:
    """Why a cancelled run cannot go on: when and by what it was cancelled."""
    cancel = next((e for e in reversed(journal.events(run_id))
                   if e.get("type") == "run_cancelled"), None)
    if cancel is None:  # cancelled by a status change (Journal.set_status), not an event
        return f"run {run_id} was cancelled; nothing to {nothing_to}"
    if cancel.get("undo_run_id"):
        return (f"run {run_id} was undone and cancelled at {cancel.get('at')} (undo run "
                f"{cancel['undo_run_id']}); nothing to {nothing_to}")
    why = f" ({cancel['reason']})" if cancel.get("reason") else ""
    return f"run {run_id} was cancelled at {cancel.get('at')}{why}; nothing to {nothing_to}"


def resume_one(journal: Journal, host: PluginHost, config_path: str | None, run_id: str,
               quiet: bool = False) -> dict[str, Any]:
    run = journal.get_run(run_id)
    if str(run.status) == "cancelled":
        raise RunsError(cancelled_message(journal, run_id, "resume"))
    config = config_for(run, config_path, host)
    if str(run.status) in ENDED:
        raise RunsError(f"run {run_id} has already ended ({run.status})")
    if not journal.claim(run_id):
        if str(journal.get_run(run_id).status) == "cancelled":  # cancelled just now
            raise RunsError(cancelled_message(journal, run_id, "resume"))
        raise RunsError(f"run {run_id} is being run by another live process")
    playbook = stored_playbook(run, host)
    dry_run = bool((run.inputs.get("run") or {}).get("dry_run"))
    runner = Runner(host, config, journal=journal, dry_run=dry_run,
                    on_event=None if quiet else Timeline())
    return runner.resume(playbook, run_id, run.inputs, journal.events(run_id),
                         answers_for(journal, run_id))


# --- commands -----------------------------------------------------------------------------------


def cmd_resume(args: argparse.Namespace) -> int:
    if bool(args.run_id) == bool(args.all):
        raise RunsError("give a RUN_ID or --all")
    host = PluginHost.from_entry_points()
    with journal_for(args) as journal:
        if args.run_id:
            record = resume_one(journal, host, args.config, args.run_id, quiet=args.json)
            _print_record(record, args.json)
            return status_exit(record["status"])
        # Waiting runs only when there is something to settle: an accepted answer or an
        # expired wait (claiming every waiting run on every call would bloat the audit trail).
        runs = journal.interrupted_runs() + [
            run for run in journal.list_runs("waiting", limit=10_000)
            if _wait_to_settle(journal, run, host)]
        worst = EXIT_OK
        results = []
        for run in runs:
            try:
                record = resume_one(journal, host, args.config, run.run_id, quiet=True)
            except RunsError as exc:
                print(f"{run.run_id}: skipped ({exc})", file=sys.stderr)
                continue
            results.append({"run_id": run.run_id, "status": record["status"]})
            code = status_exit(record["status"])
            worst = EXIT_FAILED if code == EXIT_FAILED else max(worst, code)
        if args.json:
            print(json.dumps(results, indent=2))
        else:
            for item in results:
                print(f"{item['run_id']}  {item['status']}")
            print(f"{len(results)} runs resumed")
        return worst


def _wait_to_settle(journal: Journal, run: RunRecord, host: PluginHost) -> bool:
    conductor = Conductor(stored_playbook(run, host), run.inputs)
    for event in journal.events(run.run_id):
        conductor.apply(event)
    answered = answers_for(journal, run.run_id)
    now = datetime.now(UTC)
    for step_id, state in conductor.steps.items():
        if str(state.status) != "waiting":
            continue
        expires = (state.waiting or {}).get("expires_at")
        if step_id in answered or (expires and datetime.fromisoformat(
                expires.replace("Z", "+00:00")) <= now):
            return True
    return False


def answer(journal: Journal, host: PluginHost, config_path: str | None, run_id: str, step: str,
           decision: str, by: str, comment: str | None, as_json: bool) -> int:
    """Record an answer to a waiting step (refused when `by` may not answer, or when the run
    was cancelled: an undo of a waiting run cancels it) and resume."""
    run = journal.get_run(run_id)
    if str(run.status) == "cancelled":
        if step not in stored_playbook(run, host).by_id:
            raise RunsError(f"run {run_id} has no step '{step}'")
        reason = cancelled_message(journal, run_id, "approve")
        journal.record_approval(run_id, step, decision, by, comment=comment, accepted=False,
                                reason=reason)
        print(f"crownguard: refused and recorded: {reason}", file=sys.stderr)
        return EXIT_FAILED
    config = config_for(run, config_path, host)
    conductor = Conductor(stored_playbook(run, host), run.inputs)
    for event in journal.events(run_id):
        conductor.apply(event)
    state = conductor.steps.get(step)
    if state is None:
        raise RunsError(f"run {run_id} has no step '{step}'")
    if str(state.status) != "waiting":
        raise RunsError(f"step '{step}' of run {run_id} is not waiting (it is {state.status})")
    allowed = list(((state.waiting or {}).get("data") or {}).get("approvers") or []) \
        or config.approvers
    if allowed and by not in allowed:
        reason = f"{by} may not answer (allowed: {', '.join(allowed)})"
        journal.record_approval(run_id, step, decision, by, comment=comment, accepted=False,
                                reason=reason)
        print(f"crownguard: refused and recorded: {reason}", file=sys.stderr)
        return EXIT_FAILED
    at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    journal.record_approval(run_id, step, decision, by, comment=comment, at=at)
    record = resume_one(journal, host, config_path, run_id, quiet=as_json)
    _print_record(record, as_json)
    return status_exit(record["status"])


def cmd_approve(args: argparse.Namespace) -> int:
    host = PluginHost.from_entry_points()
    with journal_for(args) as journal:
        return answer(journal, host, args.config, args.run_id, args.step, args.decision,
                      args.by, args.comment, args.json)


def cmd_slack_answer(args: argparse.Namespace) -> int:
    """A Slack interaction (the employee's button or justification) answers its wait."""
    host = PluginHost.from_entry_points()
    config = load_config(args.config, host.connection_types)
    headers = {}
    for item in args.header or []:
        name, sep, value = item.partition(":")
        if not sep:
            raise RunsError(f"--header takes 'Name: value', got '{item}'")
        headers[name.strip()] = value.strip()
    try:
        body = open(args.body_file, encoding="utf-8").read()
    except OSError as exc:
        raise RunsError(f"{args.body_file}: cannot read ({exc.strerror})") from None
    parse = host.action("slack.parse_interaction")
    inputs = {"body": body, "headers": headers}
    parse.validate_inputs(inputs)
    ctx = ActionContext(run_id="slack-interaction", step_id="parse", attempt=1,
                        idempotency_key="slack-interaction", connections=config.connections)
    reply = parse.func(ctx, inputs)
    comment = reply["choice"] + (f": {reply['justification']}" if reply.get("justification")
                                 else "")
    with journal_for(args) as journal:
        return answer(journal, host, args.config, reply["run_id"], reply["step_id"], "approve",
                      reply["user"], comment, args.json)


def cancel_for_undo(journal: Journal, host: PluginHost, config: Config, run: RunRecord,
                    playbook: Playbook, undo_run_id: str, quiet: bool) -> dict[str, Any]:
    """Cancel a run that has not ended before its changes are undone, so that none of its
    steps (an escalation after a wait, a comment on the ticket the undo closes) runs later."""
    runner = Runner(host, config, journal=journal, on_event=None if quiet else Timeline())
    try:
        return runner.cancel(playbook, run.run_id, run.inputs, journal.events(run.run_id),
                             reason=f"undo of its changes (undo run {undo_run_id})",
                             details={"undo_run_id": undo_run_id, "by": "crownguard undo"})
    except RunHeldElsewhere:
        raise RunsError(f"run {run.run_id} is being run by another live process: undo it once "
                        "that process has finished or stopped") from None
    except RunEnded as exc:  # it ended between our look and the cancellation
        raise RunsError(f"run {run.run_id}: {exc}; run the undo again") from None


def cmd_undo(args: argparse.Namespace) -> int:
    host = PluginHost.from_entry_points()
    with journal_for(args) as journal:
        run = journal.get_run(args.run_id)
        config = config_for(run, args.config, host)
        playbook = stored_playbook(run, host)
        # Planned before anything is cancelled: a wrong --step or a missing undo action
        # changes nothing.
        calls = plan_undo(playbook, journal.events(args.run_id), host, args.step)
        undo_run_id = uuid.uuid4().hex
        out = sys.stderr if args.json else sys.stdout
        cancelled: dict[str, Any] | None = None
        if str(run.status) not in ENDED:
            if args.dry_run:
                print(f"dry run: would cancel run {args.run_id} ({run.status}) first", file=out)
            else:
                print(f"cancelling run {args.run_id} ({run.status}) first: none of its steps "
                      "will run any more", file=out)
                cancelled = cancel_for_undo(journal, host, config, run, playbook, undo_run_id,
                                            quiet=args.json)
                calls = plan_undo(playbook, journal.events(args.run_id), host, args.step)
        if not calls and cancelled is not None:
            # The cancellation stands (it is what an undo of a waiting run owes); that there
            # was nothing to revert is still reported as before.
            raise RunsError(f"run {args.run_id} is cancelled, but there is nothing to undo: "
                            f"no step of '{playbook.name}' changed anything with a declared "
                            "undo")
        undo = undo_playbook(playbook, calls)
        if not args.json:
            print(f"undoing {len(calls)} change(s) of run {args.run_id}:")
            for call in calls:
                print(f"  {call.reason}: {call.action}")
        # A dry run of the undo is shown, not journaled (as for `run --dry-run`).
        runner = Runner(host, config, journal=None if args.dry_run else journal,
                        dry_run=args.dry_run, on_event=None if args.json else Timeline())
        record = runner.run(undo, {}, run_id=undo_run_id, kind=RunKind.UNDO,
                            parent_run_id=args.run_id, variables=undo.vars)
        _print_record(record, args.json)
        return status_exit(record["status"])


def cmd_runs(args: argparse.Namespace) -> int:
    with journal_for(args) as journal:
        if args.what and args.what[0] == "show":
            if len(args.what) != 2:
                raise RunsError("usage: crownguard runs show RUN_ID")
            return _show(journal, args.what[1], args.json)
        if args.what:
            raise RunsError(f"unknown runs command '{args.what[0]}' (use: runs, runs show ID)")
        runs = journal.list_runs(args.status, limit=args.limit)
        if args.json:
            print(json.dumps([r.to_dict(with_text=False) for r in runs], indent=2,
                             default=str))
            return EXIT_OK
        for run in runs:
            parent = f" (undo of {run.parent_run_id})" if run.parent_run_id else ""
            print(f"{run.run_id}  {run.created_at[:19]}  {run.status!s:<10} "
                  f"{run.playbook}{parent}")
        if not runs:
            print("no runs")
        return EXIT_OK


def _show(journal: Journal, run_id: str, as_json: bool) -> int:
    run = journal.get_run(run_id)
    host = PluginHost.from_entry_points()
    conductor = Conductor(stored_playbook(run, host), run.inputs)
    events = journal.events(run_id)
    for event in events:
        conductor.apply(event)
    record = conductor.record(run_id)
    approvals = [a.to_dict() for a in journal.approvals(run_id)]
    if as_json:
        print(json.dumps({**record, "approvals": approvals}, indent=2, default=str))
        return EXIT_OK
    print(f"run {run_id} of playbook '{run.playbook}' ({run.kind}): {run.status}")
    if run.parent_run_id:
        print(f"undo of run {run.parent_run_id}")
    timeline = Timeline(sys.stdout)
    pending = list(approvals)  # answers go where they happened in time, between the events

    def answers_until(at: str | None) -> None:
        while pending and (at is None or pending[0]["at"] <= at):
            approval = pending.pop(0)
            verdict = "accepted" if approval["accepted"] else f"refused: {approval['reason']}"
            clock = approval["at"][11:19]
            print(f"  {clock:<12}  answer to '{approval['step_id']}': {approval['decision']} "
                  f"by {approval['by']} ({verdict})"
                  + (f": {approval['comment']}" if approval.get("comment") else ""))

    for event in events:
        answers_until(event.get("at"))
        timeline(event)
    answers_until(None)
    print()
    print(summary_table(record))
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    with journal_for(args) as journal:
        if args.audit_command == "verify":
            anchor = None
            if args.anchor:
                seq, _, digest = args.anchor.partition(":")
                if not seq.isdigit() or not digest:
                    raise RunsError("--anchor takes SEQ:HASH as printed by 'audit head'")
                anchor = (int(seq), digest)
            problems = journal.verify(anchor)
            if not problems:
                seq, digest = journal.head()
                print(f"journal intact: {seq} entries, head {seq}:{digest}")
                return EXIT_OK
            for problem in problems:
                print(str(problem))
            print(f"{len(problems)} problem(s) found", file=sys.stderr)
            return EXIT_FAILED
        if args.audit_command == "head":
            seq, digest = journal.head()
            print(f"{seq}:{digest}")
            return EXIT_OK
        try:
            out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
        except OSError as exc:
            raise RunsError(f"--output {args.output}: cannot write ({exc.strerror})") from None
        try:
            count = journal.export_jsonl(out, run_id=args.run)
        finally:
            if out is not sys.stdout:
                out.close()
        print(f"exported {count} entries", file=sys.stderr)
        return EXIT_OK


def add_commands(sub: Any) -> None:
    p = sub.add_parser("resume", help="continue an interrupted or waiting run")
    p.add_argument("run_id", nargs="?", metavar="RUN_ID")
    p.add_argument("--all", action="store_true", help="every interrupted or waiting run")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--json", action="store_true")
    add_journal_option(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("approve", help="answer a waiting step and resume the run")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("step", metavar="STEP")
    p.add_argument("--decision", choices=["approve", "reject"], required=True)
    p.add_argument("--by", required=True, metavar="NAME")
    p.add_argument("--comment", metavar="TEXT")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--json", action="store_true")
    add_journal_option(p)
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("slack-answer", help="verify a Slack interaction request and record the "
                                            "employee's answer in its waiting run")
    p.add_argument("--body-file", required=True, metavar="FILE",
                   help="the request body exactly as Slack sent it")
    p.add_argument("--header", action="append", metavar="'NAME: VALUE'",
                   help="X-Slack-Signature and X-Slack-Request-Timestamp, as received")
    p.add_argument("--config", metavar="FILE", help="connections file with slack.signing_secret")
    p.add_argument("--json", action="store_true")
    add_journal_option(p)
    p.set_defaults(func=cmd_slack_answer)

    p = sub.add_parser("undo", help="run the undo actions of a run's changes, latest first")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--step", metavar="ID", help="undo only this step")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--json", action="store_true")
    add_journal_option(p)
    p.set_defaults(func=cmd_undo)

    p = sub.add_parser("runs", help="list runs, or `runs show RUN_ID`")
    p.add_argument("what", nargs="*", metavar="show RUN_ID")
    p.add_argument("--status", choices=["running", "waiting", "succeeded", "failed",
                                        "cancelled"])
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    add_journal_option(p)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("audit", help="verify or export the tamper-evident audit trail")
    audit = p.add_subparsers(dest="audit_command", required=True)
    v = audit.add_parser("verify", help="check the hash chain; exit 1 on any problem")
    v.add_argument("--anchor", metavar="SEQ:HASH", help="a head kept elsewhere earlier")
    add_journal_option(v)
    h = audit.add_parser("head", help="print SEQ:HASH of the last entry, to keep as an anchor")
    add_journal_option(h)
    e = audit.add_parser("export", help="write the entries for a SIEM")
    e.add_argument("--format", choices=["jsonl"], default="jsonl")
    e.add_argument("--run", metavar="RUN_ID")
    e.add_argument("--output", metavar="FILE")
    add_journal_option(e)
    p.set_defaults(func=cmd_audit)
