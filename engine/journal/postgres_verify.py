"""Verification of a PostgreSQL journal: the chain, its head record and the rows beside it,
all in one REPEATABLE READ snapshot (writers go on meanwhile; what is checked is one moment).

PostgreSQL has no cheap whole-database page check like SQLite's integrity_check (its data
checksums and `amcheck` belong to the database's operators), so problems are the chain's."""

from __future__ import annotations

from typing import Any

from .audit import ChainProblem, JournalAudit
from .sqlite_schema import entry_of


def verify_database(conn: Any, anchor: tuple[int, str] | None, max_problems: int | None
                    ) -> list[ChainProblem]:
    def locate(digest: str) -> int | None:  # asked only where a link is broken
        row = conn.execute("SELECT seq FROM entries WHERE hash = %s ORDER BY seq LIMIT 1",
                           (digest,)).fetchone()
        return int(row["seq"]) if row else None

    def hash_at(seq: int) -> str | None:
        row = conn.execute("SELECT hash FROM entries WHERE seq = %s", (seq,)).fetchone()
        return str(row["hash"]) if row else None

    audit = JournalAudit(locate, max_problems)
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        with conn.cursor(name="crownguard_verify") as cursor:  # server-side: streamed
            cursor.itersize = 2000
            cursor.execute("SELECT * FROM entries ORDER BY seq")
            for row in cursor:
                audit.feed(entry_of(row))
                if audit.stopped:
                    return audit.problems
        audit.chain.check_anchor(anchor, hash_at)
        head = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
        # Seq 0 is the head of an empty chain (the row exists from the start, to be locked).
        empty = head is not None and head["seq"] == 0 and audit.chain.last is None
        audit.check_head(None if head is None or empty else (head["seq"], head["hash"]))
        audit.check_runs(conn.execute("SELECT * FROM runs ORDER BY seq").fetchall())
        audit.check_approvals({**row, "by": row["by_name"]}
                              for row in conn.execute("SELECT * FROM approvals").fetchall())
        return audit.problems
