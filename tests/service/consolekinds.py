"""The console's tests over both journals: `JOURNALS` to parametrise a fixture with, and
`journal_at` for a fresh place of either kind (a SQLite file, or an empty schema of the
session's PostgreSQL server, tests/pg_server.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

JOURNALS = ["sqlite", "postgres"]


def journal_at(kind: str, request: pytest.FixtureRequest, folder: Path) -> str:
    if kind == "sqlite":
        return str(folder / "j.sqlite")
    server = request.getfixturevalue("postgres_server")
    name = "c_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[-50:]
    return str(server.fresh_schema(name))
