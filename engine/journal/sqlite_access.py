"""The SQLite journal's entries for model access requests: one chained entry per change, with
the access store's row written in the same transaction (engine/service/access_store.py)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..kinds import EntryKind
from .base import utc_now
from .sqlite_schema import Connection, journal_json


class SQLiteAccessEntries:
    """Mixed into SQLiteJournal: `record_access_event` over its write transaction and chain."""

    if TYPE_CHECKING:
        def _write(self) -> AbstractContextManager[Connection]: ...

        def _chain(self, conn: Connection, kind: EntryKind, run_id: str, label: str, at: str,
                   payload_json: str) -> int: ...

    def record_access_event(self, request_id: str, change: str, payload: dict[str, Any], *,
                            beside: Callable[[Any, int], None] | None = None) -> int:
        at = utc_now()
        body = journal_json({**payload, "request_id": request_id, "change": change, "at": at},
                            f"a change of access request {request_id}")
        with self._write() as conn:
            seq = self._chain(conn, EntryKind.ACCESS, f"access:{request_id}", change, at, body)
            if beside is not None:
                beside(conn, seq)
        return seq
