"""Both journals for one test suite: `@pytest.fixture(params=KINDS)` and `open_kind` give a
SQLite file or a PostgreSQL schema (tests/pg_server.py); `raw` is a plain connection to the
same storage, as an attacker with database access has, taking SQLite's `?` placeholders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.journal import Journal, SQLiteJournal, open_journal

KINDS = ["sqlite", "postgres"]


def location_for(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh place for a journal of `kind`: a file path, or a DSN of an empty schema."""
    if kind == "sqlite":
        return str(tmp_path / "state" / "journal.sqlite")
    return str(request.getfixturevalue("postgres_dsn"))


def open_kind(kind: str, request: pytest.FixtureRequest, tmp_path: Path, **options: Any
              ) -> Journal:
    return open_journal(location_for(kind, request, tmp_path), **options)


def location(journal: Journal) -> str:
    """What `open_journal` (or another process) opens the same journal by."""
    if isinstance(journal, SQLiteJournal):
        return str(journal.path)
    return str(journal.target.dsn)  # type: ignore[attr-defined]


class Raw:
    """A plain connection to a journal's storage, outside the journal."""

    def __init__(self, journal: Journal):
        self.postgres = not isinstance(journal, SQLiteJournal)
        if self.postgres:
            import psycopg

            self.db: Any = psycopg.connect(location(journal), autocommit=True)
        else:
            import sqlite3

            self.db = sqlite3.connect(location(journal), isolation_level=None)

    def execute(self, sql: str, params: Any = ()) -> Any:
        if self.postgres:
            sql = sql.replace("?", "%s")
        return self.db.execute(sql, tuple(params))

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()


def raw(journal: Journal) -> Raw:
    return Raw(journal)
