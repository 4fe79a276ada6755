"""falcon plugin: each error class a SOC must be able to act on, rate limits, retries, token
expiry mid-run, and secrets kept out of every record."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from crownguard.engine import InputError
from crownguard.plugins import falcon as falcon_plugin
from crownguard.plugins.falcon.mock import FalconMock
from crownguard.plugins.falcon.rtr import quote_path

ALICE = "4e1f0c3a9b7d4c21a5f08e6d2b3c7a91"
DEVICES = "/devices/entities/devices/v2"
ACTIONS = "/devices/entities/devices-actions/v2"
SECRET = "Fa1c0n-S3cret-do-not-leak-4711"


def one_step(action: str, inputs: dict[str, Any], *, attempts: int = 3,
             timeout: float | None = None) -> str:
    lines = ["name: falcon-errors", "steps:", "  - id: act", f"    action: {action}",
             f"    with: {json.dumps(inputs)}",
             f"    retry: {{max_attempts: {attempts}, backoff_seconds: 0.01}}"]
    if timeout:
        lines.append(f"    timeout_seconds: {timeout}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def falcon(mock_server: Callable[..., Any]) -> FalconMock:
    server: FalconMock = mock_server(FalconMock)
    server.add_client("soc-automation", SECRET)
    return server


@pytest.fixture
def host(isolated_host: Callable[..., Any]) -> Any:
    return isolated_host(falcon_plugin, name="falcon")


@pytest.fixture
def run(falcon: FalconMock, host: Any, crownguard_config: Callable[..., Any],
        run_playbook: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Run a playbook against the mock with the `soc-automation` client; the run record."""

    def go(playbook: str, *, events: list[dict[str, Any]] | None = None,
           secret: str = SECRET, **settings: Any) -> dict[str, Any]:
        connection = {**falcon.connection_settings(), "client_id": "soc-automation",
                      "client_secret": "${env:FALCON_SECRET}", **settings}
        config = crownguard_config({"falcon": connection}, host=host,
                                   env={"FALCON_SECRET": secret})
        journal = events.append if events is not None else None
        return run_playbook(playbook, {}, config=config, host=host, journal=journal)

    return go


def contain(**kwargs: Any) -> str:
    return one_step("falcon.contain_host", {"device_id": ALICE}, **kwargs)


# --- credentials and permissions ---------------------------------------------------------------


def test_wrong_client_secret_is_a_clear_auth_error(run: Callable[..., dict[str, Any]],
                                                   falcon: FalconMock) -> None:
    record = run(contain(), secret="not-the-right-secret-123")
    step = record["steps"]["act"]
    assert step["status"] == "failed"
    error = step["error"]
    assert error.startswith("falcon get OAuth2 token (HTTP 403)")
    assert "client id or secret was refused" in error
    assert "not-the-right-secret-123" not in json.dumps(record)
    assert step["attempts"] == 1  # wrong credentials are not retried
    assert falcon.calls_to("POST", ACTIONS) == []


def test_missing_api_scope_names_the_scope(run: Callable[..., dict[str, Any]],
                                           falcon: FalconMock) -> None:
    falcon.add_client("soc-automation", SECRET, {"devices:read"})
    step = run(contain())["steps"]["act"]
    assert step["status"] == "failed"
    assert "falcon contain host (HTTP 403)" in step["error"]
    assert "access denied, authorization failed" in step["error"]
    assert "Hosts: Write" in step["error"]
    assert step["attempts"] == 1
    assert falcon.hosts[ALICE].status == "normal"


def test_missing_rtr_scope_stops_before_touching_the_file(run: Callable[..., dict[str, Any]],
                                                          falcon: FalconMock) -> None:
    falcon.add_client("soc-automation", SECRET, {"devices:read", "real-time-response:read"})
    path = r"C:\Users\alice\Downloads\corp-brain-v3.safetensors"
    step = run(one_step("falcon.quarantine_file", {"device_id": ALICE, "path": path}))
    step = step["steps"]["act"]
    assert step["status"] == "failed"
    assert "falcon run RTR command (HTTP 403)" in step["error"]
    assert "Real time response: Write" in step["error"]
    assert falcon.file_on(ALICE, path) is not None


# --- rate limits, server errors, bad bodies, timeouts --------------------------------------------


def test_429_retry_after_is_honoured_by_the_step_retry(run: Callable[..., dict[str, Any]],
                                                       falcon: FalconMock) -> None:
    falcon.inject("status", status=429, retry_after=0.3, path=ACTIONS)
    events: list[dict[str, Any]] = []
    step = run(contain(), events=events)["steps"]["act"]
    assert step["status"] == "succeeded", step["error"]
    assert step["attempts"] == 2
    [failed] = [e for e in events if e["type"] == "attempt_failed"]
    assert failed["error_type"] == "RateLimited"
    assert "HTTP 429" in failed["error"]
    assert failed["retry_in"] >= 0.3  # at least what the vendor asked, not the 0.01 backoff


def test_429_with_only_the_falcon_retryafter_epoch_header(run: Callable[..., dict[str, Any]],
                                                          falcon: FalconMock) -> None:
    falcon.send_retry_after_header = False
    falcon.inject("status", status=429, retry_after=1, path=DEVICES)
    events: list[dict[str, Any]] = []
    step = run(contain(), events=events)["steps"]["act"]
    assert step["status"] == "succeeded", step["error"]
    [failed] = [e for e in events if e["type"] == "attempt_failed"]
    assert failed["retry_in"] > 0.5  # read from X-Ratelimit-Retryafter (epoch seconds)


def test_5xx_is_retried(run: Callable[..., dict[str, Any]], falcon: FalconMock) -> None:
    falcon.inject("status", status=503, path=ACTIONS)
    step = run(contain())["steps"]["act"]
    assert step["status"] == "succeeded", step["error"]
    assert step["attempts"] == 2
    assert step["output"]["changed"] is True
    assert falcon.hosts[ALICE].status == "contained"


def test_persistent_5xx_fails_after_the_retry_budget(run: Callable[..., dict[str, Any]],
                                                     falcon: FalconMock) -> None:
    falcon.inject("status", status=500, path=DEVICES, times=None)
    step = run(contain())["steps"]["act"]
    assert step["status"] == "failed"
    assert step["attempts"] == 3
    assert "falcon get device details (HTTP 500)" in step["error"]
    assert "Internal Server Error" in step["error"]


def test_malformed_json_is_a_bad_response(run: Callable[..., dict[str, Any]],
                                          falcon: FalconMock) -> None:
    falcon.inject("malformed", path=DEVICES)
    step = run(contain())["steps"]["act"]
    assert step["status"] == "failed"
    assert "falcon get device details (HTTP 200)" in step["error"]
    assert "not valid JSON" in step["error"]
    assert "Traceback" not in step["error"]
    assert step["attempts"] == 1


def test_a_read_timeout_is_retried(run: Callable[..., dict[str, Any]],
                                   falcon: FalconMock) -> None:
    falcon.inject("timeout", seconds=0.5, path=ACTIONS)
    step = run(contain(), timeout_seconds=0.2)["steps"]["act"]
    assert step["status"] == "succeeded", step["error"]
    assert step["attempts"] == 2


def test_the_step_timeout_bounds_the_containment_wait(run: Callable[..., dict[str, Any]],
                                                      falcon: FalconMock) -> None:
    falcon.containment_polls = 1_000_000
    step = run(contain(attempts=1, timeout=0.5))["steps"]["act"]
    assert step["status"] == "failed"
    assert "timeout" in step["error"] or "did not finish" in step["error"]
    assert falcon.hosts[ALICE].status == "containment_pending"


def test_max_wait_bounds_a_step_without_timeout(run: Callable[..., dict[str, Any]],
                                                falcon: FalconMock) -> None:
    falcon.containment_polls = 1_000_000
    step = run(contain(attempts=1), max_wait_seconds=0.2)["steps"]["act"]
    assert step["status"] == "failed"
    assert "still waiting for host" in step["error"]


# --- tokens --------------------------------------------------------------------------------------

TWO_STEPS = """
name: falcon-two-steps
steps:
  - id: find
    action: falcon.find_host
    with: {hostname: WS-ALICE-01}
  - id: act
    action: falcon.contain_host
    needs: [find]
    with: {device_id: "${{ steps.find.output.device_id }}"}
"""


def test_token_expiring_mid_run_is_refreshed_once(run: Callable[..., dict[str, Any]],
                                                  falcon: FalconMock) -> None:
    falcon.expire_tokens_after(2)  # the query and the details of `find`, then it dies
    record = run(TWO_STEPS)
    assert record["status"] == "succeeded", record
    assert record["steps"]["act"]["attempts"] == 1  # refreshed inside the call, not retried
    assert len(falcon.calls_to("POST", "/oauth2/token")) == 2
    bearers = {c.headers.get("Authorization") for c in falcon.calls_to("GET", DEVICES)}
    assert len(bearers) == 2  # the first token, then the refreshed one


def test_a_token_refused_right_after_refresh_is_not_refreshed_again(
        run: Callable[..., dict[str, Any]], falcon: FalconMock) -> None:
    falcon.token_max_uses = 0
    step = run(contain(attempts=1))["steps"]["act"]
    assert step["status"] == "failed"
    assert "falcon get device details (HTTP 401)" in step["error"]
    assert "invalid bearer token" in step["error"]
    assert len(falcon.calls_to("POST", "/oauth2/token")) == 2


def test_expire_tokens_helper_forces_one_refresh(run: Callable[..., dict[str, Any]],
                                                 falcon: FalconMock) -> None:
    assert run(contain())["status"] == "succeeded"
    falcon.expire_tokens()
    assert falcon.tokens == {}
    record = run(TWO_STEPS)
    assert record["status"] == "succeeded"


# --- secrets -------------------------------------------------------------------------------------


def test_secrets_never_reach_records_events_or_errors(run: Callable[..., dict[str, Any]],
                                                      falcon: FalconMock) -> None:
    events: list[dict[str, Any]] = []
    ok = run(TWO_STEPS, events=events)
    assert ok["status"] == "succeeded"
    # A vendor that echoes the request (some gateways do) must not leak it either.
    falcon.inject("status", status=400, path=ACTIONS,
                  body={"errors": [{"code": 400, "message": f"bad client_secret={SECRET}"}]})
    falcon.set_status(ALICE, "normal")
    failed = run(contain(), events=events)
    assert failed["status"] == "failed"
    assert "***" in failed["steps"]["act"]["error"]
    tokens = [t for t in falcon.tokens] + [
        c.headers.get("Authorization", "")[7:] for c in falcon.calls
        if c.headers.get("Authorization", "").startswith("Bearer ")]
    text = json.dumps([ok, failed, events])
    assert SECRET not in text
    for token in tokens:
        assert token not in text


def test_quote_path_refuses_what_rtr_cannot_pass_safely() -> None:
    assert quote_path(r"C:\a b\model.bin") == '"C:\\a b\\model.bin"'
    for bad in ('C:\\a"b', "C:\\a\nrm x", "C:\\a\rb"):
        with pytest.raises(InputError):
            quote_path(bad)
