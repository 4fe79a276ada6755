"""Run pages, counts and playbook names from a PostgreSQL journal's runs table (the twin of
`listing.RunListing`), read through the journal's own connection pool."""

from __future__ import annotations

from typing import Any

from ..journal import RunRecord
from ..journal.postgres import PostgresJournal
from ..journal.sqlite_schema import record_of
from .listing import RunPages


class PostgresRunListing(RunPages):
    def __init__(self, journal: PostgresJournal):
        self.journal = journal

    def close(self) -> None:
        pass  # the pool is the journal's

    def _select(self, sql: str, args: Any = ()) -> list[Any]:
        return self.journal._select(sql, args)

    def count(self, status: str) -> int:
        rows = self._select("SELECT count(*) AS n FROM runs WHERE status = %s", (status,))
        return int(rows[0]["n"])

    def status_counts(self, playbook: str | None) -> dict[str, int]:
        rows = self._select("SELECT status, count(*) AS n FROM runs WHERE (%(p)s::text IS NULL "
                            "OR playbook = %(p)s) GROUP BY status", {"p": playbook})
        return {str(row["status"]): int(row["n"]) for row in rows}

    def playbook_names(self) -> list[str]:
        return [str(row["playbook"]) for row in self._select(
            "SELECT DISTINCT playbook FROM runs ORDER BY 1")]

    def _page_rows(self, status: str | None, playbook: str | None, after: tuple[Any, ...],
                   limit: int) -> list[RunRecord]:
        rows = self._select(
            "SELECT * FROM runs WHERE (%(s)s::text IS NULL OR status = %(s)s) AND "
            "(%(p)s::text IS NULL OR playbook = %(p)s) AND (%(c)s::text IS NULL OR "
            "created_at < %(c)s OR (created_at = %(c)s AND seq < %(q)s)) "
            "ORDER BY created_at DESC, seq DESC LIMIT %(n)s",
            {"s": status, "p": playbook, "c": after[0], "q": after[1], "n": int(limit)})
        return [record_of(row) for row in rows]
