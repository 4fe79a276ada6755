"""From events to responses: triage each event, claim it, run the playbooks routing chose.

What `crownguard respond` does and what the service will do with every event it takes in;
it returns results and never prints (an observer sees each step as it happens). Also the
opening of the stores a triage needs, with messages that name the setting they came from.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..config import Config
from ..errors import FingerprintIndexError, TriageInputError
from ..journal import Journal
from ..plugins import PluginHost
from ..runner import Runner
from ..spec import Playbook
from .dedupe import DedupeStore, SQLiteDedupe
from .detection.fingerprints import FingerprintIndex
from .events import ModelMovementEvent
from .pipeline import Triage, Verdict, build_triage
from .policy import Policy


@dataclass
class Response:
    """One event's verdict and the run records of the playbooks it started."""

    verdict: Verdict
    runs: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.verdict.to_dict(), "runs": self.runs}


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

    An event is claimed just before its runs (a dry run starts nothing and claims nothing):
    should the process stop, the events after it are not marked as started. `on_event` sees
    every run event as the runner emits it (a live timeline).
    """
    responses = []
    for number, event in enumerate(events):
        verdict = triage.triage_event(event, claim=not dry_run)
        if observer is not None:
            observer.verdict(number, verdict)
        response = Response(verdict)
        for playbook in verdict.playbooks:
            if observer is not None:
                observer.starting(playbook)
            runner = Runner(host, config, dry_run=dry_run, journal=journal, on_event=on_event)
            record = runner.run(playbook, verdict.event_data, risk=verdict.risk_data)
            response.runs.append(record)
            if observer is not None:
                observer.finished(record)
        responses.append(response)
    return responses


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


def triage_with(policy: Policy, host: PluginHost, store: DedupeStore,
                index: FingerprintIndex | None, *,
                variables: dict[str, Any] | None = None) -> Triage:
    """A Triage that owns (and closes) `store` and `index`; they are closed again should
    building it fail."""
    with ExitStack() as opened:
        close = getattr(store, "close", None)
        if close is not None:
            opened.callback(close)
        if index is not None:
            opened.callback(index.close)
        triage = build_triage(policy, host, variables=variables, store=store, index=index)
        opened.pop_all()
    return triage
