"""What only the PostgreSQL journal has: its DSN's secret, its migrations, claims that skip a
run another process is locking, dedupe claims in its database, and the CLI end to end over it.
(The journal's behaviour itself is tested on both journals: test_journal.py, test_audit.py,
test_journal_concurrency.py.)"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from test_cli_runs import PLAYBOOK, cli

from crownguard.engine.errors import JournalError, UnknownRun
from crownguard.engine.journal import journal_target, open_journal
from crownguard.engine.journal.postgres import PostgresJournal
from crownguard.engine.journal.postgres_dedupe import PostgresDedupe
from crownguard.engine.journal.postgres_schema import PG_SCHEMA_VERSION, is_dsn
from crownguard.engine.secrets import redact_everywhere
from crownguard.plugins.core.mock import WebhookMock


def without_password(dsn: str, password: str) -> str:
    return dsn.replace(f":{password}@", "@")


# the DSN's secret --------------------------------------------------------------------------------

def test_the_password_is_never_shown(postgres_server: Any, postgres_dsn: str) -> None:
    password = postgres_server.password
    with PostgresJournal(postgres_dsn) as journal:
        assert password not in repr(journal) and password not in journal.name
        assert journal.name.startswith("postgresql://crownguard@127.0.0.1:")
        # Registered with a live redactor: logs and every redacted text lose it too.
        assert password not in redact_everywhere(f"dsn={postgres_dsn}")
        with pytest.raises(UnknownRun) as unknown:
            journal.get_run("nope")
        assert password not in str(unknown.value)
    wrong = postgres_dsn.replace(f":{password}@", ":Wrong-Pa55word-xyz@")
    with pytest.raises(JournalError) as caught:
        PostgresJournal(wrong)
    message = str(caught.value)
    assert "Wrong-Pa55word-xyz" not in message and password not in message
    assert "127.0.0.1" in message and "crownguard_test" in message
    assert "password authentication failed" in message
    in_query = without_password(postgres_dsn, password) + "&password=Query-Pa55word-xyz"
    with pytest.raises(JournalError, match="password authentication failed") as caught:
        PostgresJournal(in_query)
    assert "Query-Pa55word-xyz" not in str(caught.value)
    with pytest.raises(JournalError, match="not a valid PostgreSQL DSN") as bad:
        open_journal("postgresql://u:Sekret-Value-99@[nope/db?sslmode=bogus")
    assert "Sekret-Value-99" not in str(bad.value)


def test_a_password_with_special_characters(postgres_server: Any, postgres_dsn: str) -> None:
    secret = "p@ss:w/rd%ä 1"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS special")
        admin.execute("CREATE ROLE special LOGIN PASSWORD 'p@ss:w/rd%ä 1'")
        admin.execute("GRANT ALL ON DATABASE crownguard_test TO special")
        schema = postgres_dsn.rsplit("search_path%3D", 1)[1]
        admin.execute(f'GRANT ALL ON SCHEMA "{schema}" TO special')
    dsn = postgres_dsn.replace(f"crownguard:{postgres_server.password}@",
                               f"special:{quote(secret, safe='')}@")
    with PostgresJournal(dsn) as journal:
        assert journal.applied == list(range(1, PG_SCHEMA_VERSION + 1))
        assert quote(secret, safe="") not in journal.name and secret not in journal.name
        assert "***" not in journal.name  # nothing of the name looked like the secret
    wrong = dsn.replace(quote(secret, safe=""), quote(secret + "x", safe=""))
    with pytest.raises(JournalError) as caught:
        PostgresJournal(wrong)
    assert secret not in str(caught.value) and quote(secret, safe="") not in str(caught.value)


def test_journal_locations() -> None:
    assert is_dsn("postgresql://h/db") and is_dsn("postgres://h/db")
    assert not is_dsn("/var/lib/journal.sqlite") and not is_dsn(Path("postgresql:/x"))
    from crownguard.engine.journal import journal_target

    env = {"CROWNGUARD_JOURNAL": "postgresql://u@h:5432/db"}
    assert journal_target(None, env) == "postgresql://u@h:5432/db"  # not folded by Path
    assert journal_target("postgres://h/db") == "postgres://h/db"
    assert journal_target("/tmp/j.sqlite", env) == Path("/tmp/j.sqlite")


# migrations --------------------------------------------------------------------------------------

def test_migrations_run_once_and_a_newer_schema_is_refused(postgres_dsn: str) -> None:
    with pytest.raises(JournalError, match="no journal in .*crownguard journal migrate"):
        PostgresJournal(postgres_dsn, read_only=True)
    with PostgresJournal(postgres_dsn) as first:
        assert first.applied == list(range(1, PG_SCHEMA_VERSION + 1))
    with PostgresJournal(postgres_dsn) as again:
        assert again.applied == []
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        versions = [r[0] for r in db.execute("SELECT version FROM crownguard_schema")]
        assert versions == list(range(1, PG_SCHEMA_VERSION + 1))
        db.execute("INSERT INTO crownguard_schema (version) VALUES (99)")
    with pytest.raises(JournalError, match="has schema 99, newer than this crownguard"):
        PostgresJournal(postgres_dsn)
    with pytest.raises(JournalError, match="has schema 99"):
        PostgresJournal(postgres_dsn, read_only=True)


def test_a_read_only_journal_writes_nothing(postgres_dsn: str) -> None:
    with PostgresJournal(postgres_dsn) as writer:
        writer.create_run("r1", "p", "name: p\n", inputs={})
    with PostgresJournal(postgres_dsn, read_only=True) as reader:
        assert reader.get_run("r1").playbook == "p"
        assert reader.verify() == []
        with pytest.raises(JournalError, match="opened read-only"):
            reader.append({"type": "run_started", "run_id": "r1", "at": "t"})
        with pytest.raises(JournalError, match="opened read-only"):
            reader.set_status("r1", "failed")


def test_journal_migrate_command(postgres_server: Any, postgres_dsn: str, capsys: Any,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The password from the environment (libpq's PGPASSWORD), not from the command line.
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    dsn = without_password(postgres_dsn, postgres_server.password)
    code, out, err = cli(capsys, "journal", "migrate", "--journal", dsn)
    assert code == 0 and "applied migrations 1, 2" in out, err
    code, out, _ = cli(capsys, "journal", "migrate", "--journal", dsn, "--json")
    assert code == 0 and json.loads(out)["applied"] == []
    monkeypatch.delenv("PGPASSWORD")
    monkeypatch.setenv("CROWNGUARD_JOURNAL", postgres_dsn)
    code, out, err = cli(capsys, "journal", "migrate")
    assert code == 0 and "schema is current" in out
    assert postgres_server.password not in out + err
    wrong = postgres_dsn.replace(postgres_server.password, "Not-The-Password-42")
    code, out, err = cli(capsys, "journal", "migrate", "--journal", wrong)
    assert code == 2 and "password authentication failed" in err
    assert "Not-The-Password-42" not in out + err and "Traceback" not in err


# claims ------------------------------------------------------------------------------------------

def test_a_claim_skips_a_run_another_claimer_is_locking(postgres_dsn: str) -> None:
    with PostgresJournal(postgres_dsn) as journal:
        journal.create_run("r1", "p", "name: p\n", inputs={})
        journal.set_status("r1", "waiting")
        with psycopg.connect(postgres_dsn) as other:  # a transaction holding the row
            other.execute("SELECT * FROM runs WHERE run_id = 'r1' FOR UPDATE")
            started = time.monotonic()
            assert journal.claim("r1") is False  # SKIP LOCKED: no waiting for it
            assert time.monotonic() - started < 2
            other.rollback()
        assert journal.claim("r1") is True
        with pytest.raises(UnknownRun):
            journal.claim("nope")
        assert journal.verify() == []


def test_many_threads_claim_one_run_once(postgres_dsn: str) -> None:
    with PostgresJournal(postgres_dsn) as setup:
        setup.create_run("r1", "p", "name: p\n", inputs={})
        setup.set_status("r1", "waiting")
    journals = [PostgresJournal(postgres_dsn) for _ in range(6)]
    barrier = threading.Barrier(len(journals))
    results: list[bool] = []

    def claim(journal: PostgresJournal) -> None:
        barrier.wait()
        results.append(journal.claim("r1"))

    threads = [threading.Thread(target=claim, args=(j,)) for j in journals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One process: every journal here is this process, so the lease is "mine" to all; what
    # must hold is that the waiting -> running change was recorded once.
    with journals[0] as journal:
        statuses = [e for e in journal.entries("r1") if e.type == "status"]
        assert [e.payload["status"] for e in statuses] == ["waiting", "running"]
        assert journal.verify() == []
    for journal in journals[1:]:
        journal.close()
    assert any(results)


# dedupe ------------------------------------------------------------------------------------------

def test_dedupe_claims_in_the_journal_database(postgres_dsn: str) -> None:
    first, second = PostgresDedupe(postgres_dsn), PostgresDedupe(postgres_dsn)
    try:
        assert first.claim("k", 1000.0, 60.0) is None
        assert second.claim("k", 1030.0, 60.0) == 1000.0  # within the window: a duplicate
        assert second.last_start("k", 1030.0, 60.0) == 1000.0
        first.started("k", 1000.0, "run-1")
        assert second.run_of("k") == "run-1"
        assert second.claim("k", 1100.0, 60.0) is None  # outside it: a new start
        assert first.run_of("k") is None  # the new claim has no run yet
        first.release("k", 1000.0)  # an older claim's release leaves the newer one
        assert first.last_start("k", 1100.0, 60.0) == 1100.0
        second.release("k", 1100.0)
        assert first.last_start("k", 1100.0, 60.0) is None
        assert first.claim("k", 1100.0, 60.0) is None
    finally:
        first.close()
        second.close()


def test_concurrent_dedupe_claims_start_once(postgres_dsn: str) -> None:
    stores = [PostgresDedupe(postgres_dsn) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    won: list[float | None] = []

    def claim(store: PostgresDedupe) -> None:
        barrier.wait()
        won.append(store.claim("same-key", 5000.0, 300.0))

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert won.count(None) == 1 and won.count(5000.0) == len(stores) - 1


# the CLI over PostgreSQL -------------------------------------------------------------------------

@pytest.fixture
def playbook_setup(tmp_path: Path, mock_server: Any) -> dict[str, Any]:
    hooks = mock_server(WebhookMock)
    (tmp_path / "pb.yaml").write_text(PLAYBOOK)
    (tmp_path / "event.json").write_text(json.dumps({"user": "dana"}))
    (tmp_path / "c.yaml").write_text(
        f"connections:\n  http: {{allowed_hosts: ['127.0.0.1:{hooks.port}']}}\n"
        f"settings:\n  vars: {{base: '{hooks.base_url}'}}\n")
    return {"dir": tmp_path, "hooks": hooks}


def test_run_runs_approve_resume_and_audit_over_postgres(
        playbook_setup: dict[str, Any], postgres_server: Any, postgres_dsn: str, capsys: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    d, hooks, password = playbook_setup["dir"], playbook_setup["hooks"], postgres_server.password
    monkeypatch.setenv("PGPASSWORD", password)  # the secret stays out of the arguments
    j = without_password(postgres_dsn, password)
    seen = []

    def run(*args: Any) -> tuple[int, str, str]:
        code, out, err = cli(capsys, *args)
        seen.append(out + err)
        return code, out, err

    code, out, _ = run("run", d / "pb.yaml", "--event", d / "event.json", "--config",
                       d / "c.yaml", "--journal", j, "--json")
    assert code == 3, out
    run_id = json.loads(out)["run_id"]
    code, out, _ = run("runs", "--status", "waiting", "--journal", j)
    assert code == 0 and run_id in out
    code, out, _ = run("resume", run_id, "--journal", j, "--config", d / "c.yaml")
    assert code == 3, out  # still waiting: nothing to settle yet
    code, _, err = run("approve", run_id[:8], "ask", "--decision", "approve", "--by", "alice",
                       "--comment", "ok", "--config", d / "c.yaml", "--journal", j)
    assert code == 0, err
    assert hooks.received["act"] == [{"by": "alice"}] and len(hooks.received["soc"]) == 1
    code, out, _ = run("runs", "show", run_id, "--journal", j, "--json")
    shown = json.loads(out)
    assert shown["status"] == "succeeded" and shown["approvals"][0]["by"] == "alice"
    code, out, _ = run("audit", "verify", "--journal", j)
    assert code == 0 and "journal intact" in out
    code, out, _ = run("audit", "head", "--journal", j)
    anchor = out.strip()
    export = d / "audit.jsonl"
    code, _, _ = run("audit", "export", "--output", export, "--journal", j)
    assert code == 0 and len(export.read_text().splitlines()) >= 8
    code, out, _ = run("audit", "verify-export", export, "--anchor", anchor)
    assert code == 0, out
    # Edit one stored event behind the journal's back: verify names it.
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute("UPDATE entries SET payload = replace(payload, 'dana', 'eve') "
                   "WHERE payload LIKE '%%dana%%'")
    code, out, _ = run("audit", "verify", "--journal", j, "--anchor", anchor)
    assert code == 1 and "edited" in out
    assert not any(password in text for text in seen)


def test_respond_keeps_its_dedupe_claims_in_the_journal_database(
        run_cli: Any, fleet: Any, fleet_connections: Any, postgres_server: Any,
        postgres_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_triage_cli import DANA, USB

    from crownguard.engine.scenarios import seed

    fleet.reset()
    seed(fleet, DANA)
    config, _ = fleet_connections(fleet)
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    j = without_password(postgres_dsn, postgres_server.password)
    code, out, err = run_cli("respond", USB, "--config", config, "--journal", j)
    assert code == 0, err
    with PostgresJournal(postgres_dsn) as journal:
        started = journal.list_runs()
    assert len(started) == 1
    code, out, err = run_cli("respond", USB, "--config", config, "--journal", j)
    assert code == 0, err
    assert "duplicate" in out.lower() or "already" in out.lower(), out
    with PostgresJournal(postgres_dsn) as journal:
        assert [r.run_id for r in journal.list_runs()] == [started[0].run_id]
        assert journal.verify() == []
    with psycopg.connect(postgres_dsn) as db:
        [(run_id,)] = db.execute("SELECT run_id FROM dedupe_starts").fetchall()
    assert run_id == started[0].run_id
    assert list(here.iterdir()) == []  # no dedupe file beside a "path" made of the DSN


def test_the_test_server_is_found_where_debian_puts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import glob

    import pg_server

    monkeypatch.setattr(pg_server.shutil, "which", lambda name: None)  # not on PATH
    installed = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert pg_server.find_binary("initdb") == (installed[-1] if installed else None)
    monkeypatch.setattr(pg_server.os, "geteuid", lambda: 1000)
    with pytest.raises(pg_server.Unavailable, match="not root: install Debian's `postgresql`"):
        pg_server.install_postgresql()


@pytest.mark.parametrize(("path", "env"), [
    (None, {"CROWNGUARD_JOURNAL": "${file:/run/secrets/dsn}"}),
    (None, {"CROWNGUARD_JOURNAL": "postgresql://cg:${env:PW}@127.0.0.1/cg"}),
    ("postgresql://cg:${env:PW}@127.0.0.1/cg", {}),
])
def test_a_reference_in_the_journal_address_is_refused_not_taken_as_is(
        path: str | None, env: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Taken as is, it was sent as the password, or made a SQLite file under "${file:".
    monkeypatch.chdir(tmp_path)
    with pytest.raises(JournalError, match="does not read") as caught:
        journal_target(path, env)
    assert "PW" not in str(caught.value) and "secrets" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []
