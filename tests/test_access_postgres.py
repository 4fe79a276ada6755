"""Access requests on a PostgreSQL journal (a real server, tests/pg_server.py): triage's access
context from the database (the service's journal, and `crownguard triage` given a DSN), a
change by another process seen at the next export, and origin keys claimed once."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from crownguard.engine.errors import JournalError
from crownguard.engine.journal.postgres import PostgresJournal
from crownguard.engine.service.access_ledger import StoreAccess, access_of, open_access
from crownguard.engine.service.access_store import (
    AccessStore,
    Change,
    DuplicateSource,
    NewRequest,
    format_time,
)
from crownguard.engine.triage.detection import Detection, Method, ModelFormat
from crownguard.engine.triage.detection.formats import ModelMatch
from crownguard.engine.triage.events import (
    Actor,
    Destination,
    DestinationKind,
    FileInfo,
    ModelMovementEvent,
)
from crownguard.engine.triage.risk import load_policy, score

POLICY = load_policy()
WHEN = datetime(2026, 11, 17, 14, 0, tzinfo=UTC)
PERSON = "priya.raman@acme.example"
WHY = "retrain the fraud model on the Q3 chargebacks for the audit"


def export(email: str = PERSON) -> ModelMovementEvent:
    return ModelMovementEvent(
        id="e1", time=WHEN, actor=Actor(email=email, timezone="Europe/London"),
        file=FileInfo(name="fraud-v7.safetensors", size=700 * 1024**2),
        destination=Destination(DestinationKind.REMOVABLE_MEDIA, "SanDisk Cruzer", False))


def registered() -> Detection:
    return Detection.verdict(1.0, ModelFormat.SAFETENSORS, Method.FINGERPRINT,
                             ["SHA-256 matches"],
                             match=ModelMatch("mlflow", "fraud-model", "7", "w.safetensors",
                                              "restricted"))


def indicators(access: StoreAccess, email: str = PERSON) -> dict[str, tuple[float, str]]:
    risk = score(export(email), registered(), POLICY, None, access=access)
    return {r.indicator: (r.weight, r.detail) for r in risk.reasons}


def grant(store: AccessStore, who: str = PERSON) -> str:
    rid = store.create(NewRequest(who, "fraud-model", "read", WHY, 8 * 3600, version="7")).id
    store.change(rid, Change.APPROVED, "policy", decided_by="policy")
    store.change(rid, Change.GRANTED, "crownguard",
                 granted_at=format_time(WHEN - timedelta(hours=1)),
                 expires_at=format_time(WHEN + timedelta(hours=7)))
    return rid


def test_the_services_triage_reads_the_requests_of_its_postgres_journal(
        postgres_dsn: str) -> None:
    journal = PostgresJournal(postgres_dsn)
    store = AccessStore(journal)
    rid = grant(store)
    access = access_of(journal)
    assert isinstance(access, StoreAccess)
    weight, detail = indicators(access)["access_granted"]
    assert weight == -20 and rid in detail
    assert "access_denied" not in indicators(access, "omar@acme.example")

    # Another process denies omar's request: seen at the next export (the journal moved).
    other = PostgresJournal(postgres_dsn)
    denied = AccessStore(other).create(NewRequest("omar@acme.example", "fraud-model", "read",
                                                  WHY, 3600)).id
    AccessStore(other).change(denied, Change.DENIED, "policy", decided_by="policy",
                              decided_at=format_time(WHEN - timedelta(hours=2)))
    other.close()
    assert "access_denied" in indicators(access, "omar@acme.example")
    access.close()
    journal.close()


def test_open_access_reads_a_dsn_without_writing(postgres_dsn: str) -> None:
    assert open_access(postgres_dsn) is None  # the database holds no journal yet
    journal = PostgresJournal(postgres_dsn)
    rid = grant(AccessStore(journal))
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        before = db.execute("SELECT seq FROM chain_head").fetchone()
    access = open_access(postgres_dsn)
    assert access is not None
    assert rid in indicators(access)["access_granted"][1]
    with pytest.raises(JournalError, match="read-only"):  # it cannot change anything
        access.store.change(rid, Change.REVOKED, "someone")
    access.close()
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        assert db.execute("SELECT seq FROM chain_head").fetchone() == before
    journal.close()


def test_an_unreachable_database_is_an_error_without_its_password(postgres_dsn: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    parts = psycopg.conninfo.conninfo_to_dict(postgres_dsn)
    with pytest.raises(JournalError) as refused:
        open_access(f"postgresql://{parts['user']}:{parts['password']}@127.0.0.1:{port}/"
                    f"{parts['dbname']}")
    assert f"127.0.0.1:{port}" in str(refused.value)
    assert str(parts["password"]) not in str(refused.value)


def test_an_origin_key_is_claimed_once_on_postgres(postgres_dsn: str) -> None:
    journal = PostgresJournal(postgres_dsn)
    store = AccessStore(journal)
    new = NewRequest("a@acme.example", "acme-ml/fraud-llm", "download", WHY, 3600)
    key = "huggingface:acme-ml/fraud-llm:a:2026-12-02T10:00:00.000Z"
    assert store.set_aside(key, "the Hub user a is not known here") is True
    assert store.set_aside(key, "the Hub user a is not known here") is False  # said once
    made = store.create(new, decision={"source": {"key": key}})  # a set-aside key is taken
    head = journal.head()
    second = PostgresJournal(postgres_dsn)
    with pytest.raises(DuplicateSource):
        AccessStore(second).create(new, decision={"source": {"key": key}})
    second.close()
    assert journal.head() == head and [r.id for r in store.find()] == [made.id]
    record = store.source(key)
    assert record is not None and (record.request_id, record.problem) == (made.id, None)
    journal.close()


def test_crownguard_triage_given_a_dsn_shows_the_grant(
        postgres_dsn: str, run_cli: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from crownguard.engine.triage.detection.fingerprints import FingerprintIndex, ModelVersionRef

    sha = "ab" * 32
    with FingerprintIndex(tmp_path / "fp.sqlite") as index:
        index.add_version(ModelVersionRef("mlflow", "fraud-model", "7", "restricted"),
                          {"files": [{"path": "model/w.safetensors", "sha256": sha}]})
    event = tmp_path / "event.json"
    event.write_text(json.dumps({
        "schema": "crownguard/model-movement-event/v1", "id": "n-1",
        "time": "2026-11-17T14:00:00Z", "actor": {"email": PERSON},
        "file": {"name": "w.safetensors", "size": 700 * 1024**2, "sha256": sha},
        "destination": {"kind": "removable_media", "trusted": False}}))
    journal = PostgresJournal(postgres_dsn)
    rid = grant(AccessStore(journal))
    journal.close()
    monkeypatch.setenv("CROWNGUARD_JOURNAL", postgres_dsn)  # a DSN's password: not in argv
    code, out, err = run_cli("triage", event, "--fingerprints", tmp_path / "fp.sqlite",
                             "--json")
    assert code == 0, err
    [reason] = [r for r in json.loads(out)[0]["risk"]["reasons"]
                if r["indicator"] == "access_granted"]
    assert rid in reason["detail"] and reason["weight"] == -20
