"""defender plugin: errors a SOC can act on, rate limits, retries, token expiry mid-run,
paging safety, and secrets kept out of every record."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from crownguard.plugins import defender as defender_plugin
from crownguard.plugins.defender.mock import DefenderMock

ALICE = "1e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d"
ISOLATE = "/api/machines/{machine_id}/isolate"
SECRET = "Def3nder~S3cret.do-not-leak.0815"
APP = "3a2b1c0d-9e8f-4a7b-8c6d-5e4f3a2b1c0d"


def one_step(action: str, inputs: dict[str, Any], *, attempts: int = 3,
             timeout: float | None = None) -> str:
    lines = ["name: defender-errors", "steps:", "  - id: act", f"    action: {action}",
             f"    with: {json.dumps(inputs)}",
             f"    retry: {{max_attempts: {attempts}, backoff_seconds: 0.01}}"]
    if timeout:
        lines.append(f"    timeout_seconds: {timeout}")
    return "\n".join(lines) + "\n"


def isolate(**kwargs: Any) -> str:
    return one_step("defender.isolate_machine", {"machine_id": ALICE}, **kwargs)


@pytest.fixture
def defender(mock_server: Callable[..., Any]) -> DefenderMock:
    server: DefenderMock = mock_server(DefenderMock)
    server.add_app(APP, SECRET)
    return server


@pytest.fixture
def run(defender: DefenderMock, isolated_host: Callable[..., Any],
        crownguard_config: Callable[..., Any],
        run_playbook: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    host = isolated_host(defender_plugin, name="defender")

    def go(playbook: str, *, events: list[dict[str, Any]] | None = None,
           secret: str = SECRET, **settings: Any) -> dict[str, Any]:
        connection = {**defender.connection_settings(), "client_id": APP,
                      "client_secret": "${env:DEFENDER_SECRET}", **settings}
        config = crownguard_config({"defender": connection}, host=host,
                                   env={"DEFENDER_SECRET": secret})
        return run_playbook(playbook, {}, config=config, host=host,
                            journal=events.append if events is not None else None)

    return go


# --- credentials and permissions ---------------------------------------------------------------


def test_wrong_client_secret_is_a_clear_auth_error(run: Callable[..., dict[str, Any]],
                                                   defender: DefenderMock) -> None:
    record = run(isolate(), secret="wrong-secret-value-42")
    step = record["steps"]["act"]
    assert step["status"] == "failed"
    assert step["error"].startswith("defender get OAuth2 token (HTTP 401)")
    assert "Entra refused the app's credentials" in step["error"]
    assert "AADSTS7000215" in step["error"]
    assert step["attempts"] == 1
    assert "wrong-secret-value-42" not in json.dumps(record)
    assert defender.calls_to("POST", ISOLATE) == []


def test_unknown_tenant_is_an_auth_error_too(run: Callable[..., dict[str, Any]],
                                            defender: DefenderMock) -> None:
    step = run(isolate(), token_url=f"{defender.base_url}/other-tenant/oauth2/v2.0/token")
    step = step["steps"]["act"]
    assert step["status"] == "failed"
    assert "defender get OAuth2 token (HTTP 400)" in step["error"]
    assert "AADSTS90002" in step["error"]


def test_missing_application_permission_is_named(run: Callable[..., dict[str, Any]],
                                                 defender: DefenderMock) -> None:
    defender.add_app(APP, SECRET, {"Machine.Read.All"})
    step = run(isolate())["steps"]["act"]
    assert step["status"] == "failed"
    assert "defender isolate machine (HTTP 403)" in step["error"]
    assert "Forbidden" in step["error"]
    assert "application permission Machine.Isolate" in step["error"]
    assert step["attempts"] == 1
    assert not defender.machines[ALICE].isolated


def test_missing_file_permission_for_a_sha256(run: Callable[..., dict[str, Any]],
                                              defender: DefenderMock) -> None:
    defender.add_app(APP, SECRET, {"Machine.Read.All", "Machine.StopAndQuarantine"})
    step = run(one_step("defender.quarantine_file", {"machine_id": ALICE, "sha256": "c" * 64}))
    assert "File.Read.All" in step["steps"]["act"]["error"]


# --- rate limits, server errors, bad bodies, timeouts --------------------------------------------


def test_429_retry_after_is_honoured(run: Callable[..., dict[str, Any]],
                                     defender: DefenderMock) -> None:
    defender.inject("status", status=429, retry_after=0.3, path=ISOLATE)
    events: list[dict[str, Any]] = []
    step = run(isolate(), events=events)["steps"]["act"]
    assert step["status"] == "succeeded", step["error"]
    assert step["attempts"] == 2
    [failed] = [e for e in events if e["type"] == "attempt_failed"]
    assert failed["error_type"] == "RateLimited"
    assert "TooManyRequests" in failed["error"]
    assert failed["retry_in"] >= 0.3
    assert len(defender.calls_to("POST", ISOLATE)) == 2
    assert defender.machines[ALICE].isolated


def test_5xx_while_polling_is_retried_without_a_second_isolation(
        run: Callable[..., dict[str, Any]], defender: DefenderMock) -> None:
    defender.inject("status", status=503, path="/api/machineactions/{action_id}")
    step = run(isolate())["steps"]["act"]
    assert step["status"] == "succeeded", step["error"]
    assert step["attempts"] == 2
    assert len(defender.calls_to("POST", ISOLATE)) == 1  # the retry adopts the running action
    assert step["output"]["changed"] is True  # ...and knows it was its own


def test_persistent_5xx_fails_after_the_retry_budget(run: Callable[..., dict[str, Any]],
                                                     defender: DefenderMock) -> None:
    defender.inject("status", status=500, path="/api/machineactions", times=None)
    step = run(isolate())["steps"]["act"]
    assert step["status"] == "failed"
    assert step["attempts"] == 3
    assert "defender list machine actions (HTTP 500)" in step["error"]
    assert "InternalServerError" in step["error"]


def test_malformed_json_is_a_bad_response(run: Callable[..., dict[str, Any]],
                                          defender: DefenderMock) -> None:
    defender.inject("malformed", path=f"/api/machines/{ALICE}")
    step = run(one_step("defender.find_machine", {"machine_id": ALICE}))["steps"]["act"]
    assert step["status"] == "failed"
    assert "defender get machine (HTTP 200)" in step["error"]
    assert "not valid JSON" in step["error"]
    assert step["attempts"] == 1


def test_a_next_link_to_another_host_is_refused(run: Callable[..., dict[str, Any]],
                                                defender: DefenderMock) -> None:
    defender.inject("status", status=200, path="/api/machines",
                    body={"value": [], "@odata.nextLink": "https://evil.example/api/machines"})
    step = run(one_step("defender.find_machine", {"hostname": "ws-alice-01"}))["steps"]["act"]
    assert step["status"] == "failed"
    assert "refusing to follow a link to another host (evil.example)" in step["error"]


def test_a_timeout_is_retried(run: Callable[..., dict[str, Any]],
                              defender: DefenderMock) -> None:
    defender.inject("timeout", seconds=0.5, path=f"/api/machines/{ALICE}")
    step = run(isolate(), timeout_seconds=0.2)["steps"]["act"]
    assert step["status"] == "succeeded", step["error"]
    assert step["attempts"] == 2


def test_the_step_timeout_bounds_the_action_wait(run: Callable[..., dict[str, Any]],
                                                 defender: DefenderMock) -> None:
    defender.action_polls = 1_000_000
    step = run(isolate(attempts=1, timeout=0.5))["steps"]["act"]
    assert step["status"] == "failed"
    assert "timeout" in step["error"] or "did not finish" in step["error"]


def test_max_wait_bounds_a_step_without_timeout(run: Callable[..., dict[str, Any]],
                                                defender: DefenderMock) -> None:
    defender.action_polls = 1_000_000
    step = run(isolate(attempts=1), max_wait_seconds=0.2)["steps"]["act"]
    assert step["status"] == "failed"
    assert "defender: still waiting for Isolate action" in step["error"]


# --- tokens --------------------------------------------------------------------------------------

TWO_STEPS = """
name: defender-two-steps
steps:
  - id: find
    action: defender.find_machine
    with: {hostname: ws-alice-01}
  - id: act
    action: defender.isolate_machine
    needs: [find]
    with: {machine_id: "${{ steps.find.output.machine_id }}"}
"""


def test_token_expiring_mid_run_is_refreshed_once(run: Callable[..., dict[str, Any]],
                                                  defender: DefenderMock) -> None:
    defender.expire_tokens_after(1)  # find uses it once, then it dies
    record = run(TWO_STEPS)
    assert record["status"] == "succeeded", record
    assert record["steps"]["act"]["attempts"] == 1
    assert len(defender.calls_to("POST", f"/{defender.tenant_id}/oauth2/v2.0/token")) == 2
    assert defender.machines[ALICE].isolated


def test_a_token_refused_after_refresh_is_an_auth_error(run: Callable[..., dict[str, Any]],
                                                        defender: DefenderMock) -> None:
    defender.expire_tokens_after(0)
    defender.inject("status", status=401, path="/api/machines/{machine_id}", times=None)
    step = run(isolate(attempts=1))["steps"]["act"]
    assert step["status"] == "failed"
    assert "defender get machine (HTTP 401)" in step["error"]
    assert "check the connection's credentials" in step["error"]
    assert len(defender.calls_to("POST", f"/{defender.tenant_id}/oauth2/v2.0/token")) == 2


# --- secrets -------------------------------------------------------------------------------------


def test_secrets_never_reach_records_events_or_errors(run: Callable[..., dict[str, Any]],
                                                      defender: DefenderMock) -> None:
    events: list[dict[str, Any]] = []
    ok = run(TWO_STEPS, events=events)
    assert ok["status"] == "succeeded"
    defender.inject("status", status=400, path="/api/machines/{machine_id}/unisolate",
                    body={"error": {"code": "BadRequest",
                                    "message": f"echo client_secret={SECRET}"}})
    failed = run(one_step("defender.release_machine", {"machine_id": ALICE}), events=events)
    assert failed["status"] == "failed"
    assert "***" in failed["steps"]["act"]["error"]
    bearers = [c.headers.get("Authorization", "")[7:] for c in defender.calls
               if c.headers.get("Authorization", "").startswith("Bearer ")]
    text = json.dumps([ok, failed, events])
    assert SECRET not in text
    assert bearers and not any(token in text for token in bearers)
