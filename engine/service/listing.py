"""Run summaries for `GET /v1/runs`: newest first, in pages, by a cursor that stays put while
new runs arrive (the last run's creation time and sequence, not an offset)."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from ..journal import RunRecord
from ..journal.sqlite_schema import record_of
from ..kinds import RunStatus
from .problems import ServiceProblem

MAX_PAGE = 500


def encode_cursor(run: RunRecord) -> str:
    return base64.urlsafe_b64encode(json.dumps([run.created_at, run.seq]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, int]:
    """A cursor's (created_at, seq), exactly as `encode_cursor` made it: a forged one (a seq
    past 64 bits or no integer, no time) is a 400, never a query that fails (a 500)."""
    try:
        created_at, seq = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not (isinstance(created_at, str) and type(seq) is int and 0 <= seq < 2**63
                and len(created_at) <= 64):
            raise ValueError("not a cursor")
        datetime.fromisoformat(created_at)  # a time (PostgreSQL compares it as one), text
        return created_at, seq
    except (ValueError, TypeError):
        raise ServiceProblem(400, "bad_cursor", "cursor is not one this service gave out "
                             "(take next_cursor from the previous page)", "cursor") from None


class RunPages:
    """Run pages, counts and playbook names from the journal's runs table (for the API and
    the console): `RunListing` reads a SQLite journal's file, `PostgresRunListing`
    (listing_pg) a PostgreSQL journal's database."""

    def _page_rows(self, status: str | None, playbook: str | None, after: tuple[Any, ...],
                   limit: int) -> list[RunRecord]:
        raise NotImplementedError

    def count(self, status: str) -> int:
        raise NotImplementedError

    def status_counts(self, playbook: str | None) -> dict[str, int]:
        """How many runs have each status (of one playbook's, when given)."""
        raise NotImplementedError

    def playbook_names(self) -> list[str]:
        """The names of the playbooks the journal has runs of."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def page(self, *, status: str | None, playbook: str | None, limit: int,
             cursor: str | None) -> tuple[list[RunRecord], str | None]:
        # `?status=&playbook=` (a form, a URL template filled in part): no filter, not a 400
        # for the status and an empty page for the playbook
        status, playbook = status or None, playbook or None
        if status is not None:
            try:
                status = str(RunStatus(status))
            except ValueError:
                known = ", ".join(str(s) for s in RunStatus)
                raise ServiceProblem(400, "bad_parameter", f"status must be one of {known}, "
                                     f"not {status!r}", "status") from None
        if not 1 <= limit <= MAX_PAGE:
            raise ServiceProblem(400, "bad_parameter", f"limit must be 1 to {MAX_PAGE}", "limit")
        after: tuple[Any, ...] = decode_cursor(cursor) if cursor else (None, None)
        found = self._page_rows(status, playbook, after, limit + 1)
        more = len(found) > limit
        found = found[:limit]
        return found, encode_cursor(found[-1]) if more else None


class RunListing(RunPages):
    """Reads the journal's runs table (the same file) for pages the journal's API lacks."""

    def __init__(self, path: str | Path):
        self._db = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True,
                                   check_same_thread=False, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def count(self, status: str) -> int:
        """Runs with `status` (indexed: the journal's runs table has one on status)."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM runs WHERE status = ?",
                                        (status,)).fetchone()[0])

    def status_counts(self, playbook: str | None) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM runs WHERE (?1 IS NULL OR "
                                    "playbook = ?1) GROUP BY status", (playbook,)).fetchall()
        return {str(status): int(count) for status, count in rows}

    def playbook_names(self) -> list[str]:
        with self._lock:
            return [str(r[0]) for r in self._db.execute(
                "SELECT DISTINCT playbook FROM runs ORDER BY 1")]

    def _page_rows(self, status: str | None, playbook: str | None, after: tuple[Any, ...],
                   limit: int) -> list[RunRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM runs WHERE (?1 IS NULL OR status = ?1) AND "
                "(?2 IS NULL OR playbook = ?2) AND (?3 IS NULL OR created_at < ?3 OR "
                "(created_at = ?3 AND seq < ?4)) ORDER BY created_at DESC, seq DESC LIMIT ?5",
                (status, playbook, after[0], after[1], limit)).fetchall()
        return [record_of(row) for row in rows]
