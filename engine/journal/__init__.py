"""The run journal: durable run state and the tamper-evident audit trail.

`Journal` is the interface (a server database can implement it later); `SQLiteJournal` is the
default, one SQLite file in WAL mode shared safely by threads and processes. The runner hands
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
from typing import Any

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
from .sqlite import SQLiteJournal

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
    "open_journal",
    "utc_now",
]


def open_journal(path: str | Path | None = None, env: Mapping[str, str] | None = None,
                 **options: Any) -> SQLiteJournal:
    """The journal at `path` (`--journal`), else at `default_journal_path(env)`.

    `CROWNGUARD_JOURNAL_SYNC=NORMAL` trades power-loss durability for ~3x faster appends
    (a process crash still loses nothing); the default is FULL."""
    environ = os.environ if env is None else env
    if environ.get("CROWNGUARD_JOURNAL_SYNC"):
        options.setdefault("synchronous", environ["CROWNGUARD_JOURNAL_SYNC"])
    return SQLiteJournal(path if path is not None else default_journal_path(env), **options)
