"""The PostgreSQL journal's reads of runs, events, entries, resume failures and approvals: one
statement each on a pooled connection (`_select`), with no transaction held between pages."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..kinds import EntryKind, LeaseHolder, RunKind, RunStatus
from .audit import ChainEntry
from .base import Approval, ResumeFailure, RunRecord
from .sqlite_schema import (
    approval_of,
    entry_of,
    holder_of,
    record_of,
    resume_failure_of,
    run_status,
)

PAGE = 1000  # entries() reads the chain in pages of this many, holding no connection between


class PostgresReads:
    if TYPE_CHECKING:
        def _select(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]: ...
        def _read(self) -> Any: ...
        def _run_row(self, conn: Any, run_id: str, lock: str = "") -> dict[str, Any]: ...

    def events(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._select("SELECT payload FROM entries WHERE run_id = %s AND kind = %s "
                            "ORDER BY seq", (run_id, str(EntryKind.EVENT)))
        return [json.loads(row["payload"]) for row in rows]

    def entries(self, run_id: str | None = None, since_seq: int = 0) -> Iterator[ChainEntry]:
        # Page by seq: a half-read iterator holds no connection and no snapshot.
        after = since_seq
        while True:
            rows = (self._select("SELECT * FROM entries WHERE seq > %s ORDER BY seq LIMIT %s",
                                 (after, PAGE)) if run_id is None else
                    self._select("SELECT * FROM entries WHERE run_id = %s AND seq > %s "
                                 "ORDER BY seq LIMIT %s", (run_id, after, PAGE)))
            for row in rows:
                yield entry_of(row)
            if len(rows) < PAGE:
                return
            after = rows[-1]["seq"]

    def get_run(self, run_id: str) -> RunRecord:
        with self._read() as conn:
            return record_of(self._run_row(conn, run_id))

    def find_runs(self, prefix: str, limit: int = 2) -> list[RunRecord]:
        rows = self._select("SELECT * FROM runs WHERE run_id >= %(p)s AND "
                            "left(run_id, length(%(p)s)) = %(p)s ORDER BY run_id LIMIT %(n)s",
                            {"p": prefix, "n": int(limit)})  # type: ignore[arg-type]
        return [record_of(row) for row in rows]

    def list_runs(self, status: RunStatus | str | None = None, limit: int = 100, *,
                  kind: RunKind | str | None = None, parent_run_id: str | None = None
                  ) -> list[RunRecord]:
        rows = self._select(
            "SELECT * FROM runs WHERE (%(s)s::text IS NULL OR status = %(s)s) AND "
            "(%(k)s::text IS NULL OR kind = %(k)s) AND (%(p)s::text IS NULL OR parent_run_id = "
            "%(p)s) ORDER BY created_at DESC, seq DESC LIMIT %(n)s",
            {"s": None if status is None else str(run_status(status)),  # type: ignore[arg-type]
             "k": None if kind is None else str(RunKind(kind)), "p": parent_run_id,
             "n": int(limit)})
        return [record_of(row) for row in rows]

    def interrupted_runs(self) -> list[RunRecord]:
        rows = self._select("SELECT * FROM runs WHERE status = %s ORDER BY created_at, seq",
                            (str(RunStatus.RUNNING),))
        now = time.time()
        return [record_of(row) for row in rows if holder_of(row, now) == LeaseHolder.FREE]

    def runs_page(self, status: RunStatus | str, after_seq: int = 0, limit: int = 500
                  ) -> list[RunRecord]:
        rows = self._select("SELECT * FROM runs WHERE status = %s AND seq > %s ORDER BY seq "
                            "LIMIT %s", (str(run_status(status)), int(after_seq), int(limit)))
        return [record_of(row) for row in rows]

    def resume_failures(self, run_ids: list[str] | None = None) -> dict[str, ResumeFailure]:
        rows = (self._select("SELECT * FROM resume_failures") if run_ids is None else
                self._select("SELECT * FROM resume_failures WHERE run_id = ANY(%s)",
                             (list(run_ids),)))
        return {row["run_id"]: resume_failure_of(row) for row in rows}

    def approvals(self, run_id: str) -> list[Approval]:
        rows = self._select("SELECT * FROM approvals WHERE run_id = %s ORDER BY seq", (run_id,))
        return [approval_of(row) for row in rows]

