"""The Hub mock's pending access-request list against the official huggingface_hub client
(`list_pending_access_requests`): every field it reads, every page, and the refusals the real
Hub gives (a bad token 401, an unknown repo 404, an ungated repo 400, a read token 403)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crownguard.plugins.huggingface.mock import HubMock

REPO = "acme-ml/fraud-llm"

hub_client = pytest.importorskip("huggingface_hub")
errors = pytest.importorskip("huggingface_hub.errors")


@pytest.fixture
def hub(mock_server: Callable[..., Any]) -> HubMock:
    mock = mock_server(HubMock)
    assert isinstance(mock, HubMock)
    mock.add_repo(REPO, gated="manual")
    mock.add_repo("acme-ml/open", gated=False)
    return mock


def api(hub: HubMock, token: str) -> Any:
    return hub_client.HfApi(endpoint=hub.base_url, token=token)


def test_every_page_with_user_email_time_and_form_fields(hub: HubMock) -> None:
    for n in range(5):
        hub.request_access(REPO, f"user-{n}", email=f"user-{n}@corp.example",
                           fields={"Justification": f"reason {n}"})
    hub.request_access(REPO, "done", "accepted")
    hub.page_size = 2
    found = list(api(hub, hub.write_token).list_pending_access_requests(REPO))
    assert [r.username for r in found] == [f"user-{n}" for n in range(5)]
    first = found[0]
    assert (first.email, first.fields, first.status) == (
        "user-0@corp.example", {"Justification": "reason 0"}, "pending")
    assert first.request_id and first.timestamp.tzinfo is not None
    assert first.fullname
    assert len(hub.calls_to("GET", f"/api/models/{REPO}/user-access-request/pending")) == 3


@pytest.mark.parametrize(("repo", "token", "status", "kind"), [
    (REPO, "hf_not_a_token", 401, "HfHubHTTPError"),
    ("acme-ml/nothing-here", "write", 404, "RepositoryNotFoundError"),
    ("acme-ml/open", "write", 400, "HfHubHTTPError"),
    (REPO, "read", 403, "HfHubHTTPError"),
])
def test_the_refusals_the_hub_gives(hub: HubMock, repo: str, token: str, status: int,
                                    kind: str) -> None:
    value = {"write": hub.write_token, "read": hub.read_token}.get(token, token)
    with pytest.raises(getattr(errors, kind)) as refused:
        list(api(hub, value).list_pending_access_requests(repo))
    assert refused.value.response.status_code == status
