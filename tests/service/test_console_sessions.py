"""Console sessions on both journals (a SQLite file, a PostgreSQL schema): kept hashed, shared
by processes, forgotten when idle or in excess; and a session holds only as long as the token
it was signed in with is still the service's, under that name with that role."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from consolekinds import JOURNALS, journal_at
from fastapi.testclient import TestClient
from servicetest import TOKENS
from test_console import csrf_of, signed_in

from crownguard.engine.journal import open_journal
from crownguard.engine.journal.postgres import PostgresJournal
from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.app import build_app
from crownguard.engine.service.console.sessions import SessionStore
from crownguard.engine.service.console.sessions_pg import PostgresSessionStore
from crownguard.engine.service.service import Options, Service
from crownguard.engine.service.settings import Role

Stores = Callable[..., SessionStore]


@pytest.fixture(params=JOURNALS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Stores, Any]]:
    """Session stores on one fresh journal, and a plain reader of its table's ids."""
    where = journal_at(request.param, request, tmp_path)
    journal = open_journal(where)

    def store(**limits: Any) -> SessionStore:
        if isinstance(journal, PostgresJournal):
            return PostgresSessionStore(journal, **limits)
        return SessionStore(where, **limits)

    def stored_ids() -> list[str]:
        if isinstance(journal, PostgresJournal):
            return [str(r["id_sha256"]) for r in journal._select(
                "SELECT id_sha256 FROM console_sessions")]
        import sqlite3
        with sqlite3.connect(where) as db:
            return [str(r[0]) for r in db.execute("SELECT id_sha256 FROM console_sessions")]

    yield store, stored_ids
    journal.close()


def test_the_store_forgets_idle_and_excess_sessions(stores: tuple[Stores, Any]) -> None:
    store, _ = stores
    idle = store(idle_seconds=-1.0, limit=3)
    assert idle.get(idle.new("a", Role.VIEWER).id) is None
    old = store(max_age=-1.0)
    assert old.get(old.new("a", Role.VIEWER).id) is None
    full = store(limit=3)
    first = [full.new(f"p{n}", Role.VIEWER) for n in range(3)]
    full.new("p3", Role.VIEWER)
    assert full.get(first[0].id) is None and full.count(signed_in=True) == 3
    assert full.get(first[2].id) is not None
    visitors = [full.new() for _ in range(5)]  # visitors push out visitors only
    assert full.count(signed_in=True) == 3 and full.count(signed_in=False) == 3
    assert full.get(visitors[-1].id) is not None and full.count() == 6


def test_sessions_are_stored_hashed_and_shared(stores: tuple[Stores, Any]) -> None:
    store, stored_ids = stores
    one, other = store(), store()
    session = one.new("alice@corp.example", Role.APPROVER, "alice-token-0123456789abcdef")
    session.notice("ok", "Approved 'ask'")
    seen = other.get(session.id)  # another process on the same journal
    assert seen is not None and (seen.name, seen.role) == ("alice@corp.example", Role.APPROVER)
    assert seen.holds("alice-token-0123456789abcdef") and not seen.holds("another-token")
    assert seen.csrf == session.csrf and seen.take_notices() == [("ok", "Approved 'ask'")]
    assert session.take_notices() == []  # shown once, wherever
    ids = stored_ids()
    assert ids and all(session.id not in row for row in ids)
    other.drop(session.id)
    assert one.get(session.id) is None


def _files_with(service_files: dict[str, Any], folder: Path,
                change: Callable[[list[dict[str, Any]]], None]) -> dict[str, Any]:
    """A copy of the service's files whose connections file's tokens `change` edited."""
    shutil.copytree(service_files["folder"], folder)
    config = json.loads((folder / "connections.yaml").read_text())
    change(config["service"]["tokens"])
    (folder / "connections.yaml").write_text(json.dumps(config))
    return {**service_files, "folder": folder, "config": folder / "connections.yaml",
            "policy": folder / "policy.yaml"}


def _remove(tokens: list[dict[str, Any]]) -> None:
    tokens[:] = [t for t in tokens if t["name"] != "ops-bot"]


def _downgrade(tokens: list[dict[str, Any]]) -> None:
    next(t for t in tokens if t["name"] == "ops-bot")["role"] = "viewer"


def _replace(tokens: list[dict[str, Any]]) -> None:
    next(t for t in tokens if t["name"] == "ops-bot")["token"] = "a-new-ops-token-0123456789ab"


@pytest.mark.parametrize("kind", JOURNALS)
@pytest.mark.parametrize("change", [_remove, _downgrade, _replace])
def test_a_session_ends_when_its_token_is_removed_downgraded_or_replaced(
        service_files: dict[str, Any], tmp_path: Path, kind: str,
        change: Callable[[list[dict[str, Any]]], None], request: pytest.FixtureRequest
        ) -> None:
    journal = journal_at(kind, request, tmp_path)
    changed = _files_with(service_files, tmp_path / "changed", change)

    def started(files: dict[str, Any]) -> Service:
        return Service.start(PluginHost.from_entry_points(), Options(
            str(files["config"]), str(files["policy"]), journal))

    saved = dict(os.environ)
    os.environ.update(service_files["env"])
    try:
        first = started(service_files)
        try:
            client = signed_in(build_app(first), "ops-bot")
            assert client.get("/ui/runs", follow_redirects=False).status_code == 200
            cookie = str(client.cookies.get("crownguard_session"))
        finally:
            first.close()
        second = started(changed)  # restarted with the connections file changed
        try:
            app = build_app(second)
            again = TestClient(app, base_url="http://127.0.0.1")
            again.cookies.set("crownguard_session", cookie, path="/ui")
            page = again.get("/ui/runs", follow_redirects=False)
            assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")
            assert app.state.console.sessions.get(cookie) is None  # ended, not just refused
            other = signed_in(app, "alice@corp.example")  # the others' tokens still work
            assert other.get("/ui/runs").status_code == 200
        finally:
            second.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_a_session_loses_its_power_on_the_next_request_without_a_restart(
        service_files: dict[str, Any], tmp_path: Path) -> None:
    import dataclasses

    saved = dict(os.environ)
    os.environ.update(service_files["env"])
    try:
        service = Service.start(PluginHost.from_entry_points(), Options(
            str(service_files["config"]), str(service_files["policy"]),
            str(tmp_path / "j.sqlite")))
        try:
            app = build_app(service)
            client = signed_in(app, "ops-bot")
            page = client.get("/ui/runs")
            assert page.status_code == 200 and "ops-bot" in page.text
            service.settings = dataclasses.replace(service.settings, tokens=tuple(
                dataclasses.replace(t, role=Role.VIEWER) if t.name == "ops-bot" else t
                for t in service.settings.tokens))
            forged = client.post("/ui/runs/0123456789/cancel",
                                 data={"csrf": csrf_of(page.text)}, follow_redirects=False)
            assert forged.status_code == 403  # its session ended: the form's token is stale
            assert client.get("/ui/runs", follow_redirects=False).status_code == 303
            assert TOKENS["ops-bot"][0] == "responder"
        finally:
            service.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_a_sessions_table_from_before_proofs_is_brought_up_to_date(tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "j.sqlite") as db:  # the table as the last version made it
        db.execute("CREATE TABLE console_sessions (id_sha256 TEXT PRIMARY KEY, csrf TEXT NOT "
                   "NULL, name TEXT, role TEXT, created REAL NOT NULL, seen REAL NOT NULL, "
                   "expires REAL NOT NULL, notices TEXT NOT NULL DEFAULT '[]')")
        db.execute("INSERT INTO console_sessions VALUES ('x', 'c', 'ops-bot', 'RESPONDER', "
                   "0, 1e12, 1e12, '[]')")
    store = SessionStore(tmp_path / "j.sqlite")
    made = store.new("ops-bot", Role.RESPONDER, "ops-token-0123456789abcdef00")
    seen = store.get(made.id)
    assert seen is not None and seen.holds("ops-token-0123456789abcdef00")
    store.close()
