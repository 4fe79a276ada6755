"""Verification of a SQLite journal file: SQLite's own integrity check, then the chain and the
rows beside it, all in one read snapshot."""

from __future__ import annotations

import sqlite3

from ..kinds import ProblemKind
from .audit import ChainProblem, JournalAudit
from .sqlite_schema import entry_of


def verify_file(conn: sqlite3.Connection, anchor: tuple[int, str] | None,
                max_problems: int | None) -> list[ChainProblem]:
    """Every problem of the file: SQLite's integrity check first, then the chain."""
    damaged = integrity_problems(conn)
    if not damaged:
        return check_chain(conn, anchor, max_problems)
    # Reading a damaged file further may fail anywhere or return part of it; the chain is
    # still checked as far as it can be read.
    try:
        return damaged + check_chain(conn, anchor, max_problems)
    except sqlite3.Error as exc:
        return [*damaged, ChainProblem(ProblemKind.DAMAGED, None, None, None,
                                       f"the chain could not be read to its end: {exc}")]


def integrity_problems(conn: sqlite3.Connection) -> list[ChainProblem]:
    """SQLite's own check of the file (pages, indexes): a hash chain cannot see a zeroed
    index page, yet it breaks the queries resume makes."""
    try:
        rows = [str(row[0]) for row in conn.execute("PRAGMA integrity_check(100)")]
    except sqlite3.Error as exc:
        rows = [f"the file cannot be checked: {exc}"]
    if rows == ["ok"]:
        return []
    return [ChainProblem(ProblemKind.DAMAGED, None, None, None,
                         f"SQLite integrity check: {row}") for row in rows]


def check_chain(conn: sqlite3.Connection, anchor: tuple[int, str] | None,
                max_problems: int | None) -> list[ChainProblem]:
    """Every chain, head, runs and approvals problem (JournalAudit), in one read snapshot."""
    def locate(digest: str) -> int | None:  # asked only where a link is broken
        row = conn.execute("SELECT seq FROM entries WHERE hash = ? LIMIT 1",
                           (digest,)).fetchone()
        return row["seq"] if row else None

    def hash_at(seq: int) -> str | None:
        row = conn.execute("SELECT hash FROM entries WHERE seq = ?", (seq,)).fetchone()
        return row["hash"] if row else None

    audit = JournalAudit(locate, max_problems)
    conn.execute("BEGIN")  # one snapshot of every table
    try:
        for row in conn.execute("SELECT * FROM entries ORDER BY seq"):
            audit.feed(entry_of(row))
            if audit.stopped:
                return audit.problems
        audit.chain.check_anchor(anchor, hash_at)
        head = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
        audit.check_head((head["seq"], head["hash"]) if head else None)
        audit.check_runs(conn.execute("SELECT * FROM runs ORDER BY seq"))
        audit.check_approvals({**dict(row), "by": row["by_name"],
                               "accepted": bool(row["accepted"])}
                              for row in conn.execute("SELECT * FROM approvals"))
        return audit.problems
    finally:
        conn.execute("ROLLBACK")
