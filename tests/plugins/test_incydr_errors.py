"""How the incydr plugin fails in ways only Incydr does: permissions, unknown actors, sessions
and alerts, invalid queries, bodies of the wrong shape. What every vendor shares (refused
credentials, 429, 5xx, malformed bodies, timeouts, token refresh, secrets) is in
test_conformance.py."""

from __future__ import annotations

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
def connect(host: Any, mock_config: Callable[..., Any]) -> Callable[..., Any]:
    def make(mock: IncydrMock, **overrides: Any) -> Any:
        return mock_config("incydr", mock, host=host, **overrides)

    return make


@pytest.fixture
def run(host: Any, incydr: IncydrMock, connect: Callable[..., Any],
        run_step: Callable[..., Any]) -> Callable[..., Any]:
    """Run one action as a one-step playbook; the step's record (the run's under "run")."""

    def go(action: str, inputs: dict[str, Any], config: Any = None) -> dict[str, Any]:
        return run_step(action, inputs, config=config or connect(incydr), host=host)

    return go


def client_for(config: Any) -> IncydrClient:
    ctx = ActionContext(run_id="r", step_id="s", attempt=1, idempotency_key="k",
                        connections=config.connections)
    return ctx.client(IncydrClient)


WHO = ("incydr.get_watchlists_for_user", {"user": DANA_EMAIL})


# credentials and permissions ---------------------------------------------------------------------


def test_missing_permission_is_a_403_auth_error_naming_the_operation(
        incydr: IncydrMock, connect: Callable[..., Any], run: Callable[..., Any]) -> None:
    incydr.add_client("key-readonly", "read-only-secret-9f3k", READ_ONLY)
    config = connect(incydr, client_id="key-readonly", client_secret="read-only-secret-9f3k")
    assert run(*WHO, config=config)["status"] == "succeeded"
    step = run("incydr.add_to_watchlist", {"user": "marco.bianchi@example.com"}, config=config)
    assert step["status"] == "failed" and step["attempts"] == 1
    assert step["error"].startswith("incydr add actor to watchlist (HTTP 403): ")
    assert "lacks the 'watchlists:write' permission" in step["error"]
    assert "lack a permission this call needs" in step["error"]
    with pytest.raises(AuthError) as caught:
        client_for(config).change_session_state(USB_SESSION, "IN_PROGRESS")
    assert (caught.value.vendor, caught.value.operation, caught.value.status) == (
        "incydr", "change session state", 403)


# unknown things ----------------------------------------------------------------------------------


def test_unknown_user_is_not_found(incydr: IncydrMock, connect: Callable[..., Any],
                                   run: Callable[..., Any]) -> None:
    step = run("incydr.get_watchlists_for_user", {"user": "nobody@example.com"})
    assert step["status"] == "failed" and step["attempts"] == 1
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


# bad bodies ----------------------------------------------------------------------------------


def test_a_body_of_the_wrong_shape_is_a_bad_response(incydr: IncydrMock,
                                                     connect: Callable[..., Any]) -> None:
    incydr.inject("status", status=200, path="/v2/file-events", body={"fileEvents": "nope"})
    with pytest.raises(BadResponse, match="'fileEvents' is not a list of objects"):
        client_for(connect(incydr)).search_file_events({"groups": []}, 10)

