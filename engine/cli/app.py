"""The `crownguard` command.

Exit codes: 0 success; 1 a run that did not succeed or a playbook that does not validate;
2 usage or input errors (one line each on stderr); 3 a run left waiting; 70 an internal error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__, runs
from ..config import Config, load_config
from ..errors import CrownguardError, PluginError, SpecError, UsageError
from ..journal import open_journal
from ..operators import cli_operator, recorded_by
from ..plugins import PluginHost
from ..runner import Runner
from ..secrets import install_log_redaction
from ..service.serve import add_command as add_serve_command
from ..service.worker.command import add_command as add_worker_command
from ..spec import Playbook, inspect_document
from ..validation import literal_credentials
from .access import add_commands as add_access_commands
from .console import prepare_streams, printable
from .fingerprints import add_commands as add_fingerprint_commands
from .inputs import STDIN, input_name, load_input
from .journal_cmd import add_commands as add_journal_commands
from .render import to_dot, to_mermaid
from .runs import (
    EXIT_DEGRADED,
    STRICT_HELP,
    add_journal_option,
    journal_for,
    print_answer,
    print_record,
)
from .runs import add_commands as add_run_commands
from .timeline import Timeline
from .triage import RunEvent, event_for_run
from .triage import add_commands as add_triage_commands

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WAITING, EXIT_INTERNAL = 0, 1, 2, 3, 70


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _host() -> PluginHost:
    return PluginHost.from_entry_points()


def _print_problems(error: SpecError, stream: Any = None) -> None:
    stream = stream or sys.stderr
    for problem in error.problems:
        print(printable(problem), file=stream)


# --- commands -------------------------------------------------------------------------------


PLAYBOOK_SUFFIXES = (".yaml", ".yml", ".json")


def playbook_files(directory: Path) -> list[Path]:
    """The playbook files under `directory`, as `crownguard test` collects scenario files:
    YAML and JSON files, not scenarios (`*.scenario.yaml`), not in hidden folders."""
    from ..scenarios.format import SCENARIO_SUFFIXES

    return sorted(p for p in directory.rglob("*")
                  if p.name.endswith(PLAYBOOK_SUFFIXES) and not p.name.endswith(SCENARIO_SUFFIXES)
                  and not any(part.startswith(".") for part in p.relative_to(directory).parts)
                  and p.is_file())


def load_playbook(path: str, actions: dict[str, Any] | None = None) -> Playbook:
    """A playbook from its file, or from standard input for `-`."""
    return inspect_document(load_input(path), actions)


def cmd_validate(args: argparse.Namespace) -> int:
    host = _host()
    actions = host.actions
    status = EXIT_OK
    for given in args.playbooks:
        path = Path(given)
        if given == STDIN:
            paths = [given]
        elif path.is_dir():
            found = playbook_files(path)
            if not found:
                print(f"{given}: no playbook files (*.yaml, *.yml, *.json) in this directory",
                      file=sys.stderr)
                status = EXIT_USAGE
            paths = [str(p) for p in found]
        elif not path.exists():  # an input error, not a playbook that does not validate
            print(f"{given}: no such file", file=sys.stderr)
            status = EXIT_USAGE
            continue
        else:
            paths = [given]
        status = max(status, _validate_files(paths, actions))
    return status


def _validate_files(paths: list[str], actions: dict[str, Any]) -> int:
    status = EXIT_OK
    for path in paths:
        try:
            doc = load_input(path)
        except SpecError as exc:
            _print_problems(exc, sys.stdout)
            status = EXIT_FAILED
            continue
        # Warnings do not fail validation: `file:line: warning: ...`, before the verdict.
        _print_problems(SpecError(literal_credentials(doc)), sys.stdout)
        try:
            playbook = inspect_document(doc, actions)
        except SpecError as exc:
            _print_problems(exc, sys.stdout)
            status = EXIT_FAILED
            continue
        print(f"{input_name(path)}: ok ({len(playbook.steps)} steps, playbook '{playbook.name}')")
    return status


def cmd_run(args: argparse.Namespace) -> int:
    if args.playbook == STDIN and args.event == STDIN:
        raise UsageError("run: only one of PLAYBOOK and --event can be '-' (standard input)")
    host = _host()
    playbook = load_playbook(args.playbook, host.actions)
    given = event_for_run(args.event, host) if args.event else RunEvent({})
    if given.note:
        print(given.note, file=sys.stderr)
    config = load_config(args.config, host.connection_types)
    variables = dict(_parse_var(v) for v in args.var or [])
    sink: Callable[[dict[str, Any]], None] | None = None
    if not args.json:
        sink = Timeline(steps=[step.id for step in playbook.steps])
        if args.dry_run:
            print("dry run: side-effecting actions are not called")
    # Real runs are journaled (resume, approve, undo, audit need it); dry runs are not.
    journal = None if args.dry_run or args.no_journal else open_journal(args.journal)
    runner = Runner(host, config, dry_run=args.dry_run, journal=journal, on_event=sink,
                    max_concurrency=args.max_concurrency)
    try:
        by, via = cli_operator(None)
        record = runner.run(playbook, given.event, risk=given.risk, variables=variables,
                            details=recorded_by(by, via=via))
    finally:
        config.connections.close()
        if journal is not None:
            journal.close()
    return print_record(record, args.json, strict=args.strict)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not 1 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 1024")
    return value


def _parse_var(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise UsageError(f"--var takes NAME=VALUE, got '{text}'")
    try:
        return name, json.loads(value)
    except (ValueError, RecursionError):  # not JSON (or absurdly nested): the text itself
        return name, value


def cmd_graph(args: argparse.Namespace) -> int:
    playbook = load_playbook(args.playbook)
    print(to_dot(playbook) if args.format == "dot" else to_mermaid(playbook), end="")
    return EXIT_OK


def cmd_actions(args: argparse.Namespace) -> int:
    host = _host()
    actions = host.actions
    if args.name:
        action = actions.get(args.name)
        if action is None:
            close = [a for a in actions if a.split(".")[0] == args.name.split(".")[0]]
            hint = f" (did you mean: {', '.join(sorted(close))})" if close else ""
            raise UsageError(f"unknown action '{args.name}'{hint}")
        if args.json:
            print(json.dumps(action.describe(), indent=2))
            return EXIT_OK
        info = action.describe()
        print(f"{action.name}  (plugin {action.plugin})")
        print()
        print(info["description"])
        print()
        print(f"side effect: {'yes' if action.side_effect else 'no'}"
              + (f"; undo: {action.undo}" if action.undo else ""))
        if action.connection:
            print(f"connection: {action.connection}")
        if action.retry:
            print(f"default retry: {action.retry.max_attempts} attempts, "
                  f"backoff {action.retry.backoff_seconds:g}s")
        print("\ninputs:")
        print(json.dumps(action.input_schema, indent=2))
        print("\noutput:")
        print(json.dumps(action.output_schema, indent=2))
        return EXIT_OK
    if args.json:
        print(json.dumps([a.describe() for _, a in sorted(actions.items())], indent=2))
        return EXIT_OK
    width = max((len(n) for n in actions), default=10)
    for name, action in sorted(actions.items()):
        marker = "*" if action.side_effect else " "
        print(f"{marker} {name:<{width}}  {action.summary}")
    print("\n* changes something at a vendor (has a side effect)")
    return EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    host = _host()
    actions = host.actions
    types = host.connection_types
    mocks = host.mock_servers
    for name, info in sorted(host.plugins.items()):
        n_actions = sum(1 for a in actions.values() if a.plugin == name)
        n_types = [t.name for t in types.values() if t.plugin == name]
        dist = f"{info.distribution} {info.version}".strip() or "-"
        print(f"{name:<14} {info.module:<32} {dist:<24} actions: {n_actions:<3} "
              f"connections: {', '.join(n_types) or '-'}")
    print(f"\n{len(host.plugins)} plugins, {len(actions)} actions, {len(mocks)} mock servers")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    if args.serve:
        from .demo_serve import run_served_demo

        return run_served_demo(_host())
    from .demo import run_demo

    return run_demo(_host(), quiet=args.quiet)


# --- plugin commands ----------------------------------------------------------------------------


class _PluginCommandContext:
    """The CommandContext (hookspecs) a plugin command's `run` gets: its arguments and host."""

    def __init__(self, host: PluginHost, args: argparse.Namespace):
        self.host = host
        self.args = args

    def config(self) -> Config:
        return load_config(getattr(self.args, "config", None), self.host.connection_types)

    def answer(self, run_id: str, step: str, decision: str, *, by: str,
               comment: str | None = None, aliases: Sequence[str] = ()) -> int:
        as_json = bool(getattr(self.args, "json", False))
        with journal_for(self.args) as journal:
            result = runs.answer(journal, self.host, run_id, step, decision, by=by,
                                 comment=comment, config_path=getattr(self.args, "config", None),
                                 on_event=None if as_json else Timeline(), aliases=aliases)
            return print_answer(result, as_json)


def add_plugin_commands(sub: Any, host: PluginHost) -> None:
    """The commands plugins register (crownguard_register_commands), after the built-ins."""
    for command in host.commands.values():
        if command.name in sub.choices:
            raise PluginError(f"plugin '{command.plugin}' registers command '{command.name}', "
                              "which is a built-in command")
        p = sub.add_parser(command.name, help=command.help)
        command.configure(p)

        def run(args: argparse.Namespace, command: Any = command) -> int:
            return int(command.run(args, _PluginCommandContext(host, args)))

        p.set_defaults(func=run)


# --- entry point ------------------------------------------------------------------------------


def build_parser(host: PluginHost | None = None) -> argparse.ArgumentParser:
    """The parser of every built-in command and of the commands the plugins of `host` (by
    default: the installed ones) register."""
    parser = _Parser(prog="crownguard", description="Respond to AI-model exfiltration with "
                                                    "playbooks.",
                     epilog="exit codes: 0 ok; 1 a run failed or was cancelled, or a playbook "
                            "does not validate; 2 a usage or input error (one line each, "
                            "naming the file); 3 a run is waiting; "
                            f"{EXIT_DEGRADED} (with --strict) a run succeeded only with "
                            "handled failures, a rejected approval or an expired wait; 70 "
                            "an internal error (a "
                            "bug, never bad input: please report it)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("--version", action="version", version=f"crownguard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("validate", help="check playbooks (schema, graph, expressions, actions)")
    p.add_argument("playbooks", nargs="+", metavar="PLAYBOOK",
                   help="playbook files, or directories to check every playbook file in")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="run a playbook once")
    p.add_argument("playbook", metavar="PLAYBOOK", help="the playbook file ('-': standard input)")
    p.add_argument("--event", metavar="FILE",
                   help="the event (JSON or YAML object; '-': standard input): a normalised "
                        "event or a payload an installed event source reads (an Incydr file "
                        "event or alert) is normalised, detected and scored as respond does")
    p.add_argument("--config", metavar="FILE", help="the connections file")
    p.add_argument("--dry-run", action="store_true", help="call no side-effecting action")
    p.add_argument("--json", action="store_true", help="print the run record as JSON")
    p.add_argument("--strict", action="store_true", help=STRICT_HELP)
    p.add_argument("--var", action="append", metavar="NAME=VALUE", help="set vars.NAME")
    p.add_argument("--max-concurrency", type=_positive_int, metavar="N",
                   help="steps in flight at most")
    p.add_argument("--no-journal", action="store_true", help="keep no durable record")
    add_journal_option(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("graph", help="print the step graph")
    p.add_argument("playbook", metavar="PLAYBOOK")
    p.add_argument("--format", choices=["mermaid", "dot"], default="mermaid")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("actions", help="list installed actions, or show one")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_actions)

    p = sub.add_parser("plugins", help="list installed plugins")
    p.set_defaults(func=cmd_plugins)

    add_run_commands(sub)
    add_triage_commands(sub)
    add_serve_command(sub)
    add_worker_command(sub)
    add_fingerprint_commands(sub)
    add_journal_commands(sub)
    add_access_commands(sub)

    p = sub.add_parser("demo", help="run the shipped scenarios against local mock vendors")
    p.add_argument("--quiet", action="store_true", help="summary only")
    p.add_argument("--serve", action="store_true", help="play the alerts through a real "
                   "`crownguard serve` on a free loopback port (signed, over HTTP)")
    p.set_defaults(func=cmd_demo)

    add_plugin_commands(sub, host or _host())
    _verbose_after_commands(parser)
    return parser


def _verbose_after_commands(parser: argparse.ArgumentParser) -> None:
    """`-v` after a (sub)command too: `crownguard validate x.yaml -v`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in set(action.choices.values()):
                if "-v" not in command._option_string_actions \
                        and "--verbose" not in command._option_string_actions:
                    command.add_argument("-v", "--verbose", action="count", default=0,
                                         dest="verbose_after", help="more logging")
                _verbose_after_commands(command)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except CrownguardError as exc:  # a plugin that fails to load or registers a bad command
        print(f"crownguard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    verbose = args.verbose + getattr(args, "verbose_after", 0)
    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2),
                        format="%(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    prepare_streams()  # a terminal's encoding never ends a command halfway
    try:
        return int(args.func(args))
    except SpecError as exc:
        _print_problems(exc)
        return EXIT_USAGE
    except CrownguardError as exc:
        print(f"crownguard: {printable(exc, newlines=True)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("crownguard: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        if os.environ.get("CROWNGUARD_DEBUG"):
            raise
        print(f"crownguard: internal error: {type(exc).__name__}: {exc} "
              "(set CROWNGUARD_DEBUG=1 for a traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["build_parser", "main"]
