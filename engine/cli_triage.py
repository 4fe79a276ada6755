"""`crownguard triage`, `respond` and `test`: from an alert to a response, and scenario tests.

    crownguard triage EVENT.json [--policy FILE] [--json]
    crownguard respond EVENT.json [--policy FILE] [--config FILE] [--json] [--dry-run]
    crownguard test PATH...

EVENT.json holds a normalised event, a raw Incydr file event or alert (recognised by shape),
or a list of them. Exit codes as everywhere: 0 ok, 1 a run (or a scenario) failed, 2 usage or
input error, 3 a run is left waiting for an answer. `cli.py` wires these commands in with
`add_commands(subparsers)`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .config import load_config
from .errors import CrownguardError
from .fingerprints import FingerprintIndex
from .journal import default_journal_path, open_journal
from .loader import load_file
from .plugins import PluginHost
from .risk import load_policy
from .routing import DedupeStore, InMemoryDedupe, SQLiteDedupe, Triage, Verdict, build_triage
from .runner import Runner
from .timeline import Timeline, summary_table

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WAITING = 0, 1, 2, 3
DEDUPE_FILE = "dedupe.sqlite"


class TriageInputError(CrownguardError):
    """The event file or an option cannot be used."""


# --- shared by triage, respond and the demo ----------------------------------------------------


def load_payload(path: str | Path) -> Any:
    """An event file's data: one event object or a list (JSON or YAML)."""
    data = load_file(path).data
    if not isinstance(data, dict | list):
        raise TriageInputError(f"{path}: expected an event object or a list of events")
    return data


def _size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def describe_verdict(verdict: Verdict, indent: str = "") -> list[str]:
    """A verdict as a person reads it: what moved, is it a model, how risky and why, and
    which playbooks it starts (and why the others do not)."""
    event = verdict.event_data
    actor, file, dest = event["actor"], event["file"], event["destination"]
    trust = {True: "trusted", False: "untrusted", None: "trust unknown"}[dest["trusted"]]
    where = dest["name"] or dest["domain"] or ""
    lines = [f"event {event['id']}  ({event['origin']}, {event['time']})",
             f"  {actor['email']}{' (departing)' if actor['departing'] else ''} moved "
             f"{file['name']} ({_size(file['size'])}) to {dest['kind']}"
             f"{': ' + where if where else ''} ({trust})"
             + (f" from {event['device']['hostname']}" if event["device"]["hostname"] else "")]
    d = verdict.detection
    kind = f"model, {d.format or 'format unknown'}" if d.is_model else "not a model"
    lines.append(f"  detection  {kind} (confidence {d.confidence:.2f}, {d.method})")
    lines += [f"             - {line}" for line in d.evidence[:4]]
    risk = verdict.risk
    lines.append(f"  risk       {risk.score} {risk.level}")
    for reason in risk.reasons:
        weight = f"{'+' if reason.weight >= 0 else ''}{reason.weight:g}"
        lines.append(f"             {weight:>5}  {reason.indicator:<22} {reason.detail}")
    chosen = [p.name for p in verdict.playbooks]
    lines.append(f"  playbooks  {', '.join(chosen) if chosen else 'none'}")
    for decision in verdict.decisions:
        if (decision.matched and not decision.chosen) or decision.reason.startswith("trigger"
                                                                                      " failed"):
            lines.append(f"             - {decision.playbook}: {decision.reason}")
    if not chosen and not any(d.matched for d in verdict.decisions):
        lines.append(f"             - no playbook's trigger matches this event "
                     f"({len(verdict.decisions)} checked): nothing to do")
    return [indent + line for line in lines]


def _host() -> PluginHost:
    return PluginHost.from_entry_points()


def _dedupe_store(args: argparse.Namespace, *, writable: bool) -> DedupeStore | None:
    """The policy's store wins (None here); else a file beside the journal, opened for
    reading only when it already exists; in memory for dry runs and --no-journal."""
    if getattr(args, "dry_run", False) or getattr(args, "no_journal", False):
        return InMemoryDedupe()
    journal = Path(args.journal) if getattr(args, "journal", None) else default_journal_path()
    path = journal.parent / DEDUPE_FILE
    if writable or path.is_file():
        return SQLiteDedupe(path)
    return InMemoryDedupe()


def _triage_for(args: argparse.Namespace, host: PluginHost, *, writable: bool,
                variables: dict[str, Any] | None = None) -> Triage:
    policy = load_policy(args.policy)
    store = None if (policy.data.get("routing") or {}).get("dedupe_store") else \
        _dedupe_store(args, writable=writable)
    index = None
    if args.fingerprints:
        if not Path(args.fingerprints).is_file():
            raise TriageInputError(f"--fingerprints: no fingerprint index at {args.fingerprints}")
        index = FingerprintIndex(args.fingerprints)
    return build_triage(policy, host, variables=variables, store=store, index=index)


# --- commands ----------------------------------------------------------------------------------


def cmd_triage(args: argparse.Namespace) -> int:
    payload = load_payload(args.event)
    host = _host()
    triage = _triage_for(args, host, writable=False)
    try:
        verdicts = triage.triage(payload)
    finally:
        triage.close()
    if args.json:
        print(json.dumps([v.to_dict() for v in verdicts], indent=2, default=str))
        return EXIT_OK
    for number, verdict in enumerate(verdicts):
        if number:
            print()
        print("\n".join(describe_verdict(verdict)))
    return EXIT_OK


def cmd_respond(args: argparse.Namespace) -> int:
    payload = load_payload(args.event)
    host = _host()
    config = load_config(args.config, host.connection_types)
    journal = None if args.dry_run or args.no_journal else open_journal(args.journal)
    sink: Callable[[dict[str, Any]], None] | None = None if args.json else Timeline()
    results: list[dict[str, Any]] = []
    worst = EXIT_OK
    triage: Triage | None = None
    try:
        triage = _triage_for(args, host, writable=True, variables=config.vars)
        # Dry runs start nothing, so they claim no dedupe slot.
        verdicts = triage.triage(payload, claim=not args.dry_run)
        for number, verdict in enumerate(verdicts):
            if not args.json:
                print(("\n" if number else "") + "\n".join(describe_verdict(verdict)))
            runs = []
            for playbook in verdict.playbooks:
                if not args.json:
                    print(f"\nrunning {playbook.name}"
                          + (" (dry run: side-effecting actions are not called)"
                             if args.dry_run else ""))
                runner = Runner(host, config, dry_run=args.dry_run, journal=journal,
                                on_event=sink)
                record = runner.run(playbook, verdict.event_data, risk=verdict.risk_data)
                runs.append(record)
                worst = _worse(worst, record["status"])
                if not args.json:
                    print("\n" + summary_table(record))
                    print(f"run {record['run_id']}: {record['status']}")
            results.append({**verdict.to_dict(), "runs": runs})
    finally:
        config.connections.close()
        if triage is not None:
            triage.close()
        if journal is not None:
            journal.close()
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return worst


def _worse(current: int, status: str) -> int:
    if status == "succeeded":
        return current
    if status == "waiting":
        return EXIT_WAITING if current == EXIT_OK else current
    return EXIT_FAILED


def cmd_test(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from .scenarios import collect_scenario_files, run_scenario_files

    stream = out or sys.stdout
    files = collect_scenario_files([Path(p) for p in args.paths])
    if not files:
        raise TriageInputError("no scenario files (*.scenario.yaml) under "
                               + ", ".join(args.paths))
    results = run_scenario_files(files, _host(), out=stream, verbose=args.verbose_failures)
    failed = [r for r in results if not r.passed]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed", file=stream)
    return EXIT_FAILED if failed else EXIT_OK


# --- wiring ------------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("event", metavar="EVENT",
                   help="a normalised event, a raw Incydr file event or alert, or a list")
    p.add_argument("--policy", metavar="FILE", help="risk and routing policy (merged over "
                                                    "the shipped defaults)")
    p.add_argument("--fingerprints", metavar="FILE",
                   help="fingerprint index of registered models (overrides the policy's)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--journal", metavar="PATH",
                   help="the run journal; the dedupe state is kept beside it")


def add_commands(sub: Any) -> None:
    """Register `triage`, `respond` and `test` on the `crownguard` subparsers."""
    p = sub.add_parser("triage", help="detect, score and route events without running "
                                      "anything")
    _common(p)
    p.set_defaults(func=cmd_triage)

    p = sub.add_parser("respond", help="triage events and run the playbooks they start")
    _common(p)
    p.add_argument("--config", metavar="FILE", help="the connections file")
    p.add_argument("--dry-run", action="store_true", help="call no side-effecting action")
    p.add_argument("--no-journal", action="store_true", help="keep no durable record")
    p.set_defaults(func=cmd_respond)

    p = sub.add_parser("test", help="run scenario tests (*.scenario.yaml) against mock "
                                    "vendors")
    p.add_argument("paths", nargs="+", metavar="PATH", help="scenario files or directories")
    p.add_argument("--verbose-failures", action="store_true",
                   help="print every mismatch of a failing scenario, not only the first")
    p.set_defaults(func=cmd_test)
