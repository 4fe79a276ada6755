"""`crownguard triage`, `respond` and `test`: from an alert to a response, and scenario tests.

    crownguard triage EVENT.json [--policy FILE] [--json]
    crownguard respond EVENT.json [--policy FILE] [--config FILE] [--json] [--dry-run]
                       [--strict]
    crownguard test PATH...

EVENT.json holds a normalised event, a raw payload an event source of the installed plugins
reads (an Incydr file event or alert, recognised by shape), or a list of them. Every event is
normalised before any is triaged: one bad item is an input error naming the file and the item,
and nothing is triaged. `respond` needs `--config` (but
for a dry run) and checks all its input, and what each chosen run needs from the connections
file, before it claims a dedupe slot. `run --event FILE` reads its event through
`event_for_run`, as triage reads one. Exit codes as
everywhere: 0 ok, 1 a run (or a scenario) failed, 2 usage or input error, 3 a run is left
waiting for an answer, 4 (`respond --strict`) a run succeeded only with handled failures, a
rejected approval or an expired wait. `cli.py` wires these commands in with
`add_commands(subparsers)`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..config import Config, load_config
from ..errors import (
    CrownguardError,
    FingerprintIndexError,
    Problem,
    SpecError,
    TriageInputError,
    UsageError,
)
from ..journal import journal_target, open_journal
from ..journal.postgres_dedupe import PostgresDedupe
from ..plugins import PluginHost
from ..service.access_ledger import open_access
from ..sources import EventSource, payload_items
from ..spec import Playbook
from ..triage import (
    DedupeStore,
    FingerprintIndex,
    InMemoryDedupe,
    ModelMovementEvent,
    Policy,
    Router,
    RoutingSettings,
    ScratchDedupe,
    Triage,
    Verdict,
    load_policy,
    normalise_many,
    recognise,
)
from ..triage.dedupe import dedupe_path_beside
from ..triage.detection.fetch import ContentFetch, fetch_for
from ..triage.events import UNKNOWN as UNRECOGNISED
from ..triage.respond import (
    open_dedupe_store,
    open_fingerprint_index,
    open_history,
    respond,
    triage_with,
)
from .console import printable
from .inputs import input_name, load_input
from .runs import EXIT_DEGRADED, STRICT_HELP, record_exit
from .timeline import Timeline, dry_run_branches, summary_table

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WAITING = 0, 1, 2, 3


# --- shared by triage, respond and the demo ----------------------------------------------------


def load_payload(path: str | Path) -> Any:
    """An event file's data: one event object or a list (JSON or YAML)."""
    data = load_input(path, locate=False).data  # event errors name items, not lines
    if not isinstance(data, dict | list):
        raise TriageInputError(f"{input_name(path)}: expected an event object or a list of "
                               "events")
    return data



def _event_problem(file: str, where: str | None, problem: Problem) -> Problem:
    """`events.json: item 3: incydr.file_event: file.name: is required`."""
    origin, message = problem.file, problem.message
    if message.startswith("(event): "):  # the whole payload, not one of its fields
        message = message.removeprefix("(event): ")
        origin = "" if origin == "event" else origin
    text = ": ".join(part for part in (where, origin, message) if part)
    return Problem(file, None, text, problem.pointer, "event")


def normalise_payload(path: str | Path, payload: Any, policy: Policy,
                      sources: Iterable[EventSource], *,
                      outcome: str = "nothing was triaged") -> list[ModelMovementEvent]:
    """Every event in an event file's payload, normalised.

    A bad event is an input error naming the file and, in a list, the item (from 1). Every
    bad item is reported and no event is returned: a batch is never half triaged, and an
    event is never skipped without a word."""
    sources = tuple(sources)
    items = payload_items(payload, sources)
    events: list[ModelMovementEvent] = []
    problems: list[Problem] = []
    bad = 0
    for where, item in items:
        try:
            events.extend(normalise_many(item, options=policy.options,
                                         mappings=policy.mappings.values(), sources=sources))
        except SpecError as exc:
            bad += 1
            problems.extend(_event_problem(str(path), where, p) for p in exc.problems)
    if problems:
        if items[0][0] is not None:
            problems.append(Problem(str(path), None, f"{bad} of {len(items)} "
                                    f"item{'s' if len(items) != 1 else ''} invalid: {outcome}"))
        raise SpecError(problems)
    return events


@dataclass(frozen=True)
class RunEvent:
    """What `crownguard run --event FILE` hands the playbook: the event and risk, and a note
    for the user when the payload was taken as written."""

    event: dict[str, Any]
    risk: dict[str, Any] | None = None
    note: str | None = None


def event_for_run(path: str | Path, host: PluginHost) -> RunEvent:
    """The event of `run --event FILE`, read as `respond` reads it: a normalised event or a
    payload an installed event source reads (an Incydr file event or alert) goes through
    triage's normalise -> detect -> score (the shipped policy's defaults), so the playbook
    sees `event` and `risk` as a routed run does. A payload of another shape is handed over as
    written, with a note saying so (a playbook of your own may expect just that)."""
    name = input_name(path)
    payload = load_input(path).data
    if not isinstance(payload, dict):
        raise UsageError(f"{name}: the event must be a JSON object")
    sources = tuple(host.event_sources.values())
    if recognise(payload, sources) == UNRECOGNISED:
        described = ", ".join(["a crownguard event",
                               *[s.description for s in sources if s.description]])
        return RunEvent(payload, note=f"{name}: not {described}: the playbook gets the event "
                                      "as written, not normalised, detected or scored")
    policy = load_policy(None)
    events = normalise_payload(name, payload, policy, sources,
                               outcome="nothing was run")
    if len(events) != 1:
        raise UsageError(f"{name}: the payload holds {len(events)} events (an alert's files, "
                         "a search answer): `crownguard run` runs a playbook on one event; "
                         "`crownguard respond` takes them all")
    triage = Triage(policy, Router([]), sources=sources)
    verdict = triage.triage_event(events[0])
    return RunEvent(verdict.event_data, verdict.risk_data)


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
    return [indent + printable(line) for line in lines]  # event text, escaped


def _host() -> PluginHost:
    return PluginHost.from_entry_points()


def _dedupe_store(args: argparse.Namespace, policy: Policy, settings: RoutingSettings, *,
                  writable: bool) -> DedupeStore:
    """The policy's store, else a file beside the journal; in memory for dry runs and
    --no-journal. A file is opened for reading only when it already exists: looking
    (`triage`, a dry run) creates nothing."""
    path = settings.dedupe_store
    where = f"{policy.source}: routing.dedupe_store: "
    if path is None:
        if getattr(args, "dry_run", False) or getattr(args, "no_journal", False):
            return InMemoryDedupe()
        journal = journal_target(getattr(args, "journal", None) or None)
        if isinstance(journal, str):  # PostgreSQL: the claims live in the journal's database
            return PostgresDedupe(journal)
        path, where = dedupe_path_beside(journal), ""
    if writable or path.exists():
        return open_dedupe_store(path, where)
    return InMemoryDedupe()


def _fingerprint_index(args: argparse.Namespace, policy: Policy,
                       settings: RoutingSettings) -> FingerprintIndex | None:
    if args.fingerprints:
        path, where = Path(args.fingerprints), "--fingerprints"
    elif settings.fingerprints is not None:
        path, where = settings.fingerprints, f"{policy.source}: routing.fingerprints"
    else:
        return None
    return open_fingerprint_index(path, where)


def _content_fetch(args: argparse.Namespace, host: PluginHost, config: Config | None,
                   triage: Triage) -> ContentFetch | None:
    """Content checks from the sources the connections file reaches (Incydr's file
    download), unless --no-fetch; verdicts cached in the index's file, else beside the
    dedupe store, else (a dry run) in memory."""
    if config is None or getattr(args, "no_fetch", False):
        return None
    index_path = triage.index.path if triage.index is not None else None
    try:
        return fetch_for(host, config, index_path, getattr(triage.router.store, "path", None))
    except FingerprintIndexError as exc:
        raise TriageInputError(f"content cache: {exc}") from None


def _triage_for(args: argparse.Namespace, policy: Policy, host: PluginHost, *, writable: bool,
                variables: dict[str, Any] | None = None,
                config: Config | None = None) -> Triage:
    settings = RoutingSettings.from_policy(policy)
    with ExitStack() as opened:  # the store is closed again should the index not open
        store = _dedupe_store(args, policy, settings, writable=writable)
        close = getattr(store, "close", None)
        if close is not None:
            opened.callback(close)
        # The risk history lives in the store's file: read only for `triage` and dry runs.
        history = open_history(store, writable=writable)
        if history is not None:
            opened.callback(history.close)
        index = _fingerprint_index(args, policy, settings)
        opened.pop_all()
    triage = triage_with(policy, host, store, index, variables=variables, history=history)
    try:
        triage.fetch = _content_fetch(args, host, config, triage)
        if not getattr(args, "no_journal", False):  # grants and denials are context, read only
            triage.access = open_access(journal_target(getattr(args, "journal", None) or None))
    except CrownguardError:
        triage.close()
        raise
    return triage


# --- commands ----------------------------------------------------------------------------------


def cmd_triage(args: argparse.Namespace) -> int:
    payload = load_payload(args.event)
    policy = load_policy(args.policy)
    host = _host()
    events = normalise_payload(input_name(args.event), payload, policy,
                               host.event_sources.values())
    # The connections file: its settings.vars, which triggers see as respond gives them, and
    # the content sources it reaches (unless --no-fetch).
    config = load_config(args.config, host.connection_types) if args.config else None
    try:
        triage = _triage_for(args, policy, host, writable=False,
                             variables=config.vars if config else None, config=config)
        # Claims go to a scratch copy: an event twice in this input is a duplicate the second
        # time, as respond would find, and the real store is not written.
        triage.router.store = ScratchDedupe(triage.router.store)
        try:
            triage.prefetch(events)
            verdicts = [triage.triage_event(event, claim=True) for event in events]
        finally:
            triage.close()
    finally:
        if config is not None:
            config.connections.close()
    if args.json:
        print(json.dumps([v.to_dict() for v in verdicts], indent=2, default=str))
        return EXIT_OK
    if not verdicts:
        print(f"{input_name(args.event)}: no events")
    for number, verdict in enumerate(verdicts):
        if number:
            print()
        print("\n".join(describe_verdict(verdict)))
    return EXIT_OK


def cmd_respond(args: argparse.Namespace) -> int:
    # Everything that can be wrong with the input is found before the first dedupe slot is
    # claimed: a claimed slot would make the corrected rerun a "duplicate" that starts nothing.
    if not args.config and not args.dry_run:
        raise TriageInputError("respond: --config FILE is required: the connections file "
                               "the playbooks act through (nothing was triaged or started; "
                               "--dry-run works without one)")
    payload = load_payload(args.event)
    host = _host()
    with ExitStack() as stack:
        config = load_config(args.config, host.connection_types)
        stack.callback(config.connections.close)
        policy = load_policy(args.policy)
        events = normalise_payload(input_name(args.event), payload, policy,
                                   host.event_sources.values(),
                                   outcome="nothing was triaged or started")
        triage = _triage_for(args, policy, host, writable=not args.dry_run,
                             variables=config.vars, config=config)
        stack.callback(triage.close)
        triage.prefetch(events)
        journal = None if args.dry_run or args.no_journal else open_journal(args.journal)
        if journal is not None:
            stack.callback(journal.close)
        if not events and not args.json:
            print(f"{input_name(args.event)}: no events")
        responses = respond(triage, host, config, events, dry_run=args.dry_run,
                            journal=journal, on_event=None if args.json else Timeline(),
                            observer=None if args.json else _Printer(args.dry_run))
    if args.json:
        print(json.dumps([r.to_dict() for r in responses], indent=2, default=str))
    else:
        for run_id in (run_id for r in responses for run_id in r.released):
            print(f"run {run_id} failed before any side-effecting step: its dedupe claim was "
                  "released, so respond starts it again for this event once the cause is "
                  "fixed")
    codes = [record_exit(run, args.strict) for r in responses for run in r.runs]
    # The worst wins: failed, then waiting, then (with --strict) degraded.
    for code in (EXIT_FAILED, EXIT_WAITING, EXIT_DEGRADED):
        if code in codes:
            return code
    return EXIT_OK


class _Printer:
    """Prints what `respond` does as it does it."""

    def __init__(self, dry_run: bool):
        self.dry_run = dry_run

    def verdict(self, number: int, verdict: Verdict) -> None:
        print(("\n" if number else "") + "\n".join(describe_verdict(verdict)))

    def starting(self, playbook: Playbook) -> None:
        print(f"\nrunning {playbook.name}"
              + (" (dry run: side-effecting actions are not called)" if self.dry_run else ""))

    def finished(self, record: dict[str, Any]) -> None:
        print("\n" + summary_table(record))
        if record.get("branches"):
            print("dry run: the run would wait; after each answer:")
            print("\n".join(f"  {line}" for line in dry_run_branches(record)))
        print(f"run {record['run_id']}: {record.get('outcome') or record['status']}")


def cmd_test(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from ..scenarios import collect_scenario_files
    from ..triage.scenarios import run_scenario_files

    stream = out or sys.stdout
    files = collect_scenario_files([Path(p) for p in args.paths])
    if not files:
        raise TriageInputError("no scenario files (*.scenario.yaml) under "
                               + ", ".join(args.paths))
    results = []
    for result in run_scenario_files(files, _host()):
        results.append(result)
        line = (f"{'PASS' if result.passed else 'FAIL'} {result.scenario.name}  "
                f"({result.scenario.path}, {result.seconds:.1f} s)")
        if not result.passed:
            line += f"\n     {result.explain(args.verbose_failures)}"
        print(printable(line, newlines=True), file=stream, flush=True)
    failed = [r for r in results if not r.passed]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed", file=stream)
    return EXIT_FAILED if failed else EXIT_OK


# --- wiring ------------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("event", metavar="EVENT",
                   help="a normalised event, a payload an installed event source reads "
                        "(the incydr plugin's file events and alerts), or a list; '-' "
                        "reads standard input")
    p.add_argument("--policy", metavar="FILE", help="risk and routing policy (merged over "
                                                    "the shipped defaults)")
    p.add_argument("--fingerprints", metavar="FILE",
                   help="fingerprint index of registered models (overrides the policy's)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--journal", metavar="PATH",
                   help="the run journal; the dedupe state is kept beside it")
    p.add_argument("--no-fetch", action="store_true",
                   help="never fetch a file's first bytes from a content source (Incydr) "
                        "when metadata leaves the model question open")


def add_commands(sub: Any) -> None:
    """Register `triage`, `respond` and `test` on the `crownguard` subparsers."""
    p = sub.add_parser("triage", help="detect, score and route events without running "
                                      "anything")
    _common(p)
    p.add_argument("--config", metavar="FILE",
                   help="a connections file, for its settings.vars (triggers see them as "
                        "respond gives them) and the content sources it reaches (Incydr's "
                        "file download); no playbook action is called")
    p.set_defaults(func=cmd_triage)

    p = sub.add_parser("respond", help="triage events and run the playbooks they start")
    _common(p)
    p.add_argument("--config", metavar="FILE", help="the connections file")
    p.add_argument("--dry-run", action="store_true", help="call no side-effecting action")
    p.add_argument("--no-journal", action="store_true", help="keep no durable record")
    p.add_argument("--strict", action="store_true", help=STRICT_HELP)
    p.set_defaults(func=cmd_respond)

    p = sub.add_parser("test", help="run scenario tests (*.scenario.yaml) against mock "
                                    "vendors")
    p.add_argument("paths", nargs="+", metavar="PATH", help="scenario files or directories")
    p.add_argument("--verbose-failures", action="store_true",
                   help="print every mismatch of a failing scenario, not only the first")
    p.set_defaults(func=cmd_test)
