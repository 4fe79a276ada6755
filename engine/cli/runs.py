"""CLI commands over the run journal: resume, approve, cancel, rerun, undo, runs, audit.

Argument parsing and printing only: the operations are `crownguard.engine.runs`. All take
`--journal PATH` (else `$CROWNGUARD_JOURNAL`, else the XDG state default) and, where they act
at vendors, `--config FILE`. A run id may be given by any unique prefix of 8 characters or more.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .. import run_undo, runs
from ..conductor import Conductor
from ..errors import CrownguardError, UsageError
from ..journal import (
    RESUME_GIVE_UP_AFTER,
    Journal,
    ResumeFailure,
    RunRecord,
    journal_target,
    open_journal,
)
from ..journal.export import verify_jsonl
from ..kinds import ApprovalDecision, RunKind, RunStatus
from ..operators import cli_operator
from ..outcome import OUTCOME_FIELDS, degraded
from ..plugins import PluginHost
from ..service.access_undo import AccessUndo
from .console import printable
from .timeline import Timeline, dry_run_branches, summary_table

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WAITING = 0, 1, 2, 3
# With --strict: the run succeeded, but with handled failures, a rejected approval or an
# expired wait (its record's `degraded`). Without --strict that run exits 0.
EXIT_DEGRADED = 4
STRICT_HELP = (f"exit {EXIT_DEGRADED} when a run succeeded only with handled failures, a "
               "rejected approval or an expired wait")


def add_journal_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--journal", metavar="PATH",
                        help="the run journal: a file, or a postgresql://user@host/db DSN "
                             "(default: $CROWNGUARD_JOURNAL, else "
                             "~/.local/state/crownguard/journal.sqlite)")


def journal_for(args: argparse.Namespace, create: bool = False, read_only: bool = False
                ) -> Journal:
    """The journal named by --journal / $CROWNGUARD_JOURNAL / the default. Commands that only
    read or continue runs refuse a journal that does not exist (a mistyped path); commands
    that only read open it read-only (it may sit on read-only or write-once media)."""
    resolved = journal_target(getattr(args, "journal", None) or None)
    if isinstance(resolved, Path) and not create and not resolved.exists():
        raise UsageError(f"no journal at {resolved} (check --journal or $CROWNGUARD_JOURNAL)")
    return open_journal(resolved, read_only=read_only)


def status_exit(status: str) -> int:
    return {RunStatus.SUCCEEDED: EXIT_OK, RunStatus.WAITING: EXIT_WAITING}.get(
        RunStatus(status), EXIT_FAILED)


def record_exit(record: dict[str, Any], strict: bool = False) -> int:
    """A run record's exit code: by its status; with `strict`, EXIT_DEGRADED for a run that
    succeeded only with handled failures, a rejected approval or an expired wait."""
    if strict and degraded(record):
        return EXIT_DEGRADED
    return status_exit(record["status"])


def print_record(record: dict[str, Any], as_json: bool, strict: bool = False) -> int:
    """Print a run record (as JSON, or as a summary table and its outcome) and return its
    exit code."""
    if as_json:
        print(json.dumps(record, indent=2, default=str))
    else:
        print()
        print(summary_table(record))
        if record.get("branches"):
            print("\ndry run: the run would wait; after each answer:")
            print("\n".join(f"  {line}" for line in dry_run_branches(record)))
        print(f"\nrun {record['run_id']}: {record.get('outcome') or record['status']}")
    return record_exit(record, strict)


def _timeline(as_json: bool) -> Timeline | None:
    return None if as_json else Timeline()


def print_answer(result: runs.AnswerResult, as_json: bool) -> int:
    """How `approve` (and a plugin's answering command) reports an answer."""
    if not result.accepted or result.outcome is None:
        print(f"crownguard: refused and recorded: {result.reason}", file=sys.stderr)
        return EXIT_FAILED
    return print_record(result.outcome.record, as_json)


# --- commands -----------------------------------------------------------------------------------


def cmd_resume(args: argparse.Namespace) -> int:
    if bool(args.run_id) == bool(args.all):
        raise UsageError("give a RUN_ID or --all")
    host = PluginHost.from_entry_points()
    with journal_for(args) as journal:
        if args.run_id:
            outcome = runs.resume(journal, host, args.run_id, config_path=args.config,
                                  on_event=_timeline(args.json))
            return print_record(outcome.record, args.json)
        done = runs.resume_all(journal, host, config_path=args.config,
                               retry_failed=args.retry_failed)
        return _print_resume_all(done, args.json)


def _print_resume_all(done: runs.ResumeAll, as_json: bool) -> int:
    """Every run resume --all looked at; non-zero when any failed or could not be resumed."""
    worst = EXIT_OK
    for outcome in done.resumed:
        code = status_exit(outcome.status)
        worst = EXIT_FAILED if code == EXIT_FAILED else max(worst, code)
    if not done.ok:
        worst = EXIT_FAILED
    if as_json:
        print(json.dumps({
            "resumed": [{"run_id": o.run_id, "status": str(o.status)} for o in done.resumed],
            "skipped": [{"run_id": run_id, "reason": why} for run_id, why in done.skipped],
            "failed": [f.to_dict() for f in done.failed],
            "given_up": [f.to_dict() for f in done.given_up]}, indent=2))
        return worst
    for run_id, why in done.skipped:
        print(f"{run_id}: skipped ({why})", file=sys.stderr)
    for failure in done.failed:
        print(f"{failure.run_id}: could not be resumed ({failure.kind}, {failure.count}x): "
              f"{failure.reason}" + ("; given up on: resume it by its id, or --retry-failed"
                                     if failure.given_up else ""), file=sys.stderr)
    for failure in done.given_up:
        print(f"{failure.run_id}: not tried: failed {failure.count}x ({failure.kind}): "
              f"{failure.reason}; resume it by its id, or --retry-failed", file=sys.stderr)
    for outcome in done.resumed:
        print(f"{outcome.run_id}  {outcome.status}")
    print(f"{len(done.resumed)} runs resumed"
          + (f", {len(done.failed)} failed" if done.failed else "")
          + (f", {len(done.given_up)} given up on" if done.given_up else ""))
    return worst


def cmd_approve(args: argparse.Namespace) -> int:
    host = PluginHost.from_entry_points()
    with journal_for(args) as journal:
        by, _via = cli_operator(args.by)
        result = runs.answer(journal, host, args.run_id, args.step, args.decision, by=by,
                             comment=args.comment, config_path=args.config,
                             on_event=_timeline(args.json))
        return print_answer(result, args.json)


def cmd_cancel(args: argparse.Namespace) -> int:
    host = PluginHost.from_entry_points()
    with journal_for(args) as journal:
        by, via = cli_operator(args.by)
        outcome = runs.cancel(journal, host, args.run_id, by=by, via=via, reason=args.reason,
                              config_path=args.config, on_event=_timeline(args.json))
        print_record(outcome.record, args.json)
        return EXIT_OK


def cmd_rerun(args: argparse.Namespace) -> int:
    host = PluginHost.from_entry_points()
    with journal_for(args) as journal:
        by, via = cli_operator(args.by)
        outcome = runs.rerun(journal, host, args.run_id, by=by, via=via,
                             config_path=args.config, on_event=_timeline(args.json))
        code = print_record(outcome.record, args.json)
        if not args.json:
            print(f"(a rerun of run {outcome.parent_run_id})")
        return code


def cmd_undo(args: argparse.Namespace) -> int:
    host = PluginHost.from_entry_points()
    by, via = cli_operator(args.by)
    with journal_for(args) as journal:
        # Planned before anything is cancelled: a wrong --step or a missing undo action
        # changes nothing.
        plan = run_undo.prepare_undo(journal, host, args.run_id, step=args.step,
                                 config_path=args.config)
        run = plan.run
        out = sys.stderr if args.json else sys.stdout
        if plan.cancels_first:
            if args.dry_run:
                print(f"dry run: would cancel run {run.run_id} ({run.status}) first", file=out)
            else:
                print(f"cancelling run {run.run_id} ({run.status}) first: none of its steps "
                      "will run any more", file=out)
        if plan.calls and not args.json:
            print(f"undoing {len(plan.calls)} change(s) of run {run.run_id}:")
            for call in plan.calls:
                print(f"  {call.reason}: {call.action}")
        # The grant of an access request its run decided is the access desk's, not a step's.
        result = run_undo.undo(journal, host, plan, by=by, via=via, dry_run=args.dry_run,
                           on_event=_timeline(args.json),
                           linked=[AccessUndo(journal, host, args.config)])
        for change in result.linked:
            print(f"  {change.what}: {change.note}", file=out)
        return print_record(result.outcome.record, args.json)


def _failure(failure: ResumeFailure | None) -> str:
    if failure is None:
        return ""
    state = "given up on" if failure.given_up else "will be retried"
    return (f"  [resume failed {failure.count}x, {state}: {failure.kind}: "
            f"{failure.reason}]")


def _parent(run: Any) -> str:
    if not run.parent_run_id:
        return ""
    return f" ({'rerun' if run.kind == RunKind.RERUN else 'undo'} of {run.parent_run_id})"


def _outcomes(journal: Journal, found: list[RunRecord]) -> dict[str, dict[str, Any]]:
    """The outcome fields of each run, rebuilt from its journaled events, so that runs
    journaled before the fields existed show them too. A run whose stored playbook no longer
    parses (a plugin removed) has none: it is listed with its status only."""
    playbooks = runs.PlaybookCache(PluginHost.from_entry_points())
    outcomes = {}
    for run in found:
        try:
            conductor = Conductor.replay(playbooks(run), run.inputs, journal.events(run.run_id))
        except CrownguardError:
            continue
        record = conductor.record(run.run_id)
        # Only where the events agree with the journal's status (a run cancelled by a bare
        # status change has no event saying so): an outcome never contradicts its status.
        if record["status"] == run.status:
            outcomes[run.run_id] = {key: record[key] for key in OUTCOME_FIELDS}
    return outcomes


def _detail(run: RunRecord, outcome: dict[str, Any] | None) -> str:
    """What the outcome adds to the status column: `: with 5 handled failures: ...`."""
    sentence = str((outcome or {}).get("outcome") or "").removeprefix(str(run.status))
    return f": {sentence.lstrip()}" if sentence.strip() else ""


def cmd_runs(args: argparse.Namespace) -> int:
    with journal_for(args, read_only=True) as journal:
        if args.what and args.what[0] == "show":
            if len(args.what) != 2:
                raise UsageError("usage: crownguard runs show RUN_ID")
            return _show(journal, args.what[1], args.json)
        if args.what:
            raise UsageError(f"unknown runs command '{args.what[0]}' (use: runs, runs show ID)")
        found = runs.list_runs(journal, args.status, limit=args.limit)
        failures = journal.resume_failures([r.run_id for r in found])
        outcomes = _outcomes(journal, found)
        if args.json:
            print(json.dumps([{**r.to_dict(with_text=False), "resume_failure":
                               failures[r.run_id].to_dict() if r.run_id in failures else None,
                               **outcomes.get(r.run_id, dict.fromkeys(OUTCOME_FIELDS))}
                              for r in found], indent=2, default=str))
            return EXIT_OK
        for run in found:
            print(f"{run.run_id}  {run.created_at[:19]}  {run.status!s:<10} "
                  f"{run.playbook}{_parent(run)}{_failure(failures.get(run.run_id))}"
                  f"{_detail(run, outcomes.get(run.run_id))}")
        if not found:
            print("no runs")
        return EXIT_OK


def _show(journal: Journal, run_id: str, as_json: bool) -> int:
    detail = runs.show(journal, PluginHost.from_entry_points(), run_id)
    run, record = detail.run, detail.record
    approvals = [a.to_dict() for a in detail.approvals]
    operators = runs.operator_actions(detail.events)
    if as_json:
        print(json.dumps({**record, "approvals": approvals, "operators": operators}, indent=2,
                         default=str))
        return EXIT_OK
    print(f"run {run.run_id} of playbook '{run.playbook}' ({run.kind}): {run.status}")
    if run.parent_run_id:
        print(f"{'rerun' if run.kind == RunKind.RERUN else 'undo'} of run {run.parent_run_id}")
    for action in operators:
        print(f"{action['action']} by {action['by']}"
              + (f" ({action['via']})" if action.get("via") else "")
              + (f" at {action['at']}" if action.get("at") else ""))
    timeline = Timeline(sys.stdout)
    pending = list(approvals)  # answers go where they happened in time, between the events

    def answers_until(at: str | None) -> None:
        while pending and (at is None or pending[0]["at"] <= at):
            approval = pending.pop(0)
            verdict = "accepted" if approval["accepted"] else f"refused: {approval['reason']}"
            clock = approval["at"][11:19]
            print(printable(f"  {clock:<12}  answer to '{approval['step_id']}': "
                            f"{approval['decision']} by {approval['by']} ({verdict})"
                            + (f": {approval['comment']}" if approval.get("comment") else "")))

    for event in detail.events:
        answers_until(event.get("at"))
        timeline(event)
    answers_until(None)
    print()
    print(summary_table(record))
    print(f"\nrun {run.run_id}: {record['outcome']}")
    return EXIT_OK


def _anchor(text: str | None) -> tuple[int, str] | None:
    if not text:
        return None
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or not digest:
        raise UsageError("--anchor takes SEQ:HASH as printed by 'audit head'")
    return int(seq), digest


def _verify_export(path: str, anchor: tuple[int, str] | None) -> int:
    """Check an exported JSONL file offline; every unreadable line is a reported problem."""
    try:
        with open(path, encoding="utf-8", errors="strict") as fp:
            problems = verify_jsonl(fp, anchor)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    if not problems:
        print(f"export intact: {path}")
        return EXIT_OK
    for problem in problems:
        print(str(problem))
    print(f"{len(problems)} problem(s) found in {path}", file=sys.stderr)
    return EXIT_FAILED


def cmd_audit(args: argparse.Namespace) -> int:
    if args.audit_command == "verify-export":
        return _verify_export(args.file, _anchor(args.anchor))
    with journal_for(args, read_only=True) as journal:
        if args.audit_command == "verify":
            problems = journal.verify(_anchor(args.anchor))
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
            raise UsageError(f"--output {args.output}: cannot write ({exc.strerror})") from None
        try:
            run_id = runs.find_run(journal, args.run).run_id if args.run else None
            count = journal.export_jsonl(out, run_id=run_id)
        finally:
            if out is not sys.stdout:
                out.close()
        print(f"exported {count} entries", file=sys.stderr)
        return EXIT_OK


def _by_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--by", metavar="NAME",
                   help=f"who {what}, as recorded in the run and the audit trail (default: "
                        "your OS user name)")


def add_commands(sub: Any) -> None:
    p = sub.add_parser("resume", help="continue an interrupted or waiting run")
    p.add_argument("run_id", nargs="?", metavar="RUN_ID")
    p.add_argument("--all", action="store_true", help="every interrupted or waiting run")
    p.add_argument("--retry-failed", action="store_true",
                   help="with --all: also try the runs given up on after failing "
                        f"{RESUME_GIVE_UP_AFTER} times the same way")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--json", action="store_true")
    add_journal_option(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("approve", help="answer a waiting step and resume the run")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("step", metavar="STEP")
    p.add_argument("--decision", choices=[str(d) for d in ApprovalDecision], required=True)
    _by_option(p, "answers")
    p.add_argument("--comment", metavar="TEXT")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--json", action="store_true")
    add_journal_option(p)
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("undo", help="run the undo actions of a run's changes, latest first")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--step", metavar="ID", help="undo only this step")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--dry-run", action="store_true")
    _by_option(p, "undoes it")
    p.add_argument("--json", action="store_true")
    add_journal_option(p)
    p.set_defaults(func=cmd_undo)

    p = sub.add_parser("cancel", help="cancel a run that has not ended: none of its steps runs "
                                      "any more")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--reason", metavar="TEXT", help="why, as recorded")
    _by_option(p, "cancels it")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--json", action="store_true")
    add_journal_option(p)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("rerun", help="a new run of an ended (failed or cancelled) run's "
                                     "playbook with the same event, risk and vars")
    p.add_argument("run_id", metavar="RUN_ID")
    _by_option(p, "runs it again")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--json", action="store_true")
    add_journal_option(p)
    p.set_defaults(func=cmd_rerun)

    p = sub.add_parser("runs", help="list runs, or `runs show RUN_ID`")
    p.add_argument("what", nargs="*", metavar="show RUN_ID")
    p.add_argument("--status", choices=[str(s) for s in RunStatus])
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
    x = audit.add_parser("verify-export", help="check an exported JSONL file offline; exit 1 "
                                               "on any problem")
    x.add_argument("file", metavar="FILE")
    x.add_argument("--anchor", metavar="SEQ:HASH", help="a head kept elsewhere earlier")
    p.set_defaults(func=cmd_audit)
