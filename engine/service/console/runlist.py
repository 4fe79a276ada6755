"""The runs page's query: the journal's runs table read-only, newest first, in pages (the API's
cursor), filtered by status, playbook, person and creation time, with the counts per status
under the same filters but the status."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...journal import RunRecord
from ...journal.sqlite_schema import record_of
from ...kinds import RunStatus
from ..listing import decode_cursor, encode_cursor
from ..problems import ServiceProblem
from .pages import ConsoleRefusal

# A person is the event's actor (e-mail or id, any case), or someone who answered a step of
# the run, started it (a rerun, an undo) or cancelled it. Only the entries of reruns, undo
# runs and cancelled runs are read (by the entries_by_run index), never the whole chain.
_PERSON = """(?3 IS NULL
  OR lower(json_extract(inputs, '$.event.actor.email')) = lower(?3)
  OR json_extract(inputs, '$.event.actor.id') = ?3
  OR run_id IN (SELECT run_id FROM approvals WHERE lower(by_name) = lower(?3))
  OR ((kind != 'run' OR status = 'cancelled') AND EXISTS (
        SELECT 1 FROM entries AS e WHERE e.run_id = runs.run_id
        AND e.type IN ('run_started', 'run_cancelled')
        AND lower(json_extract(e.payload, '$.by')) = lower(?3))))"""
_FILTERS = f"""(?1 IS NULL OR status = ?1) AND (?2 IS NULL OR playbook = ?2) AND {_PERSON}
  AND (?4 IS NULL OR created_at >= ?4) AND (?5 IS NULL OR created_at < ?5)"""
# Constant text throughout (every value is a parameter): no input reaches the SQL.
_PAGE = (f"SELECT * FROM runs WHERE {_FILTERS} AND (?6 IS NULL OR created_at < ?6 OR "  # noqa: S608
         "(created_at = ?6 AND seq < ?7)) ORDER BY created_at DESC, seq DESC LIMIT ?8")
_COUNTS = f"SELECT status, COUNT(*) FROM runs WHERE {_FILTERS} GROUP BY status"  # noqa: S608


@dataclass(frozen=True)
class RunFilter:
    status: str | None = None
    playbook: str | None = None
    person: str | None = None
    since: str | None = None  # journal times (UTC, ISO), as created_at is written
    until: str | None = None

    @classmethod
    def from_form(cls, status: str, playbook: str, person: str, since: str,
                  until: str) -> RunFilter:
        """The runs page's fields, checked: a bad one is a 400 page naming it."""
        if status:
            try:
                status = str(RunStatus(status))
            except ValueError:
                known = ", ".join(str(s) for s in RunStatus)
                raise ConsoleRefusal(400, "Bad filter", f"status must be one of {known}, "
                                     f"not {status!r}") from None
        return cls(status or None, playbook.strip() or None, person.strip() or None,
                   journal_time(since, "from"), journal_time(until, "until"))

    def args(self) -> tuple[Any, ...]:
        return self.status, self.playbook, self.person, self.since, self.until


def journal_time(text: str, field: str) -> str | None:
    """A time the form gives ('2026-12-02', '2026-12-02T05:58', with or without a zone; no
    zone means UTC) as the journal writes them, for comparing with created_at."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConsoleRefusal(400, "Bad filter", f"{field}: not a date or time: {text!r} "
                             "(as 2026-12-02 or 2026-12-02T05:58)") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class RunList:
    def __init__(self, path: str | Path):
        self._db = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True,
                                   check_same_thread=False, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def page(self, filters: RunFilter, limit: int, cursor: str | None
             ) -> tuple[list[RunRecord], str | None]:
        try:
            after: tuple[Any, ...] = decode_cursor(cursor) if cursor else (None, None)
        except ServiceProblem as exc:
            raise ConsoleRefusal(400, "Bad page", exc.message) from None
        with self._lock:
            rows = self._db.execute(_PAGE, (*filters.args(), after[0], after[1],
                                            limit + 1)).fetchall()
        found = [record_of(row) for row in rows]
        more = len(found) > limit
        found = found[:limit]
        return found, encode_cursor(found[-1]) if more else None

    def counts(self, filters: RunFilter) -> dict[str, int]:
        """Runs per status under these filters, the status left out (the links filter)."""
        with self._lock:
            rows = self._db.execute(_COUNTS, (None, *filters.args()[1:])).fetchall()
        return {str(status): int(count) for status, count in rows}

    def playbooks(self) -> list[str]:
        with self._lock:
            return [str(r[0]) for r in self._db.execute("SELECT DISTINCT playbook FROM runs "
                                                        "ORDER BY 1")]
