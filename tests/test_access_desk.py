"""Access requests end to end against the mlflow mock with its auth app: the permission is
really granted, and really gone after expiry or revoke (the user's own read answers 403)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

import crownguard.plugins.mlflow as mlflow_plugin
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.access import AccessDesk, ActionRegistry, Caller
from crownguard.engine.service.access_store import (
    AccessError,
    AccessState,
    AccessStore,
    RegistryError,
)
from crownguard.engine.service.settings import Role
from crownguard.engine.triage.policy import policy_from_mapping
from crownguard.plugins.mlflow.mock import MlflowMock

NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # a Wednesday, working hours
SUNDAY_NIGHT = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
WHY = "retraining the fraud model on the Q3 data"
POLICY = {"access": {
    "models": {"tag": "sensitivity", "values": ["restricted", "confidential"]},
    "auto_grant_below": 25, "two_approvers_from": 40,
    "approvers": {"owner_tag": "owner"},
    "people": {"dana@corp.example": {"departing": True},
               "flo@corp.example": {"watchlists": ["FLIGHT_RISK"]}}}}
ALICE = ("alice@corp.example", "alice-pw")
OWNER = Caller("omar@corp.example", Role.APPROVER)


@pytest.fixture
def mock(mock_server: Callable[..., Any]) -> MlflowMock:
    server = mock_server(MlflowMock, auth="basic")
    assert isinstance(server, MlflowMock)
    server.default_permission = "NO_PERMISSIONS"
    server.add_version("fraud", {"weights.bin": b"w"})
    server.tag_model("fraud", {"sensitivity": "confidential", "owner": "omar@corp.example"})
    server.add_version("secret", {"weights.bin": b"s"})
    server.tag_model("secret", {"sensitivity": "restricted", "owner": "omar@corp.example"})
    for user in (ALICE, ("flo@corp.example", "pw"), ("dana@corp.example", "pw")):
        server.add_user(*user)
    return server


@pytest.fixture
def make_desk(mock: MlflowMock, isolated_host: Callable[..., PluginHost],
              mock_config: Callable[..., Any], tmp_path: Path) -> Callable[[], AccessDesk]:
    host = isolated_host(mlflow_plugin, name="mlflow")
    config = mock_config("mlflow", mock, host=host)

    def make() -> AccessDesk:  # a new process on the same journal
        store = AccessStore(SQLiteJournal(tmp_path / "journal.db"))
        return AccessDesk(store, policy_from_mapping(POLICY), ActionRegistry(host, config))

    return make


@pytest.fixture
def desk(make_desk: Callable[[], AccessDesk]) -> AccessDesk:
    return make_desk()


def reads(mock: MlflowMock, model: str, user: tuple[str, str] = ALICE) -> int:
    return requests.get(mock.url_for("/api/2.0/mlflow/registered-models/get"),
                        params={"name": model}, auth=user, timeout=5).status_code


def kinds(desk: AccessDesk, request_id: str) -> list[str]:
    return [h["type"] for h in desk.store.history(request_id)]


def test_low_risk_is_granted_then_expires_once_and_the_permission_is_gone(
        desk: AccessDesk, mock: MlflowMock, make_desk: Callable[[], AccessDesk]) -> None:
    assert reads(mock, "fraud") == 403
    request = desk.request(ALICE[0], "fraud", WHY, duration_seconds=3600, now=NOON)
    assert request.state == AccessState.GRANTED, request.decision
    assert "granted by policy" in request.decision["reason"]
    assert mock.grants == {(ALICE[0], "fraud"): "READ"}
    assert reads(mock, "fraud") == 200
    assert desk.expire_due(NOON + timedelta(minutes=59)) == []
    # The service restarted before the deadline: a new process expires it.
    later = make_desk()
    [expired] = later.expire_due(NOON + timedelta(hours=1, seconds=1))
    assert expired.state == AccessState.EXPIRED and expired.revoked_by == "crownguard"
    assert mock.grants == {} and reads(mock, "fraud") == 403
    assert later.expire_due(NOON + timedelta(hours=2)) == []
    assert desk.expire_due(NOON + timedelta(hours=2)) == []
    assert kinds(desk, request.id) == ["access_requested", "access_approved",
                                       "access_granted", "access_expired"]
    assert desk.store.journal.verify() == []


def test_medium_risk_waits_for_the_owner(desk: AccessDesk, mock: MlflowMock) -> None:
    request = desk.request(ALICE[0], "secret", WHY, now=SUNDAY_NIGHT)  # restricted + off hours
    assert (request.state, request.approvals_required) == (AccessState.PENDING, 1)
    assert "an approval needed from omar@corp.example" in request.decision["reason"]
    assert mock.grants == {}
    with pytest.raises(AccessError, match="cannot approve their own"):
        desk.approve(request.id, Caller(ALICE[0], Role.ADMIN))
    with pytest.raises(AccessError, match="is not an approver"):
        desk.approve(request.id, Caller("eve@corp.example", Role.APPROVER))
    approved = desk.approve(request.id, OWNER, "fine for Q3")
    assert approved.state == AccessState.GRANTED and approved.decided_by == OWNER.name
    assert reads(mock, "secret") == 200


def test_high_risk_needs_two_approvals(desk: AccessDesk, mock: MlflowMock) -> None:
    request = desk.request("flo@corp.example", "secret", WHY, now=NOON)
    assert request.approvals_required == 2
    first = desk.approve(request.id, OWNER)
    assert first.state == AccessState.PENDING and len(first.approvals) == 1
    with pytest.raises(AccessError, match="approved access request .* already"):
        desk.approve(request.id, OWNER)
    second = desk.approve(request.id, Caller("ciso@corp.example", Role.ADMIN))
    assert second.state == AccessState.GRANTED
    assert kinds(desk, request.id) == ["access_requested", "access_approval",
                                       "access_approved", "access_granted"]


def test_a_departing_person_is_denied_unless_an_admin_overrides(desk: AccessDesk,
                                                                mock: MlflowMock) -> None:
    request = desk.request("dana@corp.example", "fraud", WHY, now=NOON)
    assert request.state == AccessState.DENIED and request.decided_by == "policy"
    assert "departing employee" in request.decision["reason"]
    with pytest.raises(AccessError, match="only an admin can override"):
        desk.approve(request.id, OWNER)
    overridden = desk.approve(request.id, Caller("root@corp.example", Role.ADMIN), "audit")
    assert overridden.state == AccessState.GRANTED
    assert mock.grants == {("dana@corp.example", "fraud"): "READ"}


def test_revoke_early_by_the_requester_and_not_by_a_stranger(desk: AccessDesk,
                                                            mock: MlflowMock) -> None:
    request = desk.request(ALICE[0], "fraud", WHY, now=NOON)
    with pytest.raises(AccessError, match="or a responder can revoke"):
        desk.revoke(request.id, Caller("eve@corp.example", Role.VIEWER))
    revoked = desk.revoke(request.id, Caller(ALICE[0], Role.VIEWER), "done")
    assert revoked.state == AccessState.REVOKED and mock.grants == {}
    assert reads(mock, "fraud") == 403
    assert desk.expire_due(NOON + timedelta(days=30)) == []


def test_a_permission_the_user_had_before_is_left_at_expiry(desk: AccessDesk,
                                                            mock: MlflowMock) -> None:
    mock.grants[(ALICE[0], "fraud")] = "EDIT"
    request = desk.request(ALICE[0], "fraud", WHY, duration_seconds=60, now=NOON)
    assert request.grant is not None and request.grant["pre_existing"] == "EDIT"
    [expired] = desk.expire_due(NOON + timedelta(minutes=2))
    assert expired.state == AccessState.EXPIRED
    assert mock.grants == {(ALICE[0], "fraud"): "EDIT"}


def test_a_grant_the_registry_refused_stays_approved_and_is_retried(
        desk: AccessDesk, mock: MlflowMock) -> None:
    mock.users.pop(ALICE[0])  # the auth app does not know her yet
    request = desk.request(ALICE[0], "fraud", WHY, now=NOON)
    assert request.state == AccessState.APPROVED and mock.grants == {}
    mock.add_user(*ALICE)
    [granted] = desk.retry_grants(now=NOON)
    assert granted.state == AccessState.GRANTED and reads(mock, "fraud") == 200


def test_bad_requests_are_refused_with_every_problem(desk: AccessDesk) -> None:
    with pytest.raises(AccessError) as caught:
        desk.request(ALICE[0], "fraud", "because", duration_seconds=999 * 3600)
    assert str(caught.value) == ("justification: say why in at least 20 characters (got 7); "
                                 "duration: at most 72h by policy (asked 999h)")
    with pytest.raises(AccessError, match="read or download"):
        desk.request(ALICE[0], "fraud", WHY, access="write")


def test_a_model_the_policy_does_not_manage_is_refused_saying_so(desk: AccessDesk,
                                                                 mock: MlflowMock) -> None:
    mock.add_version("open", {"w": b"o"})
    request = desk.request(ALICE[0], "open", WHY, now=NOON)
    assert request.state == AccessState.DENIED
    assert request.decision["outcome"] == "not_needed"


def test_an_unknown_model_is_the_requests_fault_and_a_failing_registry_is_not(
        desk: AccessDesk, mock: MlflowMock) -> None:
    with pytest.raises(AccessError, match="not found") as caught:
        desk.request(ALICE[0], "no-such-model", WHY, now=NOON)
    assert not isinstance(caught.value, RegistryError)
    mock.inject("status", status=503, times=None)
    with pytest.raises(RegistryError, match="mlflow.get_registered_model"):
        desk.request(ALICE[0], "fraud", WHY, now=NOON)
    assert desk.store.find() == []  # nothing recorded for a request that was not decided


def test_a_revoke_the_registry_refuses_leaves_the_grant_and_the_timer_retries(
        desk: AccessDesk, mock: MlflowMock) -> None:
    request = desk.request(ALICE[0], "fraud", WHY, duration_seconds=60, now=NOON)
    mock.inject("status", status=503, times=None)
    with pytest.raises(RegistryError):
        desk.revoke(request.id, Caller(ALICE[0], Role.VIEWER))
    assert desk.expire_due(NOON + timedelta(minutes=2)) == []
    assert desk.store.get(request.id).state == AccessState.GRANTED
    mock.clear_faults()
    [expired] = desk.expire_due(NOON + timedelta(minutes=2))
    assert expired.state == AccessState.EXPIRED and mock.grants == {}
