"""How the incydr plugin fails: each error class with Incydr's answers, retries that honour
Retry-After, one token refresh after a 401, and no secret in any record, error or log."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from crownguard.engine import (
    ActionContext,
    AuthError,
    BadResponse,
    ConflictError,
    NotFoundError,
)
from crownguard.plugins import incydr as incydr_plugin
from crownguard.plugins.incydr.client import IncydrClient
from crownguard.plugins.incydr.mock import IncydrMock
from crownguard.plugins.incydr.mock.seed import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

FAST_RETRY = "{max_attempts: 3, backoff_seconds: 0.01}"
DANA_EMAIL = "dana.whitfield@example.com"
USB_SESSION = "e1a0c3f5-7b9d-4c2e-8f1a-3b5d7f9e1c21"
READ_ONLY = frozenset({"file-events:read", "sessions:read", "alerts:read", "watchlists:read",
                       "actors:read"})


@pytest.fixture
def incydr(mock_server: Callable[..., Any]) -> IncydrMock:
    return mock_server(IncydrMock)


@pytest.fixture
def host(isolated_host: Callable[..., Any]) -> Any:
    return isolated_host(incydr_plugin, name="incydr")


@pytest.fixture
def connect(host: Any, crownguard_config: Callable[..., Any]) -> Callable[..., Any]:
    def make(mock: IncydrMock, **overrides: Any) -> Any:
        return crownguard_config({"incydr": {**mock.connection_settings(), **overrides}},
                                 host=host)

    return make


@pytest.fixture
def run_step(host: Any, incydr: IncydrMock, connect: Callable[..., Any],
             run_playbook: Callable[..., Any]) -> Callable[..., Any]:
    """Run a one-step playbook; returns (run record, journal events)."""

    def run(action: str, inputs: dict[str, Any], config: Any = None,
            retry: str = FAST_RETRY) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        events: list[dict[str, Any]] = []
        text = (f"name: incydr-errors\nsteps:\n  - id: step\n    action: {action}\n"
                f"    with: {json.dumps(inputs)}\n    retry: {retry}\n")
        record = run_playbook(text, {}, config=config or connect(incydr), host=host,
                              journal=events.append)
        return record, events

    return run


def client_for(config: Any) -> IncydrClient:
    ctx = ActionContext(run_id="r", step_id="s", attempt=1, idempotency_key="k",
                        connections=config.connections)
    return ctx.client(IncydrClient)


SEARCH = ("incydr.search_file_events", {"user": DANA_EMAIL, "start_time": "2026-11-01"})
WHO = ("incydr.get_watchlists_for_user", {"user": DANA_EMAIL})


# credentials and permissions ---------------------------------------------------------------------


def test_wrong_credentials_fail_once_with_a_clear_auth_error(
        incydr: IncydrMock, connect: Callable[..., Any], run_step: Callable[..., Any]) -> None:
    record, _ = run_step(*WHO, config=connect(incydr, client_secret="not-the-secret"))
    step = record["steps"]["step"]
    assert record["status"] == "failed" and step["attempts"] == 1  # not retried
    assert step["error"].startswith("incydr get OAuth2 token (HTTP 401): ")
    assert "invalid API client id or secret" in step["error"]
    assert "check the connection's credentials" in step["error"]
    oauth = incydr.calls_to("POST", "/v1/oauth")
    assert len(oauth) == 1 and oauth[0].headers["Authorization"].startswith("Basic ")
    assert incydr.calls_to("GET", "/v1/actors/actor/name/{name}/parent") == []


def test_missing_permission_is_a_403_auth_error_naming_the_operation(
        incydr: IncydrMock, connect: Callable[..., Any], run_step: Callable[..., Any]) -> None:
    incydr.add_client("key-readonly", "read-only-secret-9f3k", READ_ONLY)
    config = connect(incydr, client_id="key-readonly", client_secret="read-only-secret-9f3k")
    allowed, _ = run_step(*WHO, config=config)
    assert allowed["status"] == "succeeded"
    record, _ = run_step("incydr.add_to_watchlist", {"user": "marco.bianchi@example.com"},
                         config=config)
    step = record["steps"]["step"]
    assert record["status"] == "failed" and step["attempts"] == 1
    assert step["error"].startswith("incydr add actor to watchlist (HTTP 403): ")
    assert "lacks the 'watchlists:write' permission" in step["error"]
    assert "lack a permission this call needs" in step["error"]
    with pytest.raises(AuthError) as caught:
        client_for(config).change_session_state(USB_SESSION, "IN_PROGRESS")
    assert (caught.value.vendor, caught.value.operation, caught.value.status) == (
        "incydr", "change session state", 403)


# unknown things ----------------------------------------------------------------------------------


def test_unknown_user_is_not_found(incydr: IncydrMock, connect: Callable[..., Any],
                                   run_step: Callable[..., Any]) -> None:
    record, _ = run_step("incydr.get_watchlists_for_user", {"user": "nobody@example.com"})
    step = record["steps"]["step"]
    assert record["status"] == "failed" and step["attempts"] == 1
    assert step["error"] == ("incydr look up actor (HTTP 404): no Incydr actor "
                             "'nobody@example.com'")
    with pytest.raises(NotFoundError) as caught:
        client_for(connect(incydr)).find_actor("999999999999")
    assert caught.value.status == 404 and "999999999999" in str(caught.value)


def test_unknown_session_and_alert_are_not_found(incydr: IncydrMock,
                                                 connect: Callable[..., Any]) -> None:
    client = client_for(connect(incydr))
    with pytest.raises(NotFoundError) as session:
        client.get_session("00000000-0000-0000-0000-000000000000")
    assert session.value.status == 404 and "get session" in str(session.value)
    with pytest.raises(NotFoundError, match="no alert with id 'missing-alert'"):
        client.get_alert("missing-alert")


def test_an_invalid_query_reports_incydrs_problems(incydr: IncydrMock,
                                                   connect: Callable[..., Any]) -> None:
    query = {"groupClause": "AND", "pgNum": 1, "pgSize": 10, "srtKey": "@timestamp",
             "srtDir": "desc", "groups": [{"filterClause": "AND", "filters": [
                 {"term": "file.name", "operator": "LIKE", "value": "x"}]}]}
    with pytest.raises(ConflictError) as caught:
        client_for(connect(incydr)).search_file_events(query, 10)
    assert caught.value.status == 400
    assert "invalid query: unknown operator 'LIKE' (term file.name)" in str(caught.value)


# rate limits, server errors, bad bodies ----------------------------------------------------------


def test_429_retry_after_is_honoured_by_the_step_retry(incydr: IncydrMock,
                                                       run_step: Callable[..., Any]) -> None:
    incydr.inject("status", status=429, retry_after=0.3, path="/v2/file-events")
    record, events = run_step(*SEARCH)
    step = record["steps"]["step"]
    assert record["status"] == "succeeded" and step["attempts"] == 2
    assert step["output"]["returned"] == 1
    failed = [e for e in events if e["type"] == "attempt_failed"]
    assert len(failed) == 1 and failed[0]["error_type"] == "RateLimited"
    assert failed[0]["retry_in"] >= 0.3  # waited at least what Incydr asked, not 0.01 s
    assert "incydr search file events (HTTP 429)" in failed[0]["error"]
    assert len(incydr.calls_to("POST", "/v2/file-events")) == 2


def test_a_5xx_is_retried_and_a_persistent_one_fails(incydr: IncydrMock,
                                                     run_step: Callable[..., Any]) -> None:
    incydr.inject("status", status=503, path="/v2/watchlists")
    record, _ = run_step(*WHO)
    assert record["status"] == "succeeded" and record["steps"]["step"]["attempts"] == 2
    incydr.inject("status", status=500, path="/v2/watchlists", times=None)
    record, events = run_step(*WHO)
    step = record["steps"]["step"]
    assert record["status"] == "failed" and step["attempts"] == 3
    assert step["error"] == "incydr list watchlists (HTTP 500): internal error"
    assert {e["error_type"] for e in events if e["type"] == "attempt_failed"} == {"ServerError"}


def test_malformed_json_is_a_clear_bad_response_not_retried(
        incydr: IncydrMock, run_step: Callable[..., Any]) -> None:
    incydr.inject("malformed", path="/v2/file-events")
    record, _ = run_step(*SEARCH)
    step = record["steps"]["step"]
    assert record["status"] == "failed" and step["attempts"] == 1
    assert step["error"] == ("incydr search file events (HTTP 200): the vendor's answer is not "
                             "valid JSON")


def test_a_body_of_the_wrong_shape_is_a_bad_response(incydr: IncydrMock,
                                                     connect: Callable[..., Any]) -> None:
    incydr.inject("status", status=200, path="/v2/file-events", body={"fileEvents": "nope"})
    with pytest.raises(BadResponse, match="'fileEvents' is not a list of objects"):
        client_for(connect(incydr)).search_file_events({"groups": []}, 10)


def test_a_slow_answer_is_a_retryable_transport_error(incydr: IncydrMock,
                                                      connect: Callable[..., Any],
                                                      run_step: Callable[..., Any]) -> None:
    incydr.inject("timeout", seconds=0.5, path="/v2/file-events")
    record, events = run_step(*SEARCH, config=connect(incydr, timeout_seconds=0.1))
    assert record["status"] == "succeeded" and record["steps"]["step"]["attempts"] == 2
    failed = [e for e in events if e["type"] == "attempt_failed"]
    assert failed[0]["error_type"] == "TransportError"
    assert "timed out" in failed[0]["error"]


# tokens ------------------------------------------------------------------------------------------


def test_token_expiring_mid_run_is_refreshed_once(incydr: IncydrMock,
                                                  connect: Callable[..., Any]) -> None:
    client = client_for(connect(incydr))
    client.find_actor(DANA_EMAIL)
    incydr.expire_tokens()
    assert client.find_actor(DANA_EMAIL)["actorId"]
    paths = [(c.method, c.path) for c in incydr.calls]
    actor = ("GET", f"/v1/actors/actor/name/{DANA_EMAIL}/parent")
    assert paths == [("POST", "/v1/oauth"), actor, actor, ("POST", "/v1/oauth"), actor]
    tokens = [c.headers["Authorization"] for c in incydr.calls if c.path != "/v1/oauth"]
    assert tokens[0] == tokens[1] != tokens[2]


def test_a_401_after_the_refresh_is_not_refreshed_again(incydr: IncydrMock,
                                                        run_step: Callable[..., Any]) -> None:
    incydr.inject("status", status=401, path="/v2/watchlists", times=None)
    record, _ = run_step(*WHO)
    step = record["steps"]["step"]
    assert record["status"] == "failed" and step["attempts"] == 1
    assert step["error"].startswith("incydr list watchlists (HTTP 401)")
    assert len(incydr.calls_to("POST", "/v1/oauth")) == 2
    assert len(incydr.calls_to("GET", "/v2/watchlists")) == 2


# secrets -----------------------------------------------------------------------------------------


def test_no_secret_or_token_in_records_errors_journal_or_logs(
        incydr: IncydrMock, connect: Callable[..., Any], run_step: Callable[..., Any],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-secret-for-test-zz"
    failed, failed_events = run_step(*WHO, config=connect(incydr, client_secret=wrong))
    incydr.inject("status", status=500, path="/v2/watchlists",
                  body={"code": 13, "message": f"echoing {DEFAULT_CLIENT_SECRET}"})
    ok, ok_events = run_step(*WHO)
    assert failed["status"] == "failed" and ok["status"] == "succeeded"
    issued = list(incydr.tokens)
    assert issued
    forbidden = [wrong, DEFAULT_CLIENT_SECRET, *issued,
                 base64.b64encode(f"{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}".encode()).decode(),
                 base64.b64encode(f"{DEFAULT_CLIENT_ID}:{wrong}".encode()).decode()]
    dumped = json.dumps([failed, ok, failed_events, ok_events]) + caplog.text
    for secret in forbidden:
        assert secret not in dumped
    assert "echoing ***" in json.dumps(ok_events)
