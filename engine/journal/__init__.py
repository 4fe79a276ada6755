"""The run journal: durable run state and the tamper-evident audit trail.

`Journal` is the interface; `SQLiteJournal` is the default, one SQLite file in WAL mode shared
safely by threads and processes; `PostgresJournal` keeps the same in a PostgreSQL database
(`--journal postgresql://...`), shared by processes on any number of machines. The runner hands
every event to the journal (`journal(event)`) *before* it acts on it; `append` returns only once
the event is on disk. Every entry (run created, event, status change, approval) is chained by
hash (see `audit`), so `verify()` can say which entry was edited, removed or reordered.

The journal stores what it is given: callers redact secrets before (the runner does).
See docs/journal.md for the schema, the default path, leases and what verification can prove.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import JournalError
from .base import (
    DEFAULT_LEASE_SECONDS,
    ENV_JOURNAL,
    RESUME_GIVE_UP_AFTER,
    Approval,
    Journal,
    ProcessIdentity,
    ResumeFailure,
    RunRecord,
    default_journal_path,
    utc_now,
)
from .postgres_schema import is_dsn
from .sqlite import SQLiteJournal

if TYPE_CHECKING:
    from .postgres import PostgresJournal

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "ENV_JOURNAL",
    "RESUME_GIVE_UP_AFTER",
    "Approval",
    "Journal",
    "ProcessIdentity",
    "ResumeFailure",
    "RunRecord",
    "SQLiteJournal",
    "default_journal_path",
    "is_dsn",
    "journal_target",
    "open_journal",
    "utc_now",
]


def journal_target(path: str | Path | None = None, env: Mapping[str, str] | None = None
                   ) -> str | Path:
    """Where the journal is: a PostgreSQL DSN (`postgresql://...`, kept as text: a Path would
    fold its `//`), else the file at `path` or `default_journal_path(env)`."""
    environ = os.environ if env is None else env
    for where, text in (("--journal", path), (f"${ENV_JOURNAL}", environ.get(ENV_JOURNAL))):
        if text is not None and "${" in str(text):  # taken as is, it would be a password or
            raise JournalError(                     # a folder named "${file:"
                f"{where}: the journal's address does not read ${{env:...}} or ${{file:...}} "
                "references: give the whole DSN in $CROWNGUARD_JOURNAL, or the password in "
                "$PGPASSWORD or a password file ($PGPASSFILE)")
        if path is not None:
            break
    if path is None and is_dsn(environ.get(ENV_JOURNAL)):
        return environ[ENV_JOURNAL]
    if is_dsn(path):
        return str(path)
    return Path(path).expanduser() if path is not None else default_journal_path(env)


def open_journal(path: str | Path | None = None, env: Mapping[str, str] | None = None,
                 **options: Any) -> SQLiteJournal | PostgresJournal:
    """The journal at `path` (`--journal`), else at `default_journal_path(env)`; a
    `postgresql://` DSN (there or in $CROWNGUARD_JOURNAL) opens a `PostgresJournal`.

    `CROWNGUARD_JOURNAL_SYNC=NORMAL` trades power-loss durability for ~3x faster appends
    (a process crash still loses nothing); the default is FULL (SQLite only)."""
    environ = os.environ if env is None else env
    target = journal_target(path, env)
    if isinstance(target, str):
        from .postgres import PostgresJournal

        options.pop("synchronous", None)
        return PostgresJournal(target, **options)
    if environ.get("CROWNGUARD_JOURNAL_SYNC"):
        options.setdefault("synchronous", environ["CROWNGUARD_JOURNAL_SYNC"])
    return SQLiteJournal(target, **options)
