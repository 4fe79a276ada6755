"""The Hub's gated-repo access requests polled into the access desk (engine/service/access_hub.py)
against the Hub mock: each made once (a second poll, a second process, a race), decided by the
policy, answered on the Hub (accepted, rejected, rejected again at expiry), and those naming
nobody known left pending there."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

import crownguard.plugins.huggingface as hf_plugin
from crownguard.engine.errors import ConfigError, SpecError
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.access import AccessDesk, Caller
from crownguard.engine.service.access_hub import (
    HubAccessPoller,
    HubPollSettings,
    HubRegistry,
    hub_poll_settings,
    hub_poller,
    justification_of,
    requester_of,
)
from crownguard.engine.service.access_store import (
    AccessState,
    AccessStore,
    DuplicateSource,
    NewRequest,
)
from crownguard.engine.service.service import Service
from crownguard.engine.service.settings import Role
from crownguard.engine.triage.policy import load_policy, policy_from_mapping
from crownguard.plugins.huggingface.mock import HubMock

REPO = "acme-ml/fraud-llm"
OTHER = "acme-ml/vision"
WHY = {"Justification": "evaluating the fraud model on the Q3 holdout set"}
POLICY: dict[str, Any] = {"weights": {"off_hours": 0}, "access": {
    "models": {"tag": "sensitivity", "values": ["restricted"]},
    "auto_grant_below": 25, "two_approvers_from": 60, "approvers": {"owner_tag": "owner"},
    "people": {"dana@corp.example": {"departing": True},
               "flo@corp.example": {"watchlists": ["FLIGHT_RISK"]}},
    "huggingface_poll": {"interval_seconds": 60, "repos": [REPO, OTHER],
                         "users": {"dana-d": "dana@corp.example"},
                         "email_domains": ["corp.example"]}}}
OWNER = Caller("omar@corp.example", Role.APPROVER)


@pytest.fixture
def hub(mock_server: Callable[..., Any]) -> HubMock:
    mock = mock_server(HubMock)
    assert isinstance(mock, HubMock)
    for repo in (REPO, OTHER):
        mock.add_repo(repo, gated="manual")
        mock.repo(repo)["tags"] = ["license:other", "sensitivity:restricted",
                                   "owner:omar@corp.example"]
    return mock


@pytest.fixture
def make_poller(hub: HubMock, isolated_host: Callable[..., PluginHost],
                mock_config: Callable[..., Any], tmp_path: Path
                ) -> Callable[..., HubAccessPoller]:
    host = isolated_host(hf_plugin, name="huggingface")
    config = mock_config("huggingface", hub, host=host)

    def make(policy: dict[str, Any] = POLICY) -> HubAccessPoller:  # a process on the journal
        registry = HubRegistry(host, config)
        rules = policy_from_mapping(policy)
        desk = AccessDesk(AccessStore(SQLiteJournal(tmp_path / "journal.db")), rules, registry,
                          registries={"huggingface": registry})
        settings = hub_poll_settings(rules)
        assert settings is not None
        return HubAccessPoller(desk, registry, settings)

    return make


@pytest.fixture
def poller(make_poller: Callable[..., HubAccessPoller]) -> HubAccessPoller:
    return make_poller()


def test_a_pending_request_is_made_once_granted_and_accepted_on_the_hub(
        hub: HubMock, poller: HubAccessPoller, make_poller: Callable[..., HubAccessPoller]
        ) -> None:
    hub.request_access(REPO, "alice-h", email="alice@corp.example", fields=WHY)
    asked_at = hub.repo(REPO)["requests"]["alice-h"]["timestamp"]
    first = poller.poll_once()
    assert len(first.created) == 1 and first.failed_repos == []
    made = poller.desk.store.get(first.created[0])
    assert (made.requester, made.model, made.state, made.justification) == (
        "alice@corp.example", REPO, AccessState.GRANTED, WHY["Justification"])
    assert made.decision is not None and made.decision["registry"] == "huggingface"
    assert made.decision["source"]["user"] == "alice-h"
    assert hub.access_status(REPO, "alice-h") == "accepted"

    again = poller.poll_once()  # accepted now: no longer pending on the Hub
    restarted = make_poller()
    # The same request (user and time) shown pending again: as if the accept were lost.
    hub.repo(REPO)["requests"]["alice-h"].update(status="pending", timestamp=asked_at)
    later = restarted.poll_once()
    assert (again.created, later.created, later.known) == ([], [], 1)
    assert len(restarted.desk.store.find(model=REPO)) == 1

    # At expiry the access is taken back on the Hub, with a reason the user sees.
    due = datetime.now(UTC) + timedelta(days=30)
    [expired] = restarted.desk.expire_due(due)
    assert expired.id == made.id and expired.state == AccessState.EXPIRED
    assert hub.access_status(REPO, "alice-h") == "rejected"
    assert "access expired" in hub.repo(REPO)["requests"]["alice-h"]["rejectionReason"]


def test_a_leaver_is_rejected_on_the_hub_without_the_reasons(
        hub: HubMock, poller: HubAccessPoller) -> None:
    hub.request_access(REPO, "dana-d", fields=WHY)  # no e-mail shared: mapped by `users`
    [rid] = poller.poll_once().created
    denied = poller.desk.store.get(rid)
    assert (denied.requester, denied.state) == ("dana@corp.example", AccessState.DENIED)
    assert hub.access_status(REPO, "dana-d") == "rejected"
    reason = hub.repo(REPO)["requests"]["dana-d"]["rejectionReason"]
    assert "not approved" in reason and "depart" not in reason.lower()


def test_an_approver_decides_and_the_hub_follows(
        hub: HubMock, poller: HubAccessPoller, make_poller: Callable[..., HubAccessPoller]
        ) -> None:
    hub.request_access(REPO, "flo-f", email="flo@corp.example", fields=WHY)
    [rid] = poller.poll_once().created
    assert poller.desk.store.get(rid).state == AccessState.PENDING
    assert hub.access_status(REPO, "flo-f") == "pending"
    assert poller.poll_once().known == 1  # still pending on both sides: not made again
    assert make_poller().poll_once().known == 1  # nor after a restart
    granted = poller.desk.approve(rid, OWNER, "ok for the audit")
    assert granted.state == AccessState.GRANTED
    assert hub.access_status(REPO, "flo-f") == "accepted"
    poller.desk.revoke(rid, Caller("flo@corp.example", Role.VIEWER), "done early")
    assert hub.access_status(REPO, "flo-f") == "rejected"


def test_requests_naming_nobody_known_are_left_pending_and_said_once(
        hub: HubMock, poller: HubAccessPoller, make_poller: Callable[..., HubAccessPoller],
        caplog: pytest.LogCaptureFixture) -> None:
    hub.request_access(REPO, "stranger", fields=WHY)  # no e-mail, not in `users`
    hub.request_access(REPO, "gmail-user", email="someone@gmail.com", fields=WHY)
    hub.request_access(REPO, "masked", email="***", fields=WHY)
    hub.request_access(OTHER, "quiet", email="quiet@corp.example")  # no justification
    with caplog.at_level(logging.WARNING, "crownguard.access"):
        first = poller.poll_once()
        second = poller.poll_once()
    assert (first.created, first.set_aside, second.set_aside) == ([], 4, 4)
    said = [r.getMessage() for r in caplog.records if "left pending" in r.getMessage()]
    assert len(said) == 4, said  # once each, not at every poll
    assert any("stranger" in s and "huggingface_poll.users" in s for s in said)
    assert any("quiet" in s and "justification" in s for s in said)
    assert {hub.access_status(REPO, u) for u in ("stranger", "gmail-user", "masked")} == {
        "pending"}
    assert poller.desk.store.find() == []

    # Named later in the policy: made at the next poll.
    named = copy.deepcopy(POLICY)
    named["access"]["huggingface_poll"]["users"] = {"stranger": "sam@corp.example"}
    [rid] = make_poller(named).poll_once().created
    assert poller.desk.store.get(rid).requester == "sam@corp.example"
    assert hub.access_status(REPO, "stranger") == "accepted"


def test_a_failing_repo_does_not_hold_up_the_others(hub: HubMock,
                                                    poller: HubAccessPoller) -> None:
    hub.repo(OTHER)["gated"] = False  # the Hub answers 400: not gated
    hub.request_access(REPO, "alice-h", email="alice@corp.example", fields=WHY)
    result = poller.poll_once()
    assert result.failed_repos == [OTHER] and len(result.created) == 1


def test_a_rejection_that_did_not_reach_the_hub_is_sent_again(
        hub: HubMock, poller: HubAccessPoller) -> None:
    hub.request_access(REPO, "dana-d", fields=WHY)
    hub.inject("status", path="/api/models/acme-ml/fraud-llm/user-access-request/handle",
               method="POST", status=503, times=1)
    [rid] = poller.poll_once().created
    assert poller.desk.store.get(rid).state == AccessState.DENIED
    assert hub.access_status(REPO, "dana-d") == "pending"  # the rejection was lost
    again = poller.poll_once()
    assert (again.created, again.answered_again) == ([], 1)
    assert hub.access_status(REPO, "dana-d") == "rejected"


def test_a_second_request_of_one_origin_is_refused_in_the_same_transaction(
        tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "j.db")
    store = AccessStore(journal)
    new = NewRequest("a@corp.example", REPO, "download", "x" * 30, 3600)
    origin = {"source": {"key": "huggingface:acme-ml/fraud-llm:a:2026-12-02T10:00:00Z"}}
    made = store.create(new, decision=origin)
    head = journal.head()
    with pytest.raises(DuplicateSource):
        AccessStore(SQLiteJournal(tmp_path / "j.db")).create(new, decision=origin)
    assert journal.head() == head  # no journal entry of the refused one
    assert [r.id for r in store.find()] == [made.id]
    record = store.source(origin["source"]["key"])
    assert record is not None and record.request_id == made.id
    # A set-aside never overwrites a key that has its request.
    assert store.set_aside(origin["source"]["key"], "anything") is False


def test_who_asked_and_why_from_the_hubs_answer() -> None:
    settings = HubPollSettings(60, (REPO,), {"dana-d": "dana@corp.example"}, ("corp.example",))
    assert requester_of({"user": "Dana-D", "email": "x@corp.example"}, settings) == \
        "dana@corp.example"
    assert requester_of({"user": "u", "email": "u@Corp.Example"}, settings) == "u@Corp.Example"
    assert requester_of({"user": "u", "email": "u@elsewhere.example"}, settings) is None
    assert requester_of({"user": "u", "email": None}, settings) is None
    assert justification_of({"fields": {"Why": " the audit ", "Team": "risk", "Empty": ""}}) \
        == "Why: the audit; Team: risk"
    assert justification_of({"fields": {}}) == ""


def test_a_bad_poll_section_is_refused_naming_where(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("access:\n  huggingface_poll:\n    interval_seconds: 0\n"
                    "    repos: [not-a-repo-id]\n")
    with pytest.raises(SpecError) as refused:
        load_policy(path)
    text = str(refused.value)
    assert "policy.yaml:3" in text and "interval_seconds" in text
    assert "policy.yaml:4" in text and "not-a-repo-id" in text


def test_polling_without_a_huggingface_connection_is_a_start_error(
        isolated_host: Callable[..., PluginHost], crownguard_config: Callable[..., Any]) -> None:
    host = isolated_host(hf_plugin, name="huggingface")
    service = SimpleNamespace(policy=policy_from_mapping(POLICY), host=host,
                              config=crownguard_config({}, host=host))
    with pytest.raises(ConfigError) as refused:
        hub_poller(cast(Service, service), lambda _: None)
    assert "access.huggingface_poll: needs the huggingface plugin and a 'huggingface' " \
           "connection" in str(refused.value)
    quiet = SimpleNamespace(policy=policy_from_mapping({}), host=host, config=service.config)
    assert hub_poller(cast(Service, quiet), lambda _: None) is None


def test_the_cli_answers_a_hub_request_on_the_hub(
        hub: HubMock, make_poller: Callable[..., HubAccessPoller], run_cli: Any,
        tmp_path: Path) -> None:
    hub.request_access(REPO, "flo-f", email="flo@corp.example", fields=WHY)
    [rid] = make_poller().poll_once().created  # pending: the owner decides
    config = tmp_path / "connections.yaml"
    config.write_text(json.dumps({"connections": {"huggingface": hub.connection_settings()}}))
    policy = tmp_path / "policy.yaml"
    policy.write_text(json.dumps(POLICY))
    common = ("--journal", tmp_path / "journal.db", "--config", config, "--policy", policy)
    code, _, err = run_cli("access", "approve", rid, "--by", "omar@corp.example", *common)
    assert code == 0, err
    assert hub.access_status(REPO, "flo-f") == "accepted"
    code, _, err = run_cli("access", "revoke", rid, "--by", "omar@corp.example", *common)
    assert code == 0, err
    assert hub.access_status(REPO, "flo-f") == "rejected"
