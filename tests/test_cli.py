from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.cli import main

PLAYBOOK = """
name: cli-e2e
steps:
  - id: alert
    action: core.http_request
    with:
      method: POST
      url: "${{ vars.base }}/alert"
      json: {user: "${{ event.user }}"}
  - id: lookup
    action: core.http_request
    retry: {max_attempts: 3, backoff_seconds: 0.01}
    with: {url: "${{ vars.base }}/lookup/${{ event.user }}"}
  - id: notify
    action: core.http_request
    needs: [alert, lookup]
    with:
      method: POST
      url: "${{ vars.base }}/notify"
      json: {ticket: "${{ steps.alert.output.body.id }}", level: "${{ steps.lookup.output.body.level }}"}
  - id: escalate
    action: core.noop
    needs: [notify]
    when: failure
"""


@pytest.fixture
def files(tmp_path: Path, endpoint: Any) -> dict[str, Path]:
    playbook = tmp_path / "pb.yaml"
    playbook.write_text(PLAYBOOK)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"user": "dana"}))
    config = tmp_path / "connections.yaml"
    config.write_text(f"connections:\n  http: {{allowed_hosts: ['{endpoint.host}:{endpoint.port}']}}\n"
                      f"settings:\n  vars: {{base: '{endpoint.url_for('').rstrip('/')}'}}\n")
    return {"playbook": playbook, "event": event, "config": config}




def test_run_json_against_http_endpoints(run_cli: Any, files: dict[str, Path], endpoint: Any) -> None:
    endpoint.expect_request("/alert", method="POST", json={"user": "dana"}) \
        .respond_with_json({"id": "T-1"})
    endpoint.expect_oneshot_request("/lookup/dana").respond_with_data("busy", status=503)
    endpoint.expect_request("/lookup/dana").respond_with_json({"level": "high"})
    endpoint.expect_request("/notify", method="POST",
                              json={"ticket": "T-1", "level": "high"}).respond_with_json({})
    code, out, _ = run_cli("run", files["playbook"], "--event", files["event"],
                           "--config", files["config"], "--json")
    record = json.loads(out)
    assert code == 0, out
    assert record["status"] == "succeeded"
    assert record["steps"]["lookup"]["attempts"] == 2
    assert record["steps"]["escalate"]["status"] == "skipped"
    assert record["steps"]["notify"]["output"]["status_code"] == 200


def test_failed_run_exits_1_and_prints_timeline(run_cli: Any, files: dict[str, Path], endpoint: Any) -> None:
    endpoint.expect_request("/alert").respond_with_json({"error": "nope"}, status=400)
    endpoint.expect_request("/lookup/dana").respond_with_json({"level": "low"})
    code, out, _ = run_cli("run", files["playbook"], "--event", files["event"],
                           "--config", files["config"])
    assert code == 1
    assert "✘ alert" in out and "(HTTP 400): nope" in out
    assert "run finished: failed" in out
    assert "notify" in out and "skipped" in out


def test_host_not_allowed_sends_nothing(run_cli: Any, tmp_path: Path, endpoint: Any) -> None:
    playbook = tmp_path / "pb.yaml"
    playbook.write_text(f"name: x\nsteps:\n  - id: a\n    action: core.http_request\n"
                        f"    with: {{url: '{endpoint.url_for('/x')}'}}\n")
    config = tmp_path / "c.yaml"
    config.write_text("connections:\n  http: {allowed_hosts: ['hooks.example.com']}\n")
    code, out, _ = run_cli("run", playbook, "--config", config, "--json")
    assert code == 1
    assert "is not in connections.http.allowed_hosts" in json.loads(out)["steps"]["a"]["error"]
    assert endpoint.calls == []


def test_validate_reports_every_problem(run_cli: Any, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("name: good\nsteps:\n  - {id: a, action: core.noop}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - {id: a, action: core.nope}\n"
                   "  - {id: b, action: core.noop, needs: [zz]}\n")
    code, out, _ = run_cli("validate", good, bad)
    assert code == 1
    assert f"{good}: ok (1 steps, playbook 'good')" in out
    assert f"{bad}:4: step 'b': needs unknown step 'zz'" in out
    assert f"{bad}:3: step 'a': unknown action 'core.nope'" in out


def test_validate_takes_directories_and_skips_scenarios(run_cli: Any, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text("name: a\nsteps:\n  - {id: a, action: core.noop}\n")
    (tmp_path / "sub" / "b.json").write_text('{"name": "b", "steps": [{"id": "x", '
                                             '"action": "core.nope"}]}')
    (tmp_path / "sub" / "c.scenario.yaml").write_text("not: a playbook\n")
    (tmp_path / "notes.md").write_text("# not a playbook\n")
    code, out, _ = run_cli("validate", tmp_path)
    assert code == 1
    assert f"{tmp_path / 'a.yaml'}: ok" in out
    assert f"{tmp_path / 'sub' / 'b.json'}:1: step 'x': unknown action" in out
    assert "scenario" not in out and "notes" not in out


def test_validate_shipped_playbooks_directory(run_cli: Any) -> None:
    code, out, _ = run_cli("validate", Path(__file__).parent.parent / "playbooks")
    assert code == 0, out
    assert out.count(": ok (") >= 4


def test_validate_missing_file_is_an_input_error(run_cli: Any, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("name: good\nsteps:\n  - {id: a, action: core.noop}\n")
    code, out, err = run_cli("validate", tmp_path / "nope.yaml", good)
    assert code == 2
    assert f"{tmp_path / 'nope.yaml'}: no such file" in err
    assert f"{good}: ok" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli("validate", empty)
    assert code == 2 and "no playbook files" in err


def test_graph_formats(run_cli: Any, files: dict[str, Path]) -> None:
    code, out, _ = run_cli("graph", files["playbook"])
    assert code == 0 and out.startswith("flowchart TD")
    assert "alert --> notify" in out and "notify -. failure .-> escalate" in out
    code, out, _ = run_cli("graph", files["playbook"], "--format", "dot")
    assert '"alert" -> "notify";' in out and 'label="failure"' in out


def test_actions_and_plugins(run_cli: Any) -> None:
    code, out, _ = run_cli("actions")
    assert code == 0 and "* core.http_request" in out
    code, out, _ = run_cli("actions", "core.http_request")
    assert "Idempotency-Key" in out and '"url"' in out
    code, out, _ = run_cli("actions", "core.transform", "--json")
    assert json.loads(out)["input_schema"]["required"] == ["data"]
    code, _, err = run_cli("actions", "core.nothing")
    assert code == 2 and "unknown action 'core.nothing' (did you mean:" in err
    code, out, _ = run_cli("plugins")
    assert code == 0 and out.startswith("core")


def test_input_errors_exit_2_with_a_message(run_cli: Any, tmp_path: Path, files: dict[str, Path]) -> None:
    code, _, err = run_cli("run", tmp_path / "missing.yaml")
    assert code == 2 and "missing.yaml: no such file" in err
    bad_event = tmp_path / "event.json"
    bad_event.write_text("[1, 2]")
    code, _, err = run_cli("run", files["playbook"], "--event", bad_event)
    assert code == 2 and "the event must be a JSON object" in err
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    code, _, err = run_cli("run", files["playbook"], "--event", broken)
    assert code == 2 and "broken.json:1: invalid JSON" in err
    config = tmp_path / "c.yaml"
    config.write_text("connections:\n  http: {allowed_hosts: ['${env:CG_TEST_UNSET_VAR}']}\n")
    code, _, err = run_cli("run", files["playbook"], "--config", config)
    assert code == 2 and "environment variable CG_TEST_UNSET_VAR is not set" in err


def test_usage_errors_exit_2_without_traceback() -> None:
    for args in (["run"], ["graph", "x", "--format", "png"], ["bogus"]):
        result = subprocess.run([sys.executable, "-m", "crownguard.engine.cli", *args],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr and "error:" in result.stderr


def test_dry_run_calls_nothing(run_cli: Any, files: dict[str, Path], endpoint: Any) -> None:
    _, out, _ = run_cli("run", files["playbook"], "--event", files["event"],
                        "--config", files["config"], "--dry-run", "--json")
    record = json.loads(out)
    assert endpoint.calls == []
    assert record["steps"]["alert"]["output"]["dry_run"] is True
    assert record["steps"]["alert"]["output"]["inputs"]["json"] == {"user": "dana"}


def test_demo_runs(run_cli: Any) -> None:
    code, out, _ = run_cli("demo")
    assert code == 0
    assert "summary" in out and "vendor calls" in out


def test_dry_run_with_vendor_plugins_sends_nothing(run_cli: Any, tmp_path: Path, mock_server: Any) -> None:
    from crownguard.plugins.falcon.mock import FalconMock
    from crownguard.plugins.okta.mock import OktaMock

    falcon = mock_server(FalconMock)
    okta = mock_server(OktaMock)
    config = tmp_path / "c.yaml"
    import yaml

    config.write_text(yaml.safe_dump({"connections": {"falcon": falcon.connection_settings(),
                                                      "okta": okta.connection_settings()}}))
    playbook = tmp_path / "pb.yaml"
    playbook.write_text("""
name: dry
steps:
  - {id: find, action: falcon.find_host, with: {hostname: "${{ event.host }}"}}
  - {id: contain, action: falcon.contain_host, needs: [find], with: {hostname: "${{ event.host }}"}}
  - {id: suspend, action: okta.suspend_user, with: {user: "${{ event.user }}"}}
  - {id: summary, action: core.transform, needs: [contain, suspend], with: {data: "${{ steps.suspend.output }}"}}
""")
    event = tmp_path / "e.json"
    event.write_text(json.dumps({"host": "WS-ALICE-01", "user": "dana@example.com"}))
    code, out, _ = run_cli("run", playbook, "--event", event, "--config", config,
                           "--dry-run")
    assert code == 0, out
    assert "would call okta.suspend_user" in out and '"user":"dana@example.com"' in out
    assert "would call falcon.contain_host" in out
    # The look-up ran; nothing that changes state was sent to either vendor.
    assert [c.method for c in falcon.calls if "/devices/" in c.path] == ["GET"] * len(
        [c for c in falcon.calls if "/devices/" in c.path])
    assert falcon.calls_to("POST", "/devices/entities/devices-actions/v2") == []
    assert okta.calls == []


def test_boolean_params_are_json_spelled(run_cli: Any, tmp_path: Path, endpoint: Any) -> None:
    endpoint.expect_request("/q", query_string="c=true&n=2").respond_with_json({"ok": 1})
    playbook = tmp_path / "pb.yaml"
    playbook.write_text(f"name: q\nsteps:\n  - id: a\n    action: core.http_request\n"
                        f"    with: {{url: '{endpoint.url_for('/q')}', params: {{c: true, n: 2}}}}\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"connections:\n  http: {{allowed_hosts: ['{endpoint.host}:{endpoint.port}']}}\n")
    code, out, _ = run_cli("run", playbook, "--config", config, "--json", "--no-journal")
    assert code == 0, out


def test_max_concurrency_must_be_positive(files: dict[str, Path], capsys: Any) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", str(files["playbook"]), "--max-concurrency", "-1"])
    assert info.value.code == 2
    assert "-1 is not between 1 and 1024" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from crownguard.engine import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"crownguard {__version__}"


def test_verbose_after_the_command(run_cli: Any, tmp_path: Path) -> None:
    import logging

    good = tmp_path / "good.yaml"
    good.write_text("name: good\nsteps:\n  - {id: a, action: core.noop}\n")
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.handlers.clear()  # basicConfig configures only a root with no handlers
    try:
        code, out, _ = run_cli("validate", good, "-v", "-v")
        assert code == 0 and ": ok" in out
        assert root.level == logging.DEBUG
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    from crownguard.engine.cli.app import build_parser

    args = build_parser().parse_args(["-v", "runs", "show", "abcdefgh", "--verbose"])
    assert args.verbose + args.verbose_after == 2


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))


def test_dash_reads_standard_input(run_cli: Any, files: dict[str, Path],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _stdin(monkeypatch, "name: piped\nsteps:\n  - {id: a, action: core.noop}\n"
                        "  - {id: b, action: core.nope}\n")
    code, out, _ = run_cli("validate", "-")
    assert code == 1
    assert "<stdin>:4: step 'b': unknown action 'core.nope'" in out
    _stdin(monkeypatch, "name: piped\nsteps:\n  - {id: a, action: core.noop}\n")
    code, out, _ = run_cli("validate", "-")
    assert code == 0 and "<stdin>: ok (1 steps, playbook 'piped')" in out
    playbook = files["playbook"].with_name("noop.yaml")
    playbook.write_text("name: e\nsteps:\n  - {id: a, action: core.noop, "
                        "if: \"event.user == 'dana'\"}\n")
    _stdin(monkeypatch, files["event"].read_text())
    code, out, _ = run_cli("run", playbook, "--event", "-", "--json", "--no-journal")
    assert code == 0, out
    assert json.loads(out)["steps"]["a"]["status"] == "succeeded"
    _stdin(monkeypatch, "[1, 2]")
    code, _, err = run_cli("run", files["playbook"], "--event", "-", "--no-journal")
    assert code == 2 and "<stdin>: the event must be a JSON object" in err
    code, _, err = run_cli("run", "-", "--event", "-")
    assert code == 2 and "only one of PLAYBOOK and --event" in err


def test_triage_reads_standard_input(run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    samples = Path(__file__).resolve().parents[1] / "plugins" / "incydr" / "samples"
    _stdin(monkeypatch, (samples / "model-to-removable-media.json").read_text())
    code, out, err = run_cli("triage", "-")
    assert code == 0, err
    assert "risk       100 critical" in out
    _stdin(monkeypatch, "just text\n")
    code, _, err = run_cli("triage", "-")
    assert code == 2 and err.startswith("crownguard: <stdin>: expected an event object"), err


def test_every_run_command_takes_the_timelines_twelve_character_prefix(
        run_cli: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "waits.yaml"
    playbook.write_text("name: ask-then-act\nsteps:\n  - id: ask\n"
                        "    action: core.wait_for_approval\n"
                        "    with: {prompt: 'Go?', approvers: [alice], timeout_seconds: 3600}\n"
                        "  - {id: act, action: core.noop, needs: [ask]}\n")
    j = str(tmp_path / "j.sqlite")

    def start() -> str:
        code, out, _ = run_cli("run", playbook, "--journal", j, "--json")
        assert code == 3, out
        return str(json.loads(out)["run_id"])

    first = start()
    short = first[:12]
    code, out, err = run_cli("runs", "show", short, "--journal", j)
    assert code == 0 and first in out, err
    code, out, err = run_cli("resume", short, "--journal", j)
    assert code == 3, err
    code, out, err = run_cli("approve", short, "ask", "--decision", "approve", "--by", "alice",
                             "--journal", j, "--json")
    assert code == 0, err
    code, _, err = run_cli("audit", "export", "--run", short, "--journal", j)
    assert code == 0 and "exported" in err, err
    code, _, err = run_cli("undo", short, "--dry-run", "--journal", j)
    assert "nothing to undo: no step of 'ask-then-act'" in err, err  # found, nothing to do
    second = start()
    code, _, err = run_cli("cancel", second[:12], "--journal", j)
    assert code == 0, err
    code, out, err = run_cli("rerun", second[:12], "--journal", j)
    assert code == 3 and f"(a rerun of run {second})" in out, err
