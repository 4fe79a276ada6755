"""The huggingface plugin's gated-access actions against the Hub mock (list, accept, reject
and their repeats), and the mock driven by the official client for the same endpoints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import crownguard.plugins.huggingface as hf_plugin
from crownguard.engine.plugins import PluginHost
from crownguard.plugins.huggingface.mock import HubMock

REPO = "acme-ml/fraud-llm"
PENDING = "/api/models/acme-ml/fraud-llm/user-access-request/pending"
HANDLE = "/api/models/acme-ml/fraud-llm/user-access-request/handle"
GRANT = "/api/models/acme-ml/fraud-llm/user-access-request/grant"


@pytest.fixture
def hub(mock_server: Callable[..., Any]) -> HubMock:
    mock = mock_server(HubMock)
    assert isinstance(mock, HubMock)
    mock.add_repo(REPO, gated="manual", accepted=("ann",))
    mock.request_access(REPO, "priya-r", email="priya.raman@example.com",
                        fields={"Justification": "evaluation on the Q3 set"})
    return mock


@pytest.fixture
def call(isolated_host: Callable[..., PluginHost], mock_config: Callable[..., Any],
         run_step: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    host = isolated_host(hf_plugin, name="huggingface")

    def run(hub: HubMock, action: str, inputs: dict[str, Any]) -> dict[str, Any]:
        return run_step(action, inputs, config=mock_config("huggingface", hub, host=host),
                        host=host)

    return run


def test_pending_requests_are_listed_with_the_form_fields_over_every_page(
        hub: HubMock, call: Callable[..., dict[str, Any]]) -> None:
    for index in range(4):
        hub.request_access(REPO, f"user-{index}")
    hub.page_size = 2
    step = call(hub, "huggingface.list_access_requests", {"repo_id": REPO})
    assert step["status"] == "succeeded", step
    found = step["output"]["requests"]
    assert [r["user"] for r in found] == ["priya-r", "user-0", "user-1", "user-2", "user-3"]
    assert found[0]["email"] == "priya.raman@example.com"
    assert found[0]["fields"] == {"Justification": "evaluation on the Q3 set"}
    assert len(hub.calls_to("GET", PENDING)) == 3


def test_accept_then_reject_revokes_and_repeats_change_nothing(
        hub: HubMock, call: Callable[..., dict[str, Any]]) -> None:
    first = call(hub, "huggingface.accept_access_request", {"repo_id": REPO, "user": "priya-r"})
    assert first["output"].items() >= {"changed": True, "previous_status": "pending",
                                       "pre_existing": None}.items()
    assert hub.access_status(REPO, "priya-r") == "accepted"
    again = call(hub, "huggingface.accept_access_request", {"repo_id": REPO, "user": "priya-r"})
    assert (again["output"]["changed"], again["output"]["pre_existing"]) == (False, "accepted")
    assert len(hub.calls_to("POST", HANDLE)) == 1

    gone = call(hub, "huggingface.reject_access_request",
                {"repo_id": REPO, "user": "priya-r", "reason": "access expired"})
    assert gone["output"].items() >= {"changed": True, "revoked": True,
                                      "previous_status": "accepted"}.items()
    assert hub.repo(REPO)["requests"]["priya-r"]["rejectionReason"] == "access expired"
    assert hub.calls_to("POST", HANDLE)[-1].json == {
        "user": "priya-r", "status": "rejected", "rejectionReason": "access expired"}
    repeat = call(hub, "huggingface.reject_access_request", {"repo_id": REPO, "user": "priya-r"})
    assert repeat["output"]["changed"] is False


def test_a_user_who_never_asked_is_granted(hub: HubMock,
                                           call: Callable[..., dict[str, Any]]) -> None:
    step = call(hub, "huggingface.accept_access_request", {"repo_id": REPO, "user": "omar"})
    assert step["output"]["previous_status"] is None and step["output"]["changed"] is True
    assert hub.calls_to("POST", GRANT)[-1].json == {"user": "omar"}
    assert hub.access_status(REPO, "omar") == "accepted"


def test_an_ungated_repo_has_no_access_requests(hub: HubMock,
                                                call: Callable[..., dict[str, Any]]) -> None:
    hub.add_repo("acme-ml/open", gated=False)
    step = call(hub, "huggingface.list_access_requests", {"repo_id": "acme-ml/open"})
    assert step["status"] == "failed"
    assert "This repository is not gated" in step["error"]


def test_a_read_token_cannot_answer_requests(hub: HubMock, call: Callable[..., dict[str, Any]],
                                             mock_config: Callable[..., Any],
                                             isolated_host: Callable[..., PluginHost],
                                             run_step: Callable[..., dict[str, Any]]) -> None:
    host = isolated_host(hf_plugin, name="huggingface")
    config = mock_config("huggingface", hub, host=host, token=hub.read_token)
    step = run_step("huggingface.accept_access_request", {"repo_id": REPO, "user": "priya-r"},
                    config=config, host=host)
    assert step["status"] == "failed" and "rights" in step["error"]
    assert hub.access_status(REPO, "priya-r") == "pending"


# --- the official client against the mock -----------------------------------------------------


def test_the_official_client_reads_and_answers_pending_requests(hub: HubMock) -> None:
    hub_client = pytest.importorskip("huggingface_hub")
    errors = pytest.importorskip("huggingface_hub.errors")
    api = hub_client.HfApi(endpoint=hub.base_url, token=hub.write_token)
    [pending] = api.list_pending_access_requests(REPO)
    assert (pending.username, pending.email, pending.fields) == (
        "priya-r", "priya.raman@example.com", {"Justification": "evaluation on the Q3 set"})
    api.accept_access_request(REPO, "priya-r")
    assert [r.username for r in api.list_accepted_access_requests(REPO)] == ["ann", "priya-r"]
    with pytest.raises(errors.HfHubHTTPError) as already:
        api.grant_access(REPO, "priya-r")
    assert already.value.response.status_code == 400
    api.reject_access_request(REPO, "priya-r", rejection_reason="access expired")
    assert hub.access_status(REPO, "priya-r") == "rejected"
    with pytest.raises(errors.HfHubHTTPError) as missing:
        api.accept_access_request(REPO, "nobody")
    assert missing.value.response.status_code == 404
