"""`crownguard run PLAYBOOK --event FILE` reads the event as `triage` and `respond` do: a raw
Incydr payload is normalised, detected and scored first; another shape is handed over as
written, with a note saying so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.scenarios import MockFleet, seed

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "plugins" / "incydr" / "samples"
GENAI = SAMPLES / "model-upload-genai-browser.json"  # a raw Incydr file event
NUDGE = ROOT / "playbooks" / "low-risk-model-nudge.yaml"
MARCO = "marco.bianchi@example.com"


@pytest.fixture
def slack(fleet: MockFleet, fleet_connections: Any) -> tuple[MockFleet, Path]:
    fleet.reset()
    seed(fleet, {"slack": {"users": [{"email": MARCO, "name": "Marco Bianchi"}]}})
    config, _ = fleet_connections(fleet)
    return fleet, config


def test_run_normalises_a_raw_incydr_file_event_and_nudges_the_person(
        run_cli: Any, slack: tuple[MockFleet, Path]) -> None:
    fleet, config = slack
    code, out, err = run_cli("run", NUDGE, "--event", GENAI, "--config", config, "--json",
                             "--no-journal")
    assert code == 0, err
    record = json.loads(out)
    assert record["steps"]["nudge"]["status"] == "succeeded"
    assert record["steps"]["nudge_failed"]["status"] == "skipped"
    mock = fleet.get("slack")
    [user] = [u for u in mock.users.values() if u["profile"]["email"] == MARCO]
    channel = mock.dm_of(user["id"])
    assert channel is not None
    [message] = mock.messages(channel)
    assert "adapter_model.safetensors" in json.dumps(message)
    assert err == ""  # a recognised payload needs no word


def test_run_gives_the_playbook_event_and_risk_as_respond_does(
        run_cli: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "echo.yaml"
    playbook.write_text("name: echo\nsteps:\n  - id: show\n    action: core.noop\n"
                        "    with: {email: '${{ event.actor.email }}', "
                        "model: '${{ event.file.is_model }}', level: '${{ risk.level }}'}\n")
    code, out, err = run_cli("run", playbook, "--event", GENAI, "--json", "--no-journal")
    assert code == 0, err
    shown = json.loads(out)["steps"]["show"]["output"]
    assert shown["email"] == MARCO and shown["model"] is True
    assert shown["level"] in {"info", "low", "medium", "high", "critical"}


def test_run_hands_another_shape_over_as_written_and_says_so(
        run_cli: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "echo.yaml"
    playbook.write_text("name: echo\nsteps:\n  - id: show\n    action: core.noop\n"
                        "    with: {user: '${{ event.user }}'}\n")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"user": "dana"}))
    code, out, err = run_cli("run", playbook, "--event", event, "--json", "--no-journal")
    assert code == 0, err
    assert json.loads(out)["steps"]["show"]["output"] == {"user": "dana"}
    assert f"{event}: not a crownguard event, an Incydr file event or alert" in err
    assert "the playbook gets the event as written" in err


def test_run_refuses_a_bad_incydr_event_or_one_with_several_files(
        run_cli: Any, tmp_path: Path) -> None:
    raw = json.loads(GENAI.read_text())
    del raw["file"]["name"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    code, out, err = run_cli("run", NUDGE, "--event", bad, "--no-journal")
    assert code == 2 and out == ""
    assert f"{bad}: incydr.file_event: file.name: is required" in err
    files = [{"name": f"model-{n}.safetensors", "path": "E:/m/", "size": 4_000_000_000,
              "eventId": f"ev-{n}"} for n in (1, 2)]
    alert = {"id": "alert-1", "actor": MARCO, "actorId": "u-1",
             "createdAt": "2026-11-20T21:50:00Z",
             "observations": [{"observedAt": "2026-11-20T21:45:00Z",
                               "data": {"exposureTypes": ["RemovableMedia"], "files": files}}]}
    several = tmp_path / "alert.json"
    several.write_text(json.dumps(alert))
    code, out, err = run_cli("run", NUDGE, "--event", several, "--no-journal")
    assert code == 2 and "holds 2 events" in err and "crownguard respond" in err
