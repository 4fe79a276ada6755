"""`crownguard serve --log-format json`: one JSON object a line, run bound, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from servicetest import SLOW, TOKENS, new_event, start_service

from crownguard.engine import ActionContext, action, hookimpl
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.scenarios import MockFleet
from crownguard.engine.secrets import Redactor
from crownguard.engine.service import logs
from crownguard.engine.spec import parse_playbook

SECRET = "vendor-secret-0123456789abcdefXYZ"


@pytest.fixture
def captured() -> Any:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_what_is_bound_and_no_secret(captured: io.StringIO) -> None:
    redactor = Redactor([SECRET])  # a live redactor: the filter masks its secrets everywhere
    logs.configure("json", stream=captured)
    log = logging.getLogger("crownguard.test")
    with logs.bound(run_id="run-1", step_id="suspend"):
        try:
            raise RuntimeError(f"okta said: invalid token {SECRET}")
        except RuntimeError:
            log.exception("vendor error: %s", f"401 {SECRET}")
    log.warning("after the run")
    first, second = _lines(captured)
    assert first["level"] == "error" and first["logger"] == "crownguard.test"
    assert first["run_id"] == "run-1" and first["step_id"] == "suspend"
    assert first["message"] == "vendor error: 401 ***"
    assert "invalid token ***" in first["exc"]
    assert first["ts"].endswith("Z")
    assert "run_id" not in second
    assert SECRET not in captured.getvalue()
    assert redactor is not None


def test_text_lines_name_what_is_bound(captured: io.StringIO) -> None:
    logs.configure("text", stream=captured)
    with logs.bound(run_id="run-2"):
        logging.getLogger("crownguard.test").warning("hello")
    assert captured.getvalue() == "WARNING crownguard.test: hello run_id=run-2\n"


def test_access_lines_mask_query_tokens(captured: io.StringIO) -> None:
    logs.configure("json", stream=captured)
    logging.getLogger(logs.ACCESS_LOGGER).info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
        "/v1/runs?status=waiting&access_token=abcdef0123456789", "1.1", 200)
    [line] = _lines(captured)
    assert line["path"] == "/v1/runs?status=waiting&access_token=***"
    assert line["status"] == 200 and line["method"] == "GET"
    assert "abcdef0123456789" not in captured.getvalue()


def test_bound_undoes_what_the_run_bound_inside_it() -> None:
    with logs.bound(intake_item=3):
        logs.bind(run_id="r", step_id="s")  # as RunBinder does when a step starts
        assert logs.fields() == {"intake_item": 3, "run_id": "r", "step_id": "s"}
    assert logs.fields() == {}


class Chatty:
    """A plugin whose action logs, as a vendor client does, on the runner's call thread."""

    @hookimpl
    def crownguard_register_actions(self, register: Any) -> None:
        @action("chatty.say", input_schema={"type": "object"})
        def say(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
            logging.getLogger("crownguard.plugins.chatty").warning("calling the vendor")
            return {}

        register(say)


def test_a_plugins_log_under_a_run_carries_its_run_and_step(captured: io.StringIO) -> None:
    host = PluginHost()
    host.add(Chatty(), "chatty")
    host.pm.register(logs.RunBinder(), name="crownguard-service-logs")
    playbook = parse_playbook("name: chat\nsteps:\n  - {id: hello, action: chatty.say}\n",
                              host.actions)
    logs.configure("json", stream=captured)
    with logs.bound(intake_item=7):
        record = Runner(host).run(playbook, {})
    [line] = [e for e in _lines(captured) if e["logger"] == "crownguard.plugins.chatty"]
    assert line["run_id"] == record["run_id"] and line["step_id"] == "hello"
    assert line["intake_item"] == 7
    assert logs.fields() == {}


def test_served_json_logs(service_files: dict[str, Any], service_fleet: MockFleet,
                          tmp_path: Path) -> None:
    okta = service_fleet.get("okta")
    token = service_files["env"]["CG_TEST_OKTA_TOKEN"]
    event = new_event(SLOW)
    okta.add_user(event["actor"]["email"])
    # The vendor echoes the credential in its error: it must not reach the log.
    okta.inject("status", status=400, path="/api/v1/users/*", times=None,
                body={"errorCode": "E0000011", "errorSummary": f"Invalid token: SSWS {token}"})
    service = start_service(service_files, tmp_path / "j.sqlite",
                            env={"CROWNGUARD_LOG_FORMAT": "json"})
    try:
        assert service.post_event(event).status_code == 202
        [run] = service.runs_of(event["id"])
        assert run["status"] == "failed"
        assert service.call("GET", "/v1/runs?limit=1&access_token=hidden-0123456789",
                            who="siem-reader").status_code == 200
    finally:
        okta.clear_faults()
        assert service.stop() == 0
    text = "".join(service.log)
    lines = [json.loads(line) for line in service.log]  # every line is one JSON object
    assert {"ts", "level", "logger", "message"} <= set(lines[0])
    failed = [e for e in lines if "failed:" in e["message"] and e.get("run_id") == run["run_id"]]
    assert failed and failed[0]["intake_item"] and "Invalid token" in failed[0]["message"]
    access = [e for e in lines if e["logger"] == "uvicorn.access"]
    assert any(e["path"].startswith("/v1/events/siem") and e["status"] == 202 for e in access)
    assert any("access_token=***" in e["path"] for e in access)
    for secret in (token, "hidden-0123456789", *[t for _, t in TOKENS.values()]):
        assert secret not in text
    assert "Authorization" not in text and "Bearer" not in text
