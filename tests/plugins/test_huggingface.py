"""The huggingface plugin against its Hub mock: every action and its repeat, paging, and the
Hub's own errors and rate-limit header (the faults every vendor shares are in
test_conformance.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

import crownguard.plugins.huggingface as hf_plugin
from crownguard.engine import SpecError
from crownguard.engine.plugins import PluginHost
from crownguard.plugins.huggingface.mock import HubMock

REPO = "acme-ml/fraud-llm"
SETTINGS = "/api/models/acme-ml/fraud-llm/settings"
ACCEPTED = "/api/models/acme-ml/fraud-llm/user-access-request/accepted"
HANDLE = "/api/models/acme-ml/fraud-llm/user-access-request/handle"


@pytest.fixture
def host(isolated_host: Callable[..., PluginHost]) -> PluginHost:
    return isolated_host(hf_plugin, name="huggingface")


@pytest.fixture
def hub(mock_server: Callable[..., Any]) -> HubMock:
    mock = mock_server(HubMock)
    assert isinstance(mock, HubMock)
    mock.add_repo(REPO, files=("config.json", "model.safetensors"))
    return mock


@pytest.fixture
def call(host: PluginHost, mock_config: Callable[..., Any],
         run_step: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Run one action as a one-step playbook; that step's record (plus the run's)."""

    def run(hub: HubMock, action: str, inputs: dict[str, Any], *,
            events: list[Any] | None = None, **settings: Any) -> dict[str, Any]:
        config = mock_config("huggingface", hub, host=host, **settings)
        return run_step(action, inputs, config=config, host=host, events=events)

    return run


def test_get_repo(hub: HubMock, call: Callable[..., dict[str, Any]]) -> None:
    hub.repo(REPO)["private"] = True  # visible to the token's organization
    result = call(hub, "huggingface.get_repo", {"repo_id": REPO})
    assert result["status"] == "succeeded", result["error"]
    out = result["output"]
    assert (out["repo_id"], out["private"], out["gated"], out["disabled"]) == (
        REPO, True, False, False)
    assert out["files"] == ["config.json", "model.safetensors"]


def test_a_repo_the_token_cannot_see_is_not_found(hub: HubMock,
                                                  call: Callable[..., dict[str, Any]]) -> None:
    hub.add_repo("someone-else/private-model", private=True)
    for repo_id in ("acme-ml/nope", "someone-else/private-model"):
        result = call(hub, "huggingface.get_repo", {"repo_id": repo_id})
        assert result["status"] == "failed" and result["attempts"] == 1
        assert "huggingface get repo (HTTP 404) [request id Root=" in result["error"]
        assert "Repository not found [RepoNotFound]" in result["error"]


def test_restrict_then_unrestrict_and_their_repeats(hub: HubMock,
                                                    call: Callable[..., dict[str, Any]]) -> None:
    restricted = call(hub, "huggingface.restrict_repo", {"repo_id": REPO})
    assert restricted["status"] == "succeeded", restricted["error"]
    out = restricted["output"]
    assert out["changed"] is True and (out["private"], out["gated"]) == (True, "manual")
    assert out["previous"] == {"private": False, "gated": False, "user_access": None}
    assert [c.json for c in hub.calls_to("PUT", SETTINGS)] == [
        {"visibility": "private", "gated": "manual"}]
    assert (hub.repo(REPO)["private"], hub.repo(REPO)["gated"]) == (True, "manual")

    again = call(hub, "huggingface.restrict_repo", {"repo_id": REPO})
    assert again["output"]["changed"] is False and len(hub.calls_to("PUT", SETTINGS)) == 1

    previous = out["previous"]
    lifted = call(hub, "huggingface.unrestrict_repo",
                  {"repo_id": REPO, "private": previous["private"], "gated": previous["gated"]})
    assert lifted["status"] == "succeeded", lifted["error"]
    assert lifted["output"]["changed"] is True
    assert (hub.repo(REPO)["private"], hub.repo(REPO)["gated"]) == (False, False)
    repeat = call(hub, "huggingface.unrestrict_repo",
                  {"repo_id": REPO, "private": False, "gated": False})
    assert repeat["output"]["changed"] is False and len(hub.calls_to("PUT", SETTINGS)) == 2


def test_only_what_differs_is_sent(hub: HubMock, call: Callable[..., dict[str, Any]]) -> None:
    hub.repo(REPO)["private"] = True
    result = call(hub, "huggingface.restrict_repo", {"repo_id": REPO, "gated": "auto"})
    assert [c.json for c in hub.calls_to("PUT", SETTINGS)] == [{"gated": "auto"}]
    assert result["output"]["previous"]["private"] is True


def test_a_users_access_is_rejected_and_given_back(hub: HubMock,
                                                   call: Callable[..., dict[str, Any]]) -> None:
    hub.page_size = 2
    hub.add_repo("acme-ml/gated-llm", gated="auto",
                 accepted=("ann", "ben", "cat", "dan", "leaver"), pending=("zed",))
    inputs = {"repo_id": "acme-ml/gated-llm", "user": "leaver", "reason": "offboarding"}
    restricted = call(hub, "huggingface.restrict_repo", inputs)
    assert restricted["status"] == "succeeded", restricted["error"]
    out = restricted["output"]
    assert out["user_rejected"] is True
    assert out["previous"] == {"private": False, "gated": "auto",
                               "user_access": {"user": "leaver", "status": "accepted"}}
    listed = hub.calls_to("GET", "/api/models/acme-ml/gated-llm/user-access-request/accepted")
    assert [c.arg("cursor") for c in listed] == [None, "2", "4"]  # every page followed
    handled = hub.calls_to("POST", "/api/models/acme-ml/gated-llm/user-access-request/handle")
    assert [c.json for c in handled] == [
        {"user": "leaver", "status": "rejected", "rejectionReason": "offboarding"}]
    assert hub.repo("acme-ml/gated-llm")["requests"]["leaver"]["status"] == "rejected"

    again = call(hub, "huggingface.restrict_repo", inputs)
    assert again["output"]["changed"] is False and again["output"]["user_rejected"] is False

    lifted = call(hub, "huggingface.unrestrict_repo",
                  {"repo_id": "acme-ml/gated-llm", "private": False, "gated": "auto",
                   "accept_users": ["leaver"]})
    assert lifted["output"]["users_accepted"] == ["leaver"]
    assert hub.repo("acme-ml/gated-llm")["requests"]["leaver"]["status"] == "accepted"
    assert hub.repo("acme-ml/gated-llm")["private"] is False


def test_a_retried_restrict_reports_the_state_before_its_first_attempt(
        hub: HubMock, call: Callable[..., dict[str, Any]]) -> None:
    hub.add_repo("acme-ml/gated-llm", gated="auto", accepted=("leaver",))
    # The settings change lands, then rejecting the user fails once.
    hub.inject("status", status=502, path="/api/models/acme-ml/gated-llm/user-access-request/"
                                          "handle", times=1)
    result = call(hub, "huggingface.restrict_repo",
                  {"repo_id": "acme-ml/gated-llm", "user": "leaver"})
    assert result["status"] == "succeeded" and result["attempts"] == 2
    assert result["output"]["previous"] == {
        "private": False, "gated": "auto",
        "user_access": {"user": "leaver", "status": "accepted"}}
    assert result["output"]["previous_source"] == "first_attempt"
    assert hub.repo("acme-ml/gated-llm")["requests"]["leaver"]["status"] == "rejected"


def test_nothing_to_restrict_is_an_input_error(hub: HubMock,
                                               call: Callable[..., dict[str, Any]]) -> None:
    result = call(hub, "huggingface.restrict_repo",
                  {"repo_id": REPO, "private": False, "gated": False})
    assert result["status"] == "failed" and "nothing to restrict" in result["error"]


def test_a_bad_repo_id_is_caught_before_running(hub: HubMock,
                                                call: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(SpecError, match="repo_id"):
        call(hub, "huggingface.get_repo", {"repo_id": "../../api/whoami-v2"})


# --- errors only this vendor has (the shared ones: test_conformance.py) --------------------------


def test_a_read_token_cannot_change_settings(hub: HubMock,
                                             call: Callable[..., dict[str, Any]]) -> None:
    result = call(hub, "huggingface.restrict_repo", {"repo_id": REPO}, token=hub.read_token)
    assert result["status"] == "failed" and result["attempts"] == 1
    assert "huggingface update repo settings (HTTP 403)" in result["error"]
    assert "You don't have the rights to change the settings" in result["error"]
    assert "lack a permission" in result["error"]
    assert hub.repo(REPO)["private"] is False


def test_the_hubs_rate_limit_header_sets_the_wait(hub: HubMock,
                                                  call: Callable[..., dict[str, Any]]) -> None:
    hub.throttle(1, reset_seconds=0.2)
    events: list[dict[str, Any]] = []
    result = call(hub, "huggingface.get_repo", {"repo_id": REPO}, events=events)
    assert result["status"] == "succeeded" and result["attempts"] == 2
    failed = [e for e in events if e["type"] == "attempt_failed"]
    assert failed[0]["error_type"] == "RateLimited" and failed[0]["retry_in"] >= 0.2


def test_a_next_page_on_another_host_is_refused(hub: HubMock,
                                                call: Callable[..., dict[str, Any]]) -> None:
    hub.add_repo("acme-ml/gated-llm", gated="manual", accepted=("ann",))
    listing = hub.list_requests

    def elsewhere(request: Any, **kwargs: Any) -> Any:
        response = listing(request, **kwargs)
        response.headers["Link"] = '<https://evil.example/steal>; rel="next"'
        return response

    hub.list_requests = elsewhere
    result = call(hub, "huggingface.restrict_repo",
                  {"repo_id": "acme-ml/gated-llm", "user": "leaver"})
    assert result["status"] == "failed"
    assert "refusing to follow a link to another host (evil.example)" in result["error"]


def test_a_playbook_restricts_and_lifts_with_the_recorded_state(
        hub: HubMock, host: PluginHost, crownguard_config: Callable[..., Any],
        run_playbook: Callable[..., dict[str, Any]]) -> None:
    hub.add_repo("acme-ml/gated-llm", gated="auto", accepted=("leaver", "ann"))
    config = crownguard_config({"huggingface": hub.connection_settings()}, host=host)
    text = """
name: hub-containment
steps:
  - id: restrict
    action: huggingface.restrict_repo
    with: {repo_id: "${{ event.repo }}", user: "${{ event.actor }}"}
  - id: lift
    action: huggingface.unrestrict_repo
    needs: [restrict]
    if: "event.false_alarm"
    with:
      repo_id: "${{ event.repo }}"
      private: "${{ steps.restrict.output.previous.private }}"
      gated: "${{ steps.restrict.output.previous.gated }}"
      accept_users: ["${{ event.actor }}"]
"""
    event = {"repo": "acme-ml/gated-llm", "actor": "leaver", "false_alarm": True}
    record = run_playbook(text, event, config=config, host=host)
    assert record["status"] == "succeeded", record
    assert record["steps"]["restrict"]["output"]["changed"] is True
    assert record["steps"]["lift"]["output"]["users_accepted"] == ["leaver"]
    repo = hub.repo("acme-ml/gated-llm")
    assert (repo["private"], repo["gated"], repo["requests"]["leaver"]["status"]) == (
        False, "auto", "accepted")


def test_a_retry_after_a_lost_answer_still_reports_the_change(
        hub: HubMock, host: PluginHost, crownguard_config: Callable[..., Any],
        run_playbook: Callable[..., dict[str, Any]]) -> None:
    settings = hub.settings

    def applied_then_slow(request: Any, **kwargs: Any) -> Any:
        answer = settings(request, **kwargs)
        time.sleep(0.5)  # under the mock's lock: the retry waits for the change to land
        return answer

    hub.settings = applied_then_slow
    config = crownguard_config({"huggingface": {**hub.connection_settings(),
                                                "timeout_seconds": 0.4}}, host=host)
    record = run_playbook(
        f"name: t\nsteps:\n  - id: s\n    action: huggingface.restrict_repo\n"
        f"    with: {{repo_id: {REPO}}}\n    retry: {{max_attempts: 5, backoff_seconds: 0.01}}\n",
        {}, config=config, host=host)
    step = record["steps"]["s"]
    assert step["status"] == "succeeded" and step["attempts"] >= 2
    assert step["output"]["changed"] is True
    assert step["output"]["previous"] == {"private": False, "gated": False, "user_access": None}
    assert step["output"]["previous_source"] == "first_attempt"
    assert len(hub.calls_to("PUT", SETTINGS)) == 1  # the retry saw the change and sent nothing
