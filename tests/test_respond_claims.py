"""A failure never burns the dedupe slot: what `respond` checks before it claims, which claims
it releases, and `crownguard rerun` for a routed run that failed after it acted. Through the
real `crownguard` entry point, against the mock vendors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.journal import open_journal
from crownguard.engine.scenarios import MockFleet, seed

ROOT = Path(__file__).resolve().parents[1]
USB = ROOT / "plugins" / "incydr" / "samples" / "model-to-removable-media.json"
CONTAIN = "/devices/entities/devices-actions/v2"
DANA = {
    "falcon": {"hosts": [{"hostname": "ACME-LT-0412",
                          "folders": [r"C:\ProgramData\Crownguard\Quarantine"],
                          "files": [{"path": "E:/backup/models/"
                                             "acme-support-llama3-8b-ft.safetensors"}]}]},
    "okta": {"users": [{"login": "dana.whitfield@example.com"}]},
    "servicenow": {"users": [{"user_name": "dana.whitfield",
                              "email": "dana.whitfield@example.com", "name": "Dana Whitfield"}]},
    "slack": {"users": [{"email": "priya.raman@example.com", "name": "Priya Raman"}]},
}


@pytest.fixture
def vendors(fleet: MockFleet, fleet_connections: Any) -> tuple[MockFleet, Path]:
    fleet.reset()
    seed(fleet, DANA)
    config, _ = fleet_connections(fleet)
    return fleet, config


def claims(journal: Path) -> list[tuple[Any, ...]]:
    store = journal.with_name(f"{journal.name}.dedupe.db")
    if not store.exists():
        return []
    with sqlite3.connect(store) as db:
        return list(db.execute("SELECT * FROM starts"))


def test_a_missing_connection_is_refused_before_the_claim_and_the_fix_runs(
        run_cli: Any, vendors: tuple[MockFleet, Path], tmp_path: Path) -> None:
    fleet, config = vendors
    full = config.read_text()
    data = json.loads(full)
    del data["connections"]["servicenow"]  # the HR case step's, reached after containment
    config.write_text(json.dumps(data))
    journal = tmp_path / "journal.sqlite"
    code, out, err = run_cli("respond", USB, "--config", config, "--journal", journal)
    assert code == 2, out + err
    assert (f"{config}: playbook 'departing-employee-model-exfil': step 'hr_case' "
            f"(servicenow.create_hr_case): needs the connection 'servicenow', which the "
            f"connections file does not have (configured: ") in err
    assert "nothing was claimed or started" in err
    assert "running" not in out
    assert fleet.get("falcon").calls_to("POST", CONTAIN) == []  # nothing acted
    assert claims(journal) == []
    config.write_text(full)  # fixed: the same event is not a duplicate
    code, out, err = run_cli("respond", USB, "--config", config, "--journal", journal,
                             "--json")
    assert code == 0, err
    [result] = json.loads(out)
    assert [run["status"] for run in result["runs"]] == ["succeeded"]
    assert [row[2] for row in claims(journal)] == [result["runs"][0]["run_id"]]


def test_a_run_that_failed_after_acting_keeps_its_claim_and_rerun_finishes_it(
        run_cli: Any, vendors: tuple[MockFleet, Path], tmp_path: Path) -> None:
    fleet, config = vendors
    journal = tmp_path / "journal.sqlite"
    fleet.get("servicenow").inject("status", status=403, times=None)  # the HR case fails
    fleet.get("slack").inject("status", status=403, times=None)  # and so does its escalation
    code, out, err = run_cli("respond", USB, "--config", config, "--journal", journal,
                             "--json")
    assert code == 1, err
    [result] = json.loads(out)
    [run] = result["runs"]
    assert run["status"] == "failed" and run["steps"]["contain"]["status"] == "succeeded"
    assert result["released"] == []  # it contained the host: the claim stands
    first = run["run_id"]
    code, out, err = run_cli("respond", USB, "--config", config, "--journal", journal)
    assert code == 0, err
    assert (f"duplicate: already started for this file and person (event at the same time, "
            f"window 1 h) by run {first} (if it failed: `crownguard rerun {first}`") in out
    assert "running" not in out
    fleet.get("servicenow").clear_faults()
    fleet.get("slack").clear_faults()
    code, out, err = run_cli("rerun", first, "--journal", journal, "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["status"] == "succeeded" and again["run_id"] != first
    # the rerun found the SOC ticket the first run opened
    assert len(fleet.get("jira").calls_to("POST", "/rest/api/3/issue")) == 1
    assert again["steps"]["hr_case"]["status"] == "succeeded"
    with open_journal(journal) as stored:
        rerun = stored.get_run(again["run_id"])
        original = stored.get_run(first)
        assert rerun.parent_run_id == first and rerun.kind == "rerun"
        assert {k: rerun.inputs[k] for k in ("event", "risk", "vars")} == \
            {k: original.inputs[k] for k in ("event", "risk", "vars")}
    code, out, err = run_cli("audit", "export", "--run", again["run_id"], "--journal", journal)
    assert code == 0, err
    started = [json.loads(line) for line in out.splitlines() if "run_started" in line]
    assert started and all(first in json.dumps(entry) for entry in started)


FLAKY = """\
name: look-then-contain
trigger:
  if: "event.file.is_model"
steps:
  - id: look
    action: falcon.find_host
    with: {hostname: "${{ split(event.device.hostname, '.')[0] }}"}
  - id: contain
    action: falcon.contain_host
    needs: [look]
    with: {device_id: "${{ steps.look.output.device_id }}"}
"""


def test_a_run_that_failed_before_acting_releases_its_claim(
        run_cli: Any, vendors: tuple[MockFleet, Path], tmp_path: Path) -> None:
    fleet, config = vendors
    (tmp_path / "look-then-contain.yaml").write_text(FLAKY)
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nrouting:\n  playbooks: [look-then-contain.yaml]\n"
                      "  shipped_playbooks: false\n")
    journal = tmp_path / "journal.sqlite"
    fleet.get("falcon").inject("status", status=401, path="/oauth2/token", times=None)
    code, out, err = run_cli("respond", USB, "--policy", policy, "--config", config,
                             "--journal", journal)
    assert code == 1, err
    [run_id] = [line.split()[1] for line in out.splitlines()
                if line.startswith("run ") and "dedupe claim was released" in line]
    assert claims(journal) == []
    fleet.get("falcon").clear_faults()
    code, out, err = run_cli("respond", USB, "--policy", policy, "--config", config,
                             "--journal", journal, "--json")
    assert code == 0, err
    [result] = json.loads(out)
    [run] = result["runs"]
    assert run["status"] == "succeeded" and run["run_id"] != run_id
    assert len(fleet.get("falcon").calls_to("POST", CONTAIN)) == 1


def test_a_runner_that_raises_before_the_run_releases_the_claim(
        fleet: MockFleet, monkeypatch: pytest.MonkeyPatch) -> None:
    from crownguard.engine.config import config_from_mapping
    from crownguard.engine.errors import JournalError
    from crownguard.engine.runner import Runner
    from crownguard.engine.triage import (
        InMemoryDedupe,
        build_triage,
        default_policy_data,
        normalise,
        policy_from_mapping,
    )
    from crownguard.engine.triage.respond import respond

    fleet.reset()
    seed(fleet, DANA)
    host = fleet.host
    store = InMemoryDedupe()
    triage = build_triage(policy_from_mapping(default_policy_data()), host, store=store)
    config = config_from_mapping({"connections": fleet.connections()}, host.connection_types)
    event = normalise(json.loads(USB.read_text()), sources=host.event_sources.values())

    def unjournaled(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise JournalError("journal is busy")

    monkeypatch.setattr(Runner, "run", unjournaled)
    try:
        with pytest.raises(JournalError):
            respond(triage, host, config, [event])
        assert store._starts == {}  # released: nothing ran
        monkeypatch.undo()
        [response] = respond(triage, host, config, [event])
        assert [run["status"] for run in response.runs] == ["succeeded"]
    finally:
        config.connections.close()
        triage.close()
