"""`crownguard triage`, `respond` and `test`, through the real `crownguard` entry point (with
the commands added when cli.py does not wire them yet), against the mock vendors."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.journal import open_journal
from crownguard.engine.scenarios import MockFleet, seed
from crownguard.engine.triage.dedupe import InMemoryDedupe, ScratchDedupe, SQLiteDedupe

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "plugins" / "incydr" / "samples"
USB = SAMPLES / "model-to-removable-media.json"
CLOUD = SAMPLES / "model-to-personal-cloud.json"
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
def vendors(fleet: MockFleet, fleet_connections: Any) -> tuple[MockFleet, Path, list[str]]:
    """Fresh mock state with Dana and Priya, and a connections file whose secrets come from
    the environment; returns the fleet, the file and the secret values."""
    fleet.reset()
    seed(fleet, DANA)
    config, secrets = fleet_connections(fleet)
    return fleet, config, secrets


# --- triage ------------------------------------------------------------------------------------


def test_triage_prints_detection_score_reasons_and_playbook(run_cli: Any, monkeypatch: Any
                                                           ) -> None:
    code, out, err = run_cli("triage", USB)
    assert code == 0, err
    assert "dana.whitfield@example.com (departing) moved acme-support-llama3-8b-ft" in out
    assert "detection  model, safetensors" in out
    assert "risk       100 critical" in out
    assert "+45  departing_employee" in out
    assert "playbooks  departing-employee-model-exfil" in out


def test_triage_json_of_a_list_of_raw_and_normalised_events(run_cli: Any, tmp_path: Path,
                                                            monkeypatch: Any) -> None:
    normalised = {"id": "n-1", "time": "2026-11-24T10:15:00Z",
                  "actor": {"email": "bob@example.com"},
                  "file": {"name": "churn.joblib"},
                  "destination": {"kind": "removable_media", "trusted": False}}
    events = [json.loads(p.read_text()) for p in sorted(SAMPLES.glob("*.json"))] + [normalised]
    batch = tmp_path / "events.json"
    batch.write_text(json.dumps(events))
    code, out, _ = run_cli("triage", batch, "--json")
    assert code == 0
    verdicts = json.loads(out)
    assert [v["playbooks"] for v in verdicts] == [
        [], ["model-to-personal-cloud-or-genai"], ["departing-employee-model-exfil"],
        ["model-to-personal-cloud-or-genai"], ["model-to-removable-media"]]
    first = verdicts[0]
    assert set(first) == {"event", "detection", "risk", "routes", "playbooks"}
    assert first["detection"]["is_model"] is False and "raw" not in first["event"]
    assert all(r["indicator"] and r["detail"] for v in verdicts for r in v["risk"]["reasons"])


def test_triage_with_a_policy_and_a_fingerprint_index(run_cli: Any, tmp_path: Path,
                                                      monkeypatch: Any) -> None:
    from crownguard.engine.triage.detection.fingerprints import FingerprintIndex, ModelVersionRef

    sha = json.loads(USB.read_text())["file"]["hash"]["sha256"]
    with FingerprintIndex(tmp_path / "fp.sqlite") as index:
        index.add_version(ModelVersionRef("mlflow", "support-llm", "3", "restricted"),
                          {"files": [{"path": "model/w.safetensors", "sha256": sha}]})
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nlevels: {critical: 99}\nrouting: {fingerprints: fp.sqlite}\n")
    code, out, _ = run_cli("triage", USB, "--policy", policy, "--json")
    [verdict] = json.loads(out)
    assert code == 0 and verdict["detection"]["method"] == "registry_fingerprint"
    assert verdict["event"]["source"]["model"] == "support-llm"
    assert verdict["risk"]["score"] == 100


@pytest.mark.parametrize(("content", "message"), [
    ('{"@timestamp": "2026-11-20T21:47:12Z", "event": {"id": "x"}, "user": {},'
     ' "file": {"name": "a"}}', "user.email: is required"),
    ('{"hello": "world"}', "unrecognised payload"),
    ('"just text"', "expected an event object or a list"),
    ("[{", "event.json:1: invalid JSON: Expecting property name enclosed in double quotes "
           "(column 3)"),
])
def test_bad_events_are_one_line_input_errors(run_cli: Any, tmp_path: Path, monkeypatch: Any,
                                              content: str, message: str) -> None:
    path = tmp_path / "event.json"
    path.write_text(content)
    code, out, err = run_cli("triage", path)
    assert code == 2 and message in err and "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1


def test_missing_files_and_bad_policies_exit_2(run_cli: Any, tmp_path: Path,
                                               monkeypatch: Any) -> None:
    code, _, err = run_cli("triage", tmp_path / "nope.json")
    assert code == 2 and "no such file" in err
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nrouting: {dedupe_window: soon}\n")
    code, _, err = run_cli("respond", USB, "--policy", policy, "--dry-run")
    assert code == 2 and f"{policy}:2:" in err
    code, _, err = run_cli("triage", USB, "--fingerprints",
                           tmp_path / "none.sqlite")
    assert code == 2 and "no fingerprint index" in err


def test_triage_with_a_config_sees_its_settings_vars_as_respond_does(
        run_cli: Any, tmp_path: Path, monkeypatch: Any) -> None:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "watched.yaml").write_text(
        "name: watched\ntrigger: {if: \"contains(vars.watched, event.actor.email)\"}\n"
        "vars: {watched: []}\nsteps: [{id: a, action: core.noop}]\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"routing: {{playbooks: [{playbooks}], shipped_playbooks: false}}\n")
    config = tmp_path / "connections.yaml"
    config.write_text(json.dumps({"connections": {}, "settings": {
        "vars": {"watched": ["dana.whitfield@example.com"]}}}))
    code, out, _ = run_cli("triage", USB, "--policy", policy, "--json")
    assert code == 0 and json.loads(out)[0]["playbooks"] == []
    code, out, err = run_cli("triage", USB, "--policy", policy,
                             "--config", config, "--json")
    assert code == 0, err
    assert json.loads(out)[0]["playbooks"] == ["watched"]


def test_triage_shows_the_second_of_two_identical_events_as_a_duplicate_and_writes_nothing(
        run_cli: Any, tmp_path: Path, monkeypatch: Any) -> None:
    event = json.loads(USB.read_text())
    later = json.loads(USB.read_text())
    later["event"]["id"] = "another-delivery"
    later["@timestamp"] = "2026-11-20T23:47:12.381Z"  # 2 h later: outside the window
    batch = tmp_path / "events.json"
    batch.write_text(json.dumps([event, event, later]))
    store = tmp_path / "dedupe.sqlite"
    SQLiteDedupe(store).close()
    before = store.read_bytes()
    code, out, _ = run_cli("triage", batch, "--json",
                           "--journal", tmp_path / "journal.sqlite")
    assert code == 0
    verdicts = json.loads(out)
    assert [v["playbooks"] for v in verdicts] == [["departing-employee-model-exfil"], [],
                                                  ["departing-employee-model-exfil"]]
    assert verdicts[1]["routes"][0]["reason"].startswith("duplicate: already started")
    assert store.read_bytes() == before and not (tmp_path / "journal.sqlite").exists()


def test_scratch_dedupe_claims_in_memory_over_the_real_store() -> None:
    real = InMemoryDedupe()
    real.claim("seen", 1000.0, 3600)
    scratch = ScratchDedupe(real)
    assert scratch.claim("seen", 1060.0, 3600) == 1000.0  # the real store's start counts
    assert scratch.claim("new", 1000.0, 3600) is None
    assert scratch.last_start("new", 1500.0, 3600) == 1000.0
    assert scratch.claim("new", 1500.0, 3600) == 1000.0
    assert real.last_start("new", 1000.0, 3600) is None  # nothing reached the real store
    # A claim outside the window replaces the start, as the real stores do.
    assert scratch.claim("seen", 9000.0, 3600) is None
    assert scratch.last_start("seen", 1000.0, 3600) is None
    assert scratch.last_start("seen", 9100.0, 3600) == 9000.0


# --- respond -----------------------------------------------------------------------------------


def test_respond_without_config_claims_nothing_so_the_rerun_starts(
        run_cli: Any, vendors: tuple[MockFleet, Path, list[str]], tmp_path: Path,
        monkeypatch: Any) -> None:
    fleet, config, _ = vendors
    journal = tmp_path / "journal.sqlite"
    code, out, err = run_cli("respond", USB, "--journal", journal)
    assert code == 2 and out == "" and "--config FILE is required" in err
    assert not journal.exists() and not (tmp_path / "journal.sqlite.dedupe.db").exists()
    code, out, err = run_cli("respond", USB, "--config", config,
                             "--journal", journal, "--json")
    assert code == 0, err
    [result] = json.loads(out)
    assert [run["status"] for run in result["runs"]] == ["succeeded"]
    assert fleet.get("okta").status_of("dana.whitfield@example.com") == "SUSPENDED"



def test_respond_runs_the_chosen_playbook_and_never_twice(
        run_cli: Any, vendors: tuple[MockFleet, Path, list[str]], tmp_path: Path,
        monkeypatch: Any) -> None:
    fleet, config, secrets = vendors
    journal = tmp_path / "journal.sqlite"
    code, out, err = run_cli("respond", USB, "--config", config,
                             "--journal", journal, "--json")
    assert code == 0, err
    [result] = json.loads(out)
    [run] = result["runs"]
    assert result["playbooks"] == ["departing-employee-model-exfil"]
    assert run["status"] == "succeeded" and run["steps"]["contain"]["status"] == "succeeded"
    assert len(fleet.get("falcon").calls_to("POST", "/devices/entities/devices-actions/v2")) == 1
    assert fleet.get("okta").status_of("dana.whitfield@example.com") == "SUSPENDED"
    with open_journal(journal) as stored:
        assert stored.get_run(run["run_id"]).status == "succeeded"
    # The same event again: recognised through the dedupe file kept beside the journal.
    code, out, _ = run_cli("respond", USB, "--config", config,
                           "--journal", journal)
    assert code == 0 and "duplicate: already started for this file and person" in out
    assert "running" not in out
    assert (tmp_path / "journal.sqlite.dedupe.db").is_file()
    # triage looks at the same state without changing it
    code, out, _ = run_cli("triage", USB, "--journal", journal)
    assert "duplicate" in out
    text = journal.read_bytes().decode("utf-8", "replace") + out + err
    assert all(secret not in text for secret in secrets)


def test_the_files_of_one_alert_share_one_ticket_and_one_hr_case(
        run_cli: Any, vendors: tuple[MockFleet, Path, list[str]], tmp_path: Path,
        monkeypatch: Any) -> None:
    fleet, config, _ = vendors
    files = [{"name": f"model-0000{n}-of-00002.safetensors", "path": "E:/backup/models/",
              "size": 4_000_000_000, "eventId": f"ev-{n}"} for n in (1, 2)]
    alert = {"id": "alert-7f3a", "actor": "dana.whitfield@example.com", "actorId": "u-1",
             "createdAt": "2026-11-20T21:50:00Z",
             "watchlists": [{"type": "DEPARTING_EMPLOYEE"}],
             "observations": [{"observedAt": "2026-11-20T21:45:00Z",
                               "data": {"exposureTypes": ["RemovableMedia"], "files": files}}]}
    path = tmp_path / "alert.json"
    path.write_text(json.dumps(alert))
    _, out, err = run_cli("respond", path, "--config", config,
                             "--journal", tmp_path / "journal.sqlite", "--json")
    results = json.loads(out)
    assert [r["playbooks"] for r in results] == [["departing-employee-model-exfil"]] * 2, err
    second = results[1]["risk"]
    assert "prior_violations" not in second["indicators"]  # the same alert, not an earlier one
    assert len(fleet.get("jira").calls_to("POST", "/rest/api/3/issue")) == 1
    assert len(fleet.get("servicenow").calls_to("POST", "/api/now/table/{table}")) == 1


def test_respond_leaves_a_justification_wait_to_approve(
        run_cli: Any, vendors: tuple[MockFleet, Path, list[str]], tmp_path: Path,
        monkeypatch: Any) -> None:
    fleet, config, secrets = vendors
    journal = tmp_path / "journal.sqlite"
    code, out, err = run_cli("respond", CLOUD, "--config", config,
                             "--journal", journal)
    assert code == 3, err
    assert "await_answer" in out and "waiting" in out
    run_id = out.split("run ")[-1].split(":")[0].strip()
    code, out, err = run_cli("approve", run_id, "await_answer",
                             "--decision", "approve", "--by", "priya.raman@example.com",
                             "--comment", "a mistake, removed", "--config", config,
                             "--journal", journal)
    assert code == 0, err
    comments = fleet.get("jira").calls_to("POST", "/rest/api/3/issue/{key}/comment")
    assert len(comments) == 1 and "a mistake, removed" in comments[0].body.decode()
    assert all(secret not in out + err for secret in secrets)


def test_respond_dry_run_changes_nothing_and_claims_nothing(
        run_cli: Any, vendors: tuple[MockFleet, Path, list[str]], tmp_path: Path,
        monkeypatch: Any) -> None:
    fleet, config, _ = vendors
    journal = tmp_path / "journal.sqlite"
    code, out, _ = run_cli("respond", USB, "--config", config,
                           "--journal", journal, "--dry-run")
    assert code == 0 and "dry run" in out
    assert fleet.get("falcon").calls_to("POST", "/devices/entities/devices-actions/v2") == []
    assert fleet.get("okta").status_of("dana.whitfield@example.com") == "ACTIVE"
    assert not journal.exists() and not (tmp_path / "journal.sqlite.dedupe.db").exists()


def test_respond_reports_a_failed_run_with_exit_1(
        run_cli: Any, vendors: tuple[MockFleet, Path, list[str]], tmp_path: Path,
        monkeypatch: Any) -> None:
    fleet, config, secrets = vendors
    fleet.get("slack").inject("status", status=403, times=None)  # escalation refused too
    fleet.get("falcon").inject("status", status=401, path="/oauth2/token", times=None)
    code, out, err = run_cli("respond", USB, "--config", config,
                             "--no-journal", "--json")
    assert code == 1, err
    [result] = json.loads(out)
    [run] = result["runs"]
    assert run["status"] == "failed"
    assert run["steps"]["contain"]["status"] == "failed"
    assert "falcon" in run["steps"]["contain"]["error"]
    assert all(secret not in out + err for secret in secrets)


def test_respond_says_when_a_succeeded_run_had_failures_handled(
        run_cli: Any, vendors: tuple[MockFleet, Path, list[str]], tmp_path: Path,
        monkeypatch: Any) -> None:
    fleet, config, _ = vendors
    fleet.get("falcon").inject("status", status=401, path="/oauth2/token", times=None)
    code, out, err = run_cli("respond", USB, "--config", config,
                             "--no-journal")
    assert code == 0, err  # the escalation handled the failures: the run succeeded ...
    # ... and says what failed
    assert "succeeded with 2 handled failures: contain, quarantine_file" in out


# --- test --------------------------------------------------------------------------------------


def test_the_test_command_runs_scenarios_and_explains_the_first_mismatch(
        run_cli: Any, tmp_path: Path, monkeypatch: Any) -> None:
    scenario = ROOT / "playbooks" / "scenarios" / "low-risk-email-nudge.scenario.yaml"
    code, out, _ = run_cli("test", scenario)
    assert code == 0 and out.startswith("PASS a small model e-mailed to a partner")
    assert "1 passed, 0 failed" in out
    wrong = tmp_path / "wrong.scenario.yaml"
    wrong.write_text(scenario.read_text().replace("status: succeeded", "status: failed"))
    broken = tmp_path / "broken.scenario.yaml"
    broken.write_text("name: x\nevent: {}\nexpect: {statu: failed}\n")
    code, out, _ = run_cli("test", tmp_path)
    assert code == 1
    assert "FAIL broken" in out and "invalid scenario" in out and "broken.scenario.yaml:3" in out
    assert "FAIL a small model e-mailed" in out
    assert "low-risk-model-nudge: run expected failed, got succeeded" in out
    code, _, err = run_cli("test", tmp_path / "missing")
    assert code == 2 and "no such file or directory" in err


def test_each_journal_has_its_own_dedupe_store_created_0600(
        run_cli: Any, vendors: tuple[MockFleet, Path, list[str]], tmp_path: Path) -> None:
    _, config, _ = vendors
    first, second = tmp_path / "first.sqlite", tmp_path / "second.sqlite"
    code, _, err = run_cli("respond", USB, "--config", config, "--journal", first)
    assert code == 0, err
    store = tmp_path / "first.sqlite.dedupe.db"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert not (tmp_path / "dedupe.sqlite").exists()
    # Another journal in the same folder has not seen the event: the playbook starts there.
    code, out, err = run_cli("respond", USB, "--config", config, "--journal", second)
    assert code == 0, err
    assert "duplicate" not in out and (tmp_path / "second.sqlite.dedupe.db").is_file()


def test_a_dedupe_store_of_the_old_name_beside_the_journal_is_still_used(
        run_cli: Any, vendors: tuple[MockFleet, Path, list[str]], tmp_path: Path) -> None:
    _, config, _ = vendors
    journal, legacy = tmp_path / "journal.sqlite", tmp_path / "dedupe.sqlite"
    SQLiteDedupe(legacy).close()
    for expect_duplicate in (False, True):
        code, out, err = run_cli("respond", USB, "--config", config, "--journal", journal)
        assert code == 0, err
        assert ("duplicate" in out) is expect_duplicate
    assert not (tmp_path / "journal.sqlite.dedupe.db").exists()
