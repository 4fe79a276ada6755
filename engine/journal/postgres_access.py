"""The PostgreSQL journal's entries for model access requests: one chained entry per change,
with the access store's row (engine/service/access_store.py) written in the same transaction,
as the SQLite journal does (`sqlite_access`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..kinds import EntryKind
from .base import utc_now
from .sqlite_schema import journal_json


class PostgresAccessEntries:
    """Mixed into PostgresJournal: `record_access_event` over its write transaction and chain.
    The chain head's row lock, taken by `_chain`, orders the entry among every writer's."""

    if TYPE_CHECKING:
        def _write(self) -> AbstractContextManager[Any]: ...

        def _chain(self, conn: Any, kind: EntryKind, run_id: str, label: str, at: str,
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
