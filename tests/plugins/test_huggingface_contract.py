"""The Hub mock speaks the Hub's protocol: the official `huggingface_hub` client drives it.

There is no official OpenAPI description of the Hub; its own client is the closest thing to a
contract. If the mock's paths, bodies, paging or error headers drifted from what the client
expects, these calls would fail or misread the answers. Skipped without huggingface_hub.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from crownguard.engine import Connections, NotFoundError
from crownguard.plugins.huggingface.client import HubClient
from crownguard.plugins.huggingface.mock import HubMock

hub_client = pytest.importorskip(
    "huggingface_hub", reason="the contract test drives the mock with the official client: "
                              "pip install huggingface_hub")
errors = pytest.importorskip("huggingface_hub.errors")


@pytest.fixture
def hub(mock_server: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[HubMock]:
    for key, value in {"HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0",
                       "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    mock = mock_server(HubMock)
    assert isinstance(mock, HubMock)
    mock.add_repo("acme-ml/fraud-llm", files=("config.json", "model.safetensors"))
    mock.add_repo("acme-ml/gated-llm", gated="manual", accepted=("ann", "ben", "leaver"))
    yield mock


def api(hub: HubMock, token: str | None = None) -> Any:
    return hub_client.HfApi(endpoint=hub.base_url, token=token or hub.write_token)


def test_repo_info_and_settings_round_trip(hub: HubMock) -> None:
    client = api(hub)
    info = client.model_info("acme-ml/fraud-llm")
    assert (info.id, info.private, info.gated, info.disabled) == (
        "acme-ml/fraud-llm", False, False, False)
    assert [s.rfilename for s in info.siblings] == ["config.json", "model.safetensors"]
    client.update_repo_settings("acme-ml/fraud-llm", private=True, gated="manual")
    assert hub.calls_to("PUT", "/api/models/acme-ml/fraud-llm/settings")[-1].json == {
        "gated": "manual", "visibility": "private"}
    info = client.model_info("acme-ml/fraud-llm")
    assert (info.private, info.gated) == (True, "manual")
    assert client.whoami()["name"] == "soc-bot"


def test_access_requests_are_paged_and_handled(hub: HubMock) -> None:
    hub.page_size = 2
    client = api(hub)
    accepted = client.list_accepted_access_requests("acme-ml/gated-llm")
    assert [r.username for r in accepted] == ["ann", "ben", "leaver"]
    client.reject_access_request("acme-ml/gated-llm", "leaver", rejection_reason="offboarding")
    assert [r.username for r in client.list_rejected_access_requests("acme-ml/gated-llm")] == [
        "leaver"]
    client.accept_access_request("acme-ml/gated-llm", "leaver")
    assert hub.repo("acme-ml/gated-llm")["requests"]["leaver"]["status"] == "accepted"


def test_the_clients_error_classes_match(hub: HubMock) -> None:
    with pytest.raises(errors.RepositoryNotFoundError):
        api(hub).model_info("acme-ml/does-not-exist")
    hub.add_repo("someone-else/private", private=True)
    with pytest.raises(errors.RepositoryNotFoundError):
        api(hub).model_info("someone-else/private")
    with pytest.raises(errors.HfHubHTTPError) as forbidden:
        api(hub, hub.read_token).update_repo_settings("acme-ml/fraud-llm", private=True)
    assert forbidden.value.response.status_code == 403
    assert "You don't have the rights" in str(forbidden.value)


def test_the_plugin_reads_a_401_repo_not_found_as_not_found() -> None:
    """The Hub answers an anonymous request for a private repo 401 + RepoNotFound; the
    plugin must not call that a credentials problem."""
    connections = Connections({"huggingface": {"base_url": "http://127.0.0.1:1",
                                               "token": "hf_x"}})
    client = HubClient(connections.get("huggingface"))
    response = requests.Response()
    response.status_code = 401
    response.headers.update({"X-Error-Code": "RepoNotFound",
                             "X-Error-Message": "Repository not found",
                             "Content-Type": "application/json"})
    response._content = b'{"error": "Repository not found"}'
    error = client.error_for(response, "get repo")
    assert isinstance(error, NotFoundError)
    assert "Repository not found [RepoNotFound] (missing, or private to another account)" \
        in str(error)


def test_the_official_client_reads_the_listings_the_fingerprint_index_uses(
        hub: HubMock, tmp_path: Any) -> None:
    import hashlib

    weights = b"\x10\x00\x00\x00\x00\x00\x00\x00" + b'{"__metadata__":{}}' * 3
    hub.page_size = 1
    hub.add_repo("acme-ml/private-llm", private=True,
                 contents={"model.safetensors": weights, "config.json": b"{}",
                           "sub/adapter.bin": b"lora"})
    client = api(hub, hub.read_token)
    models = list(client.list_models(author="acme-ml", full=True))
    assert {m.id for m in models} == {"acme-ml/fraud-llm", "acme-ml/gated-llm",
                                      "acme-ml/private-llm"}  # every page, private too
    assert {m.id for m in hub_client.HfApi(endpoint=hub.base_url, token=False).list_models(
        author="acme-ml")} == {"acme-ml/fraud-llm", "acme-ml/gated-llm"}
    tree = list(client.list_repo_tree("acme-ml/private-llm", recursive=True))
    files = {t.path: t for t in tree if isinstance(t, hub_client.hf_api.RepoFile)}
    assert set(files) == {"config.json", "model.safetensors", "sub/adapter.bin"}
    assert files["model.safetensors"].lfs.sha256 == hashlib.sha256(weights).hexdigest()
    assert files["config.json"].lfs is None
    assert {t.path for t in tree if isinstance(t, hub_client.hf_api.RepoFolder)} == {"sub"}
    path = hub_client.hf_hub_download("acme-ml/private-llm", "model.safetensors",
                                      endpoint=hub.base_url, token=hub.read_token,
                                      cache_dir=str(tmp_path))
    with open(path, "rb") as handle:
        assert handle.read() == weights

