"""Named credentials of the `http` connection: core.http_request sends one by name, only to the
hosts it is bound to, and its value appears nowhere a person or a SIEM reads."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.cli import main
from tests.conftest import ScriptedEndpoint

TOKEN = "hooks-SECRET-token-4fQz81Lm"


def _write(tmp_path: Path, connections: dict[str, Any], steps: list[dict[str, Any]]) -> None:
    (tmp_path / "c.json").write_text(json.dumps({"connections": connections}))
    (tmp_path / "pb.json").write_text(json.dumps({"name": "creds", "steps": steps}))
    (tmp_path / "e.json").write_text("{}")


def _run(tmp_path: Path, capsys: Any, *extra: str) -> tuple[dict[str, Any], str]:
    base = ["run", str(tmp_path / "pb.json"), "--event", str(tmp_path / "e.json"), "--config",
            str(tmp_path / "c.json"), "--journal", str(tmp_path / "j.sqlite")]
    main([*base, "--json"])
    out, err = capsys.readouterr()
    main(["-vv", *base])  # the timeline and the debug logs too
    out2, err2 = capsys.readouterr()
    return json.loads(out), "\n".join([out, err, out2, err2])


def _journal_text(tmp_path: Path) -> str:
    return "".join(Path(f"{tmp_path / 'j.sqlite'}{suffix}").read_bytes().decode("latin-1")
                   for suffix in ("", "-wal", "-shm")
                   if Path(f"{tmp_path / 'j.sqlite'}{suffix}").exists())


@pytest.mark.parametrize("literal", [False, True], ids=["env-reference", "literal-in-config"])
def test_credential_reaches_its_host_and_no_record(tmp_path: Path, capsys: Any,
                                                   caplog: pytest.LogCaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   literal: bool) -> None:
    with ScriptedEndpoint() as hooks, ScriptedEndpoint() as other:
        # The endpoint echoes what it was sent, as httpbin and many error pages do.
        hooks.expect_request("/notify", method="POST").respond_with_json(
            {"ok": True, "you_sent": {"Authorization": f"Bearer {TOKEN}"}, "token": TOKEN})
        other.expect_request("/collect", method="POST").respond_with_json({"ok": True})
        monkeypatch.setenv("HOOKS_TOKEN", TOKEN)
        value = f"Bearer {TOKEN}" if literal else "Bearer ${env:HOOKS_TOKEN}"
        hooks_host, other_host = f"127.0.0.1:{hooks.port}", f"127.0.0.1:{other.port}"
        _write(tmp_path, {"http": {
            "allowed_hosts": [hooks_host, other_host],
            "credentials": {"hooks": {"value": value, "hosts": [hooks_host]}}}}, [
            {"id": "notify", "action": "core.http_request",
             "with": {"method": "POST", "url": f"{hooks.base_url}/notify", "json": {"a": 1},
                      "credential": "hooks"}},
            {"id": "leak", "action": "core.http_request",
             "with": {"method": "POST", "url": f"{other.base_url}/collect", "json": {"a": 1},
                      "credential": "hooks"}},
        ])
        caplog.set_level(logging.DEBUG)
        record, printed = _run(tmp_path, capsys)
        sent = [c for c in hooks.calls if c.path == "/notify"]
        assert sent and all(c.headers.get("Authorization") == f"Bearer {TOKEN}" for c in sent)
        assert other.calls == []  # refused before anything was sent
    assert record["steps"]["notify"]["status"] == "succeeded"
    leak = record["steps"]["leak"]
    assert leak["status"] == "failed"
    assert "credential 'hooks' is not sent to host" in leak["error"]
    assert hooks_host in leak["error"]
    haystacks = {"cli output": printed, "logs": caplog.text, "record": json.dumps(record),
                 "journal": _journal_text(tmp_path)}
    for where, text in haystacks.items():
        assert TOKEN not in text, f"the credential's value found in {where}"
    assert "***" in json.dumps(record["steps"]["notify"]["output"])


def test_default_hosts_are_the_allowed_hosts(endpoint: ScriptedEndpoint,
                                             crownguard_config: Any, crownguard_host: Any,
                                             call_action: Any) -> None:
    endpoint.expect_request("/x").respond_with_json({"ok": True})
    config = crownguard_config({"http": {
        "allowed_hosts": [f"127.0.0.1:{endpoint.port}"],
        "credentials": {"api": {"header": "X-API-Key", "value": TOKEN}}}})
    output = call_action("core.http_request", {"url": f"{endpoint.base_url}/x",
                                               "credential": "api"}, config,
                         host=crownguard_host)
    assert output["status_code"] == 200
    assert endpoint.calls[-1].headers.get("X-Api-Key") == TOKEN


def test_unknown_credential_names_the_step_and_the_name(endpoint: ScriptedEndpoint,
                                                         crownguard_config: Any,
                                                         crownguard_host: Any,
                                                         run_step: Any) -> None:
    config = crownguard_config({"http": {
        "allowed_hosts": [f"127.0.0.1:{endpoint.port}"],
        "credentials": {"hooks": {"value": TOKEN}}}})
    step = run_step("core.http_request", {"url": f"{endpoint.base_url}/x",
                                          "credential": "hookz"},
                    config=config, host=crownguard_host, attempts=1)
    assert step["status"] == "failed"
    assert "step 'step'" in step["error"] and "'hookz'" in step["error"]
    assert "configured: hooks" in step["error"]
    assert endpoint.calls == []


def test_a_header_of_the_step_does_not_override_the_credential(
        endpoint: ScriptedEndpoint, crownguard_config: Any, crownguard_host: Any,
        run_step: Any) -> None:
    config = crownguard_config({"http": {
        "allowed_hosts": [f"127.0.0.1:{endpoint.port}"],
        "credentials": {"hooks": {"value": TOKEN}}}})
    step = run_step("core.http_request", {"url": f"{endpoint.base_url}/x", "credential": "hooks",
                                          "headers": {"authorization": "Bearer mine"}},
                    config=config, host=crownguard_host, attempts=1)
    assert step["status"] == "failed" and "headers.authorization" in step["error"]
    assert endpoint.calls == []


@pytest.mark.parametrize("credential, message", [
    ({"value": "x", "header": "Bad Header:"}, "header"),
    ({"value": "Bearer x\r\nX-Evil: 1"}, "value"),
    ({"header": "Authorization"}, "'value' is required"),
    ({"value": "x", "host": ["a"]}, "unknown key 'host'"),
])
def test_bad_credential_settings_are_refused(crownguard_config: Any, credential: dict[str, Any],
                                             message: str) -> None:
    from crownguard.engine import SpecError

    with pytest.raises(SpecError) as caught:
        crownguard_config({"http": {"allowed_hosts": ["a.example"],
                                    "credentials": {"c": credential}}})
    assert message in str(caught.value) and "connections.http" in str(caught.value)


def test_the_referenced_part_of_a_value_is_a_secret_too(crownguard_config: Any) -> None:
    config = crownguard_config({"http": {"allowed_hosts": ["a.example"], "credentials": {
        "c": {"value": "Bearer ${env:HOOKS_TOKEN}"}}}}, env={"HOOKS_TOKEN": TOKEN})
    assert config.redactor.redact(f"echo: {TOKEN}") == "echo: ***"


def test_an_error_page_echoing_the_credential_does_not_leak_it(endpoint: ScriptedEndpoint,
                                                                crownguard_config: Any,
                                                                crownguard_host: Any,
                                                                run_step: Any) -> None:
    endpoint.expect_request("/x").respond_with_data(
        f"<html>401: the token {TOKEN} is not valid here</html>", status=401,
        content_type="text/html")
    config = crownguard_config({"http": {
        "allowed_hosts": [f"127.0.0.1:{endpoint.port}"],
        "credentials": {"hooks": {"value": "Bearer ${env:HOOKS_TOKEN}"}}}},
        env={"HOOKS_TOKEN": TOKEN})
    events: list[dict[str, Any]] = []
    step = run_step("core.http_request", {"url": f"{endpoint.base_url}/x", "credential": "hooks"},
                    config=config, host=crownguard_host, attempts=1, events=events)
    assert step["status"] == "failed" and "***" in step["error"]
    assert endpoint.calls[-1].headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in json.dumps(step, default=str) + json.dumps(events, default=str)
