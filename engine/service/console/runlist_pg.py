"""The runs page's query on a PostgreSQL journal: `runlist.RunList`'s filters, order, pages
and counts, in PostgreSQL's SQL (jsonb for the event's actor and the entries' `by`), read
through the journal's own connection pool."""

from __future__ import annotations

from typing import Any

from ...journal import RunRecord
from ...journal.postgres import PostgresJournal
from ...journal.sqlite_schema import record_of
from ..listing import decode_cursor, encode_cursor
from ..problems import ServiceProblem
from .pages import ConsoleRefusal
from .runlist import RunFilter

# As runlist._PERSON: the actor, who answered, who started (a rerun, an undo) or cancelled.
_PERSON = """(%(person)s::text IS NULL
  OR lower(inputs::jsonb #>> '{event,actor,email}') = lower(%(person)s)
  OR inputs::jsonb #>> '{event,actor,id}' = %(person)s
  OR run_id IN (SELECT run_id FROM approvals WHERE lower(by_name) = lower(%(person)s))
  OR ((kind != 'run' OR status = 'cancelled') AND EXISTS (
        SELECT 1 FROM entries AS e WHERE e.run_id = runs.run_id
        AND e.type IN ('run_started', 'run_cancelled')
        AND lower(e.payload::jsonb ->> 'by') = lower(%(person)s))))"""
_FILTERS = f"""(%(status)s::text IS NULL OR status = %(status)s)
  AND (%(playbook)s::text IS NULL OR playbook = %(playbook)s) AND {_PERSON}
  AND (%(since)s::text IS NULL OR created_at >= %(since)s)
  AND (%(until)s::text IS NULL OR created_at < %(until)s)"""
# Constant text throughout (every value is a parameter): no input reaches the SQL.
_PAGE = (f"SELECT * FROM runs WHERE {_FILTERS} AND (%(at)s::text IS NULL OR "  # noqa: S608
         "created_at < %(at)s OR (created_at = %(at)s AND seq < %(seq)s)) "
         "ORDER BY created_at DESC, seq DESC LIMIT %(limit)s")
_COUNTS = f"SELECT status, count(*) AS n FROM runs WHERE {_FILTERS} GROUP BY status"  # noqa: S608


def _args(filters: RunFilter, **more: Any) -> dict[str, Any]:
    return {**dict(zip(("status", "playbook", "person", "since", "until"), filters.args(),
                       strict=True)), **more}


class PostgresRunList:
    def __init__(self, journal: PostgresJournal):
        self.journal = journal

    def close(self) -> None:
        pass  # the pool is the journal's

    def page(self, filters: RunFilter, limit: int, cursor: str | None
             ) -> tuple[list[RunRecord], str | None]:
        try:
            after: tuple[Any, ...] = decode_cursor(cursor) if cursor else (None, None)
        except ServiceProblem as exc:
            raise ConsoleRefusal(400, "Bad page", exc.message) from None
        rows = self.journal._select(_PAGE, _args(filters, at=after[0], seq=after[1],  # type: ignore[arg-type]
                                                 limit=limit + 1))
        found = [record_of(row) for row in rows]
        more = len(found) > limit
        found = found[:limit]
        return found, encode_cursor(found[-1]) if more else None

    def counts(self, filters: RunFilter) -> dict[str, int]:
        """Runs per status under these filters, the status left out (the links filter)."""
        rows = self.journal._select(_COUNTS, {**_args(filters), "status": None})  # type: ignore[arg-type]
        return {str(row["status"]): int(row["n"]) for row in rows}

    def playbooks(self) -> list[str]:
        return [str(row["playbook"]) for row in self.journal._select(
            "SELECT DISTINCT playbook FROM runs ORDER BY 1")]
