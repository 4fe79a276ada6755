"""defender plugin: the errors only Defender has (tenants, application permissions, retries
that adopt a running machine action, next links, the action wait). What every vendor shares
(refused credentials, 429, 5xx, malformed bodies, timeouts, token refresh, secrets) is in
test_conformance.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crownguard.plugins import defender as defender_plugin
from crownguard.plugins.defender.mock import DefenderMock

ALICE = "1e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d"
ISOLATE = "/api/machines/{machine_id}/isolate"
SECRET = "Def3nder~S3cret.do-not-leak.0815"
APP = "3a2b1c0d-9e8f-4a7b-8c6d-5e4f3a2b1c0d"


@pytest.fixture
def defender(mock_server: Callable[..., Any]) -> DefenderMock:
    server: DefenderMock = mock_server(DefenderMock)
    server.add_app(APP, SECRET)
    return server


@pytest.fixture
def run(defender: DefenderMock, isolated_host: Callable[..., Any],
        mock_config: Callable[..., Any],
        run_step: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Run one action against the mock with the APP application; the step's record."""
    host = isolated_host(defender_plugin, name="defender")

    def go(action: str = "defender.isolate_machine", inputs: dict[str, Any] | None = None, *,
           attempts: int = 3, timeout: float | None = None, **settings: Any) -> dict[str, Any]:
        config = mock_config("defender", defender, host=host, client_id=APP,
                             client_secret="${env:DEFENDER_SECRET}",
                             env={"DEFENDER_SECRET": SECRET}, **settings)
        return run_step(action, inputs or {"machine_id": ALICE}, config=config, host=host,
                        attempts=attempts, timeout=timeout)

    return go


# --- credentials and permissions ---------------------------------------------------------------


def test_unknown_tenant_is_an_auth_error_too(run: Callable[..., dict[str, Any]],
                                            defender: DefenderMock) -> None:
    step = run(token_url=f"{defender.base_url}/other-tenant/oauth2/v2.0/token")
    assert step["status"] == "failed"
    assert "defender get OAuth2 token (HTTP 400)" in step["error"]
    assert "AADSTS90002" in step["error"]


def test_missing_application_permission_is_named(run: Callable[..., dict[str, Any]],
                                                 defender: DefenderMock) -> None:
    defender.add_app(APP, SECRET, {"Machine.Read.All"})
    step = run()
    assert step["status"] == "failed"
    assert "defender isolate machine (HTTP 403)" in step["error"]
    assert "Forbidden" in step["error"]
    assert "application permission Machine.Isolate" in step["error"]
    assert step["attempts"] == 1
    assert not defender.machines[ALICE].isolated


def test_missing_file_permission_for_a_sha256(run: Callable[..., dict[str, Any]],
                                              defender: DefenderMock) -> None:
    defender.add_app(APP, SECRET, {"Machine.Read.All", "Machine.StopAndQuarantine"})
    step = run("defender.quarantine_file", {"machine_id": ALICE, "sha256": "c" * 64})
    assert "File.Read.All" in step["error"]


# --- retries, paging and waits ------------------------------------------------------------------


def test_5xx_while_polling_is_retried_without_a_second_isolation(
        run: Callable[..., dict[str, Any]], defender: DefenderMock) -> None:
    defender.inject("status", status=503, path="/api/machineactions/{action_id}")
    step = run()
    assert step["status"] == "succeeded", step["error"]
    assert step["attempts"] == 2
    assert len(defender.calls_to("POST", ISOLATE)) == 1  # the retry adopts the running action
    assert step["output"]["changed"] is True  # ...and knows it was its own


def test_a_next_link_to_another_host_is_refused(run: Callable[..., dict[str, Any]],
                                                defender: DefenderMock) -> None:
    defender.inject("status", status=200, path="/api/machines",
                    body={"value": [], "@odata.nextLink": "https://evil.example/api/machines"})
    step = run("defender.find_machine", {"hostname": "ws-alice-01"})
    assert step["status"] == "failed"
    assert "refusing to follow a link to another host (evil.example)" in step["error"]


def test_the_step_timeout_bounds_the_action_wait(run: Callable[..., dict[str, Any]],
                                                 defender: DefenderMock) -> None:
    defender.action_polls = 1_000_000
    step = run(attempts=1, timeout=0.5)
    assert step["status"] == "failed"
    assert "timeout" in step["error"] or "did not finish" in step["error"]


def test_max_wait_bounds_a_step_without_timeout(run: Callable[..., dict[str, Any]],
                                                defender: DefenderMock) -> None:
    defender.action_polls = 1_000_000
    step = run(attempts=1, max_wait_seconds=0.2)
    assert step["status"] == "failed"
    assert "defender: still waiting for Isolate action" in step["error"]

