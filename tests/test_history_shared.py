"""The risk history is shared through the journal's store: a second `crownguard respond` (a
new process in effect: nothing in memory is shared), `crownguard triage` and the service see
the violations and volume the first recorded; `triage` records nothing there."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from test_respond_claims import DANA, USB

from crownguard.engine.scenarios import MockFleet, seed


@pytest.fixture
def vendors(fleet: MockFleet, fleet_connections: Any) -> tuple[MockFleet, Path]:
    fleet.reset()
    seed(fleet, DANA)
    config, _ = fleet_connections(fleet)
    return fleet, config


def another_event(tmp_path: Path, number: int) -> Path:
    """The USB sample again as a different event about a different copy."""
    data = json.loads(USB.read_text())
    data["event"]["id"] = f"{data['event']['id']}-again-{number}"
    data["file"]["hash"]["sha256"] = f"{number:064x}"
    path = tmp_path / f"again-{number}.json"
    path.write_text(json.dumps(data))
    return path


def indicators(out: str) -> set[str]:
    (verdict,) = json.loads(out)
    return {r["indicator"] for r in verdict["risk"]["reasons"]}


def history_rows(journal: Path) -> tuple[int, ...]:
    with sqlite3.connect(journal.with_name(f"{journal.name}.dedupe.db")) as db:
        return tuple(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                     for table in ("history_daily", "history_models", "history_violations"))


def test_a_second_respond_sees_the_first_ones_violation(
        run_cli: Any, vendors: tuple[MockFleet, Path], tmp_path: Path) -> None:
    _, config = vendors
    journal = tmp_path / "journal.sqlite"
    code, out, err = run_cli("respond", USB, "--config", config, "--journal", journal, "--json")
    assert code == 0, out + err
    assert "prior_violations" not in indicators(out)
    rows = history_rows(journal)
    assert rows[2] == 1, rows  # the violation, in the store beside the journal

    # triage reads it, and writes nothing to the store.
    code, out, err = run_cli("triage", another_event(tmp_path, 1), "--journal", journal,
                             "--json")
    assert code == 0, out + err
    assert "prior_violations" in indicators(out)
    assert history_rows(journal) == rows

    code, out, err = run_cli("respond", another_event(tmp_path, 2), "--config", config,
                             "--journal", journal, "--json")
    assert code == 0, out + err
    (verdict,) = json.loads(out)
    prior = [r for r in verdict["risk"]["reasons"] if r["indicator"] == "prior_violations"]
    assert prior and prior[0]["detail"] == "1 earlier violation", verdict["risk"]
    assert history_rows(journal)[2] == 2


def test_a_dry_run_records_no_history(run_cli: Any, vendors: tuple[MockFleet, Path],
                                      tmp_path: Path) -> None:
    _, config = vendors
    journal = tmp_path / "journal.sqlite"
    code, out, err = run_cli("respond", USB, "--config", config, "--journal", journal,
                             "--dry-run", "--json")
    assert code == 0, out + err
    assert not journal.with_name(f"{journal.name}.dedupe.db").exists()


def test_the_service_and_the_cli_share_the_history(
        run_cli: Any, vendors: tuple[MockFleet, Path], tmp_path: Path) -> None:
    from crownguard.engine.config import load_config
    from crownguard.engine.plugins import PluginHost
    from crownguard.engine.service.service import _triage
    from crownguard.engine.triage import load_policy, normalise_many

    _, config_path = vendors
    journal = tmp_path / "journal.sqlite"
    host = PluginHost.from_entry_points()
    config = load_config(config_path, host.connection_types)
    policy = load_policy()
    try:
        service = _triage(policy, host, journal, config)
        try:  # the service scores and records a violation...
            (event,) = normalise_many(json.loads(USB.read_text()), sources=service.sources)
            verdict = service.triage_event(event)
            assert "prior_violations" not in {r.indicator for r in verdict.risk.reasons}
        finally:
            service.close()
        assert history_rows(journal)[2] == 1
        # ... which the CLI sees,
        code, out, err = run_cli("triage", another_event(tmp_path, 3), "--journal", journal,
                                 "--json")
        assert code == 0, out + err
        assert "prior_violations" in indicators(out)
        # and what the CLI records, a running service sees.
        service = _triage(policy, host, journal, config)
        try:
            (event,) = normalise_many(json.loads(another_event(tmp_path, 4).read_text()),
                                      sources=service.sources)
            before = service.history.facts(event, service.triage_event(event).detection)
            code, out, err = run_cli("respond", another_event(tmp_path, 5), "--config",
                                     config_path, "--journal", journal, "--json")
            assert code == 0, out + err
            (event,) = normalise_many(json.loads(another_event(tmp_path, 6).read_text()),
                                      sources=service.sources)
            verdict = service.triage_event(event)
            after = service.history.facts(event, verdict.detection)
            assert after.prior_violations == before.prior_violations + 2  # its own and respond's
        finally:
            service.close()
    finally:
        config.connections.close()


def test_respond_twice_on_one_file_scores_it_alike_and_records_it_once(
        run_cli: Any, vendors: tuple[MockFleet, Path], tmp_path: Path) -> None:
    _, config = vendors
    journal = tmp_path / "journal.sqlite"
    code, out, err = run_cli("respond", USB, "--config", config, "--journal", journal, "--json")
    assert code == 0, out + err
    (first,) = json.loads(out)
    rows = history_rows(journal)
    code, out, err = run_cli("respond", USB, "--config", config, "--journal", journal, "--json")
    assert code == 0, out + err
    (second,) = json.loads(out)
    assert second["risk"] == first["risk"]
    assert history_rows(journal) == rows
    with sqlite3.connect(journal.with_name(f"{journal.name}.dedupe.db")) as db:
        assert db.execute("SELECT sum(bytes) FROM history_daily").fetchone() == \
            (json.loads(USB.read_text())["file"]["sizeInBytes"],)
