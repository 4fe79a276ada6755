"""The PostgreSQL stores after the database dropped their connections (a restart, a failover,
an administrator's pg_terminate_backend): the operation that finds its connection gone raises
JournalUnavailable (the database is gone, retry later: not a bad request, not a corrupt
journal), and the next one works on a new connection, in the same process. A real server:
tests/pg_server.py; the connections are told apart by application_name, so only this test's
are dropped."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from crownguard.engine.errors import JournalError, JournalUnavailable
from crownguard.engine.journal import open_journal
from crownguard.engine.journal.postgres_dedupe import PostgresDedupe
from crownguard.engine.service.intake_pg import PostgresIntakeStore
from crownguard.engine.triage.risk.store_pg import PostgresHistory


@pytest.fixture
def named(postgres_dsn: str) -> tuple[str, str]:
    """A DSN whose connections carry an application_name of their own, and that name."""
    name = f"cg_reconnect_{uuid.uuid4().hex[:8]}"
    open_journal(postgres_dsn).close()  # the tables
    return f"{postgres_dsn}&application_name={name}", name


def _drop_connections(dsn: str, name: str) -> int:
    with psycopg.connect(dsn.replace(name, "cg_reconnect_killer"), autocommit=True) as db:
        rows = db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                          "application_name = %s", (name,)).fetchall()
    return len(rows)


def _survives(dsn: str, name: str, operation: Callable[[], Any], pooled: int = 1) -> None:
    """The first use after the drop fails as unavailable (a pool: each of its `pooled`
    dropped connections at most once), then every use works, on new connections."""
    operation()
    assert _drop_connections(dsn, name) >= 1
    with pytest.raises(JournalError) as raised:
        operation()
    assert isinstance(raised.value, JournalUnavailable), raised.value
    assert "terminating connection" in str(raised.value) or "closed" in str(raised.value)
    for _ in range(pooled - 1):
        try:
            operation()
            break
        except JournalUnavailable:
            continue
    operation()
    operation()


def test_the_dedupe_store_reconnects(named: tuple[str, str]) -> None:
    dsn, name = named
    store = PostgresDedupe(dsn)
    try:
        _survives(dsn, name, lambda: store.run_of("key"))
        assert store.claim("k", 1.0, 60.0) is None
        assert store.claim("k", 2.0, 60.0) == 1.0
    finally:
        store.close()


def test_the_risk_history_reconnects(named: tuple[str, str]) -> None:
    dsn, name = named
    history = PostgresHistory(dsn)
    try:
        _survives(dsn, name, lambda: history.add_violations("ada@corp.example"))
    finally:
        history.close()
    with psycopg.connect(dsn, autocommit=True) as db:
        assert db.execute("SELECT count(*) FROM history_violations").fetchone() == (3,)  # the failed call wrote none


def test_the_journal_says_unavailable_and_goes_on(named: tuple[str, str]) -> None:
    dsn, name = named
    journal = open_journal(dsn)
    try:
        _survives(dsn, name, journal.head, pooled=8)
    finally:
        journal.close()


def test_the_intake_says_unavailable_and_goes_on(named: tuple[str, str]) -> None:
    dsn, name = named
    store = PostgresIntakeStore(dsn, pool_size=1)
    try:
        _survives(dsn, name, store.ping)
    finally:
        store.close()
