"""A claim names its claimant, so the same input processed again after a kill -9 (the
service's intake item) finds the claim it left for its own: no duplicate of itself. It starts
the run when none reached the journal, and names the run when one did; any other claimant,
or none (the CLI), still sees a duplicate."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.spec import parse_playbook
from crownguard.engine.triage.dedupe import (
    InMemoryDedupe,
    ScratchDedupe,
    SQLiteDedupe,
    claimant_digest,
    dedupe_key,
)
from crownguard.engine.triage.router import Router

AT = 1_795_211_232.381
ITEM = "intake item 7 (siem event e-1, received 2026-12-02T12:00:00Z)"
OTHER = "intake item 8 (siem event e-2, received 2026-12-02T12:00:01Z)"


def playbook(name: str = "p") -> Any:
    return parse_playbook(f"name: {name}\ntrigger: {{if: 'event.file.is_model'}}\n"
                          "steps: [{id: a, action: core.noop}]\n")


def event() -> dict[str, Any]:
    return {"actor": {"email": "dana@acme.example"},
            "file": {"name": "m.safetensors", "sha256": "ab" * 32, "is_model": True}}


def chosen(decisions: list[Any]) -> list[str]:
    return [d.playbook for d in decisions if d.chosen]


@pytest.mark.parametrize("kind", ["memory", "sqlite", "scratch"])
def test_a_claim_keeps_its_claimant_and_a_new_claim_drops_it(tmp_path: Path,
                                                              kind: str) -> None:
    store: Any = {"memory": InMemoryDedupe, "sqlite": lambda: SQLiteDedupe(tmp_path / "d.db"),
                  "scratch": lambda: ScratchDedupe(InMemoryDedupe())}[kind]()
    assert store.claim_of("k") is None
    assert store.claim("k", 100.0, 3600, "me") is None
    store.started("k", 100.0, "run-1")
    found = store.claim_of("k")
    assert (found.at, found.run_id) == (100.0, "run-1")
    assert found.claimant == (None if kind == "scratch" else "me")  # triage names no one
    assert store.claim("k", 100.0 + 7200, 3600) is None  # past the window: a new claim
    assert store.claim_of("k").claimant is None and store.claim_of("k").run_id is None


def test_a_store_from_before_claimants_is_read_unchanged_and_upgraded_by_a_claimant(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE starts (key TEXT PRIMARY KEY, at REAL NOT NULL, run_id TEXT)")
        db.execute("INSERT INTO starts VALUES ('k', 100.0, 'run-1')")
    db.close()
    store = SQLiteDedupe(path)
    found = store.claim_of("k")
    assert (found.at, found.claimant, found.run_id) == (100.0, None, "run-1")
    assert store.claim("j", 5.0, 3600) is None  # no claimant: nothing added
    with sqlite3.connect(path) as db:
        assert [r[1] for r in db.execute("PRAGMA table_info(starts)")] == ["key", "at", "run_id"]
    db.close()
    assert store.claim("i", 5.0, 3600, "me") is None
    assert store.claim_of("i").claimant == "me"
    store.close()


def _killed_after_claim(path: Path, run_id: str | None) -> None:
    """What a process killed -9 right after claiming (and noting `run_id`) leaves."""
    first = Router([playbook()], store=SQLiteDedupe(path))
    assert first.claim("p", event(), at=AT, claimant=ITEM).chosen
    if run_id is not None:
        first.started("p", event(), at=AT, run_id=run_id)
    first.store.close()


def test_killed_between_the_claim_and_the_run_the_same_item_starts_it(tmp_path: Path) -> None:
    _killed_after_claim(tmp_path / "d.db", None)
    again = Router([playbook()], store=SQLiteDedupe(tmp_path / "d.db"))
    # Triage looks: its own claim is no duplicate, so the run is checked and then claimed.
    assert chosen(again.route(event(), {}, at=AT, claimant=ITEM)) == ["p"]
    decision = again.claim("p", event(), at=AT, claimant=ITEM, run_exists=lambda _: False)
    assert decision.chosen and decision.continues is None
    assert "no run in the journal: started now" in decision.reason
    # Anyone else, and the CLI (no claimant), still see the duplicate.
    for claimant in (OTHER, None):
        assert chosen(again.route(event(), {}, at=AT, claimant=claimant)) == []
        other = again.claim("p", event(), at=AT, claimant=claimant)
        assert not other.chosen and other.reason.startswith("duplicate")
    again.started("p", event(), at=AT, run_id="run-2")
    assert again.store.run_of(dedupe_key("p", event())) == "run-2"


def test_a_noted_run_that_never_reached_the_journal_is_started_again(tmp_path: Path) -> None:
    _killed_after_claim(tmp_path / "d.db", "run-1")
    again = Router([playbook()], store=SQLiteDedupe(tmp_path / "d.db"))
    decision = again.claim("p", event(), at=AT, claimant=ITEM,
                           run_exists=lambda run_id: run_id != "run-1")
    assert decision.chosen and decision.continues is None


def test_a_run_that_reached_the_journal_is_the_items_and_not_started_again(
        tmp_path: Path) -> None:
    _killed_after_claim(tmp_path / "d.db", "run-1")
    again = Router([playbook()], store=SQLiteDedupe(tmp_path / "d.db"))
    decision = again.claim("p", event(), at=AT, claimant=ITEM,
                           run_exists=lambda run_id: run_id == "run-1")
    assert not decision.chosen and decision.matched and decision.continues == "run-1"
    assert "run run-1" in decision.reason
    assert decision.to_dict()["continues"] == "run-1"
    # Not knowing the journal, a noted run is taken to exist: never a second run.
    assert again.claim("p", event(), at=AT, claimant=ITEM).continues == "run-1"


def test_the_claimant_is_kept_as_a_digest(tmp_path: Path) -> None:
    _killed_after_claim(tmp_path / "d.db", None)
    with sqlite3.connect(tmp_path / "d.db") as db:
        [(kept,)] = db.execute("SELECT claimant FROM starts").fetchall()
    db.close()
    assert kept == claimant_digest(ITEM) and "siem" not in kept


def test_the_postgresql_store_keeps_the_claimant_too(postgres_dsn: str) -> None:
    from crownguard.engine.journal.postgres_dedupe import PostgresDedupe

    first, second = PostgresDedupe(postgres_dsn), PostgresDedupe(postgres_dsn)
    try:
        assert first.claim_of("k") is None
        assert first.claim("k", 100.0, 3600, "me") is None
        first.started("k", 100.0, "run-1")
        found = second.claim_of("k")  # another process reads what the first left
        assert (found.at, found.claimant, found.run_id) == (100.0, "me", "run-1")
        assert second.claim("k", 100.0, 3600, "other") == 100.0  # a duplicate: unchanged
        assert second.claim_of("k") == found
        assert second.claim("k", 100.0 + 7200, 3600) is None  # a new claim drops both
        found = first.claim_of("k")
        assert (found.at, found.claimant, found.run_id) == (7300.0, None, None)
    finally:
        first.close()
        second.close()
