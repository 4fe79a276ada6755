"""From events to responses: triage each event, claim it, run the playbooks routing chose.

What `crownguard respond` does and what the service will do with every event it takes in;
it returns results and never prints (an observer sees each step as it happens). Also the
opening of the stores a triage needs, with messages that name the setting they came from.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterable
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..config import Config
from ..errors import FingerprintIndexError, Problem, SpecError, TriageInputError
from ..journal import Journal
from ..journal.postgres_dedupe import PostgresDedupe
from ..kinds import EventType, RunStatus
from ..plugins import PluginHost
from ..preflight import Unready, unready
from ..runner import Runner
from ..spec import Playbook
from .dedupe import DedupeStore, SQLiteDedupe
from .detection.fingerprints import FingerprintIndex
from .events import ModelMovementEvent
from .pipeline import Triage, Verdict, build_triage
from .policy import Policy
from .risk.history import RecordingHistory
from .risk.store import SQLiteHistory
from .risk.store_pg import PostgresHistory


@dataclass
class Response:
    """One event's verdict, the run records of the playbooks it started, and the runs whose
    claim was released because they could not start (see `respond`)."""

    verdict: Verdict
    runs: list[dict[str, Any]] = field(default_factory=list)
    released: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.verdict.to_dict(), "runs": self.runs, "released": self.released}


class ResponseObserver(Protocol):
    """What a caller sees while `respond` works (the CLI prints it)."""

    def verdict(self, number: int, verdict: Verdict) -> None: ...

    def starting(self, playbook: Playbook) -> None: ...

    def finished(self, record: dict[str, Any]) -> None: ...


def respond(triage: Triage, host: PluginHost, config: Config,
            events: Iterable[ModelMovementEvent], *, dry_run: bool = False,
            journal: Journal | None = None,
            on_event: Callable[[dict[str, Any]], None] | None = None,
            observer: ResponseObserver | None = None) -> list[Response]:
    """Triage each event and run the playbooks it routes to, one event after the other.

    Every event is triaged first, claiming nothing; then every chosen run is checked for what
    its steps need (`preflight.unready`: connections, vars): anything missing is a SpecError
    naming the playbook, the step and the connection, and nothing is claimed or started. An
    event is claimed just before its runs (a dry run claims nothing): should the process
    stop, the events after it are not marked as started. A claim whose run could not start
    (the runner raised, or the run failed, before any side-effecting action was called) is
    released, so the same event can be responded to again once the cause is fixed; a run
    that did act keeps its claim (`crownguard rerun RUN_ID` runs it again). `on_event` sees
    every run event as the runner emits it (a live timeline).
    """
    verdicts = [triage.triage_event(event) for event in events]
    if not dry_run:
        problems = unready_runs(verdicts, host, config)
        if problems:
            raise not_ready_error(problems, config)
    responses = []
    for number, verdict in enumerate(verdicts):
        if not dry_run:
            verdict = triage.claim(verdict)
        if observer is not None:
            observer.verdict(number, verdict)
        response = Response(verdict)
        for playbook in verdict.playbooks:
            if observer is not None:
                observer.starting(playbook)
            record = _run_claimed(triage, host, config, verdict, playbook, response,
                                  dry_run=dry_run, journal=journal, on_event=on_event)
            response.runs.append(record)
            if observer is not None:
                observer.finished(record)
        responses.append(response)
    return responses


def unready_runs(verdicts: Iterable[Verdict], host: PluginHost,
                 config: Config) -> list[Unready]:
    """What the runs the verdicts choose would need and not have, each problem once."""
    found: dict[Unready, None] = {}
    for verdict in verdicts:
        for playbook in verdict.playbooks:
            for problem in unready(playbook, host.actions, config, event=verdict.event_data,
                                   risk=verdict.risk_data):
                found.setdefault(problem)
    return list(found)


def not_ready_error(problems: list[Unready], config: Config) -> SpecError:
    """One line per problem, naming the connections file, then what became of the input."""
    where = config.source if config.source and not config.source.startswith("<") else \
        "respond"
    lines = [Problem(where, None, str(problem), group="config") for problem in problems]
    steps = len({(p.playbook, p.step) for p in problems})
    lines.append(Problem(where, None, f"{steps} step{'s' if steps != 1 else ''} of the chosen "
                         "playbooks cannot run: nothing was claimed or started (fix the "
                         "connections file or the vars, then respond again)", group="config"))
    return SpecError(lines)


class _Acted:
    """An event sink that notes whether a side-effecting action was called, and passes every
    event on."""

    def __init__(self, host: PluginHost, playbook: Playbook,
                 then: Callable[[dict[str, Any]], None] | None):
        self.host, self.playbook, self.then = host, playbook, then
        self.acted = False

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.acted and event.get("type") == EventType.STEP_STARTED:
            step = self.playbook.by_id.get(str(event.get("step")))
            action = self.host.actions.get(step.action) if step is not None else None
            self.acted = action is None or action.side_effect
        if self.then is not None:
            self.then(event)


def _run_claimed(triage: Triage, host: PluginHost, config: Config, verdict: Verdict,
                 playbook: Playbook, response: Response, *, dry_run: bool,
                 journal: Journal | None,
                 on_event: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    """Run one chosen playbook; its claim is noted with the run id, and released when the run
    could not start (it raised or failed before any side-effecting action was called)."""
    run_id = uuid.uuid4().hex
    at = verdict.event.time.timestamp()
    router = triage.router
    if not dry_run:
        router.started(playbook.name, verdict.event, at=at, run_id=run_id)
    sink = _Acted(host, playbook, on_event)
    try:
        runner = Runner(host, config, dry_run=dry_run, journal=journal, on_event=sink)
        record = runner.run(playbook, verdict.event_data, risk=verdict.risk_data,
                            run_id=run_id)
    except BaseException:
        if not dry_run and not sink.acted:
            router.release(playbook.name, verdict.event, at=at)
        raise
    if not dry_run and not sink.acted and record.get("status") == RunStatus.FAILED:
        router.release(playbook.name, verdict.event, at=at)
        response.released.append(run_id)
    return record


# --- the stores a triage opens -----------------------------------------------------------------


def _not_a_dedupe_store(path: Path) -> str | None:
    """Why an existing file cannot hold dedupe state, or None. Checked before SQLiteDedupe
    opens it, which would add its table to any SQLite file."""
    if path.is_dir():
        return "is a directory, not a dedupe store"
    try:
        with closing(sqlite3.connect(path)) as db:
            tables = {row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB":
            return "is not a crownguard dedupe store (not a SQLite database)"
        return f"cannot be read as a dedupe store: {exc}"
    if tables and "starts" not in tables:
        return (f"is not a crownguard dedupe store (a SQLite database holding "
                f"{', '.join(sorted(tables)[:5])})")
    return None


def open_dedupe_store(path: Path, where: str = "") -> SQLiteDedupe:
    """The dedupe store at `path`; a TriageInputError naming `where` and the file when the
    file is something else or cannot be opened."""
    problem = _not_a_dedupe_store(path) if path.exists() else None
    if problem is None:
        try:
            return SQLiteDedupe(path)
        except (sqlite3.Error, OSError) as exc:
            problem = f"cannot open the dedupe store: {exc}"
    raise TriageInputError(f"{where}{path}: {problem}")


def open_fingerprint_index(path: Path, where: str) -> FingerprintIndex:
    """The fingerprint index at `path`; a TriageInputError naming `where` otherwise."""
    if not path.is_file():
        raise TriageInputError(f"{where}: no fingerprint index at {path}")
    try:
        return FingerprintIndex(path)
    except FingerprintIndexError as exc:
        raise TriageInputError(f"{where}: {exc}") from None


def open_history(store: DedupeStore, *, writable: bool
                 ) -> SQLiteHistory | PostgresHistory | None:
    """The risk history beside a dedupe store: in its SQLite file, or in the PostgreSQL
    journal's database for claims kept there (None for a store in memory: its history is in
    memory); `writable=False` reads it and records nothing there."""
    if isinstance(store, PostgresDedupe):
        return PostgresHistory(store.target.dsn, writable=writable)
    if not isinstance(store, SQLiteDedupe):
        return None
    try:
        return SQLiteHistory(store.path, writable=writable)
    except sqlite3.Error as exc:
        raise TriageInputError(f"{store.path}: cannot open the risk history: {exc}") from None


def triage_with(policy: Policy, host: PluginHost, store: DedupeStore,
                index: FingerprintIndex | None, *,
                variables: dict[str, Any] | None = None,
                history: RecordingHistory | None = None) -> Triage:
    """A Triage that owns (and closes) `store`, `index` and `history`; they are closed
    again should building it fail."""
    with ExitStack() as opened:
        for resource in (store, index, history):
            close = getattr(resource, "close", None)
            if close is not None:
                opened.callback(close)
        triage = build_triage(policy, host, variables=variables, store=store, index=index,
                              history=history)
        opened.pop_all()
    return triage
