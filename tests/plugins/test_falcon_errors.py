"""falcon plugin: the errors only Falcon has (API scopes, its epoch rate-limit header, the
containment wait, RTR paths). What every vendor shares (refused credentials, 429, 5xx,
malformed bodies, timeouts, token refresh, secrets) is in test_conformance.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crownguard.engine import InputError
from crownguard.plugins import falcon as falcon_plugin
from crownguard.plugins.falcon.mock import FalconMock
from crownguard.plugins.falcon.rtr import quote_path

ALICE = "4e1f0c3a9b7d4c21a5f08e6d2b3c7a91"
DEVICES = "/devices/entities/devices/v2"
SECRET = "Fa1c0n-S3cret-do-not-leak-4711"


@pytest.fixture
def falcon(mock_server: Callable[..., Any]) -> FalconMock:
    server: FalconMock = mock_server(FalconMock)
    server.add_client("soc-automation", SECRET)
    return server


@pytest.fixture
def host(isolated_host: Callable[..., Any]) -> Any:
    return isolated_host(falcon_plugin, name="falcon")


@pytest.fixture
def run(falcon: FalconMock, host: Any, mock_config: Callable[..., Any],
        run_step: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Run one action against the mock with the `soc-automation` client; the step's record."""

    def go(action: str = "falcon.contain_host", inputs: dict[str, Any] | None = None, *,
           events: list[dict[str, Any]] | None = None, attempts: int = 3,
           timeout: float | None = None, **settings: Any) -> dict[str, Any]:
        config = mock_config("falcon", falcon, host=host, client_id="soc-automation",
                             client_secret="${env:FALCON_SECRET}", env={"FALCON_SECRET": SECRET},
                             **settings)
        return run_step(action, inputs or {"device_id": ALICE}, config=config, host=host,
                        events=events, attempts=attempts, timeout=timeout)

    return go


# --- credentials and permissions ---------------------------------------------------------------


def test_missing_api_scope_names_the_scope(run: Callable[..., dict[str, Any]],
                                           falcon: FalconMock) -> None:
    falcon.add_client("soc-automation", SECRET, {"devices:read"})
    step = run()
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
    step = run("falcon.quarantine_file", {"device_id": ALICE, "path": path})
    assert step["status"] == "failed"
    assert "falcon run RTR command (HTTP 403)" in step["error"]
    assert "Real time response: Write" in step["error"]
    assert falcon.file_on(ALICE, path) is not None


# --- rate limits and waits ---------------------------------------------------------------------


def test_429_with_only_the_falcon_retryafter_epoch_header(run: Callable[..., dict[str, Any]],
                                                          falcon: FalconMock) -> None:
    falcon.send_retry_after_header = False
    falcon.inject("status", status=429, retry_after=1, path=DEVICES)
    events: list[dict[str, Any]] = []
    step = run(events=events)
    assert step["status"] == "succeeded", step["error"]
    [failed] = [e for e in events if e["type"] == "attempt_failed"]
    assert failed["retry_in"] > 0.5  # read from X-Ratelimit-Retryafter (epoch seconds)


def test_the_step_timeout_bounds_the_containment_wait(run: Callable[..., dict[str, Any]],
                                                      falcon: FalconMock) -> None:
    falcon.containment_polls = 1_000_000
    step = run(attempts=1, timeout=0.5)
    assert step["status"] == "failed"
    assert "timeout" in step["error"] or "did not finish" in step["error"]
    assert falcon.hosts[ALICE].status == "containment_pending"


def test_max_wait_bounds_a_step_without_timeout(run: Callable[..., dict[str, Any]],
                                                falcon: FalconMock) -> None:
    falcon.containment_polls = 1_000_000
    step = run(attempts=1, max_wait_seconds=0.2)
    assert step["status"] == "failed"
    assert "still waiting for host" in step["error"]


# --- RTR paths -----------------------------------------------------------------------------------


def test_quote_path_refuses_what_rtr_cannot_pass_safely() -> None:
    assert quote_path(r"C:\a b\model.bin") == '"C:\\a b\\model.bin"'
    for bad in ('C:\\a"b', "C:\\a\nrm x", "C:\\a\rb"):
        with pytest.raises(InputError):
            quote_path(bad)
