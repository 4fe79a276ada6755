"""falcon plugin: every action against the Falcon mock, idempotent repeats, pagination, RTR
quarantine with evidence, and a small playbook end to end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crownguard.engine import SpecError
from crownguard.plugins import falcon as falcon_plugin
from crownguard.plugins.falcon.mock import FalconMock

ALICE = "4e1f0c3a9b7d4c21a5f08e6d2b3c7a91"
ALICE_MODEL = r"C:\Users\alice\Downloads\corp-brain-v3.safetensors"
ALICE_QUARANTINE = r"C:\ProgramData\Crownguard\Quarantine"
BOB = "9a8b7c6d5e4f40312a1b0c9d8e7f6a5b"
@pytest.fixture
def falcon(mock_server: Callable[..., Any]) -> FalconMock:
    server: FalconMock = mock_server(FalconMock)
    return server


@pytest.fixture
def host(isolated_host: Callable[..., Any]) -> Any:
    return isolated_host(falcon_plugin, name="falcon")


@pytest.fixture
def act(falcon: FalconMock, host: Any, mock_config: Callable[..., Any],
        run_step: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Run one falcon action as a one-step playbook; the step's record."""

    def run(action: str, inputs: dict[str, Any], **settings: Any) -> dict[str, Any]:
        config = mock_config("falcon", falcon, host=host, **settings)
        return run_step(action, inputs, config=config, host=host)

    return run


def rtr_commands(falcon: FalconMock) -> list[str]:
    return [c.json["base_command"] for c in falcon.calls_to(
        "POST", "/real-time-response/entities/active-responder-command/v1")]


# --- find_host ---------------------------------------------------------------------------------


def test_find_host_by_hostname(act: Callable[..., dict[str, Any]], falcon: FalconMock) -> None:
    step = act("falcon.find_host", {"hostname": "ws-alice-01"})
    assert step["status"] == "succeeded", step["error"]
    output = step["output"]
    assert output["device_id"] == ALICE
    assert output["hostname"] == "WS-ALICE-01"
    assert output["status"] == "normal"
    assert output["count"] == 1
    query = falcon.calls_to("GET", "/devices/queries/devices/v1")[0]
    assert query.arg("filter") == "hostname:'ws-alice-01'"


def test_find_host_by_device_id(act: Callable[..., dict[str, Any]]) -> None:
    step = act("falcon.find_host", {"device_id": BOB})
    assert step["status"] == "succeeded", step["error"]
    assert step["output"]["hostname"] == "MBP-BOB-02"
    assert step["output"]["platform_name"] == "Mac"


def test_find_host_follows_offset_pagination(act: Callable[..., dict[str, Any]],
                                             falcon: FalconMock) -> None:
    for day in range(1, 8):
        falcon.add_host("LAB-REIMAGED", last_seen=f"2026-11-0{day}T10:00:00Z")
    step = act("falcon.find_host", {"hostname": "LAB-REIMAGED"}, page_size=3)
    assert step["status"] == "succeeded", step["error"]
    assert step["output"]["count"] == 7
    assert step["output"]["last_seen"] == "2026-11-07T10:00:00Z"  # the live record first
    offsets = [c.arg("offset") for c in falcon.calls_to("GET", "/devices/queries/devices/v1")]
    assert offsets == ["0", "3", "6"]


def test_find_host_escapes_quotes_in_the_fql_filter(act: Callable[..., dict[str, Any]],
                                                    falcon: FalconMock) -> None:
    falcon.add_host("o'brien-laptop")
    step = act("falcon.find_host", {"hostname": "o'brien-laptop"})
    assert step["status"] == "succeeded", step["error"]
    assert step["output"]["hostname"] == "o'brien-laptop"


def test_find_host_unknown_hostname_is_not_found(act: Callable[..., dict[str, Any]]) -> None:
    step = act("falcon.find_host", {"hostname": "no-such-host"})
    assert step["status"] == "failed"
    assert "falcon query devices" in step["error"]
    assert "no host named 'no-such-host'" in step["error"]
    assert step["attempts"] == 1


def test_find_host_unknown_device_id_is_a_404(act: Callable[..., dict[str, Any]]) -> None:
    step = act("falcon.find_host", {"device_id": "f" * 32})
    assert step["status"] == "failed"
    assert "falcon get device details (HTTP 404)" in step["error"]
    assert "no host with device id" in step["error"]
    assert step["attempts"] == 1


def test_unknown_device_id_reported_inside_a_200_is_not_found_too(
        act: Callable[..., dict[str, Any]], falcon: FalconMock) -> None:
    falcon.inject("status", status=200, path="/devices/entities/devices/v2", body={
        "meta": {}, "resources": [], "errors": [{"code": 404, "message": "Resource Not Found"}]})
    step = act("falcon.find_host", {"device_id": "f" * 32})
    assert step["status"] == "failed"
    assert "no host with device id" in step["error"]


def test_find_host_needs_a_host(act: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(SpecError, match="falcon.find_host input"):
        act("falcon.find_host", {})


# --- containment -------------------------------------------------------------------------------


def test_contain_host_waits_for_contained_then_repeats_unchanged(
        act: Callable[..., dict[str, Any]], falcon: FalconMock) -> None:
    falcon.containment_polls = 3
    step = act("falcon.contain_host", {"device_id": ALICE})
    assert step["status"] == "succeeded", step["error"]
    assert step["output"]["status"] == "contained"
    assert step["output"]["previous_status"] == "normal"
    assert step["output"]["changed"] is True
    assert falcon.hosts[ALICE].status == "contained"
    [contain] = falcon.calls_to("POST", "/devices/entities/devices-actions/v2")
    assert contain.arg("action_name") == "contain"
    assert contain.json == {"ids": [ALICE]}
    # one read before acting, then polls through containment_pending until contained
    assert len(falcon.calls_to("GET", "/devices/entities/devices/v2")) == 1 + 3

    again = act("falcon.contain_host", {"hostname": "WS-ALICE-01"})
    assert again["status"] == "succeeded", again["error"]
    assert again["output"]["changed"] is False
    assert again["output"]["status"] == "contained"
    assert len(falcon.calls_to("POST", "/devices/entities/devices-actions/v2")) == 1


def test_contain_host_already_pending_is_waited_for_not_resent(
        act: Callable[..., dict[str, Any]], falcon: FalconMock) -> None:
    falcon.set_status(ALICE, "containment_pending", pending_reads=3)
    step = act("falcon.contain_host", {"device_id": ALICE})
    assert step["status"] == "succeeded", step["error"]
    assert step["output"] | {"changed": False, "status": "contained",
                             "previous_status": "containment_pending"} == step["output"]
    assert falcon.calls_to("POST", "/devices/entities/devices-actions/v2") == []


def test_contain_host_lets_a_pending_lift_land_first(act: Callable[..., dict[str, Any]],
                                                     falcon: FalconMock) -> None:
    falcon.set_status(ALICE, "lift_containment_pending", pending_reads=2)
    step = act("falcon.contain_host", {"device_id": ALICE})
    assert step["status"] == "succeeded", step["error"]
    assert step["output"]["changed"] is True
    assert step["output"]["status"] == "contained"


def test_lift_containment_and_its_repeat(act: Callable[..., dict[str, Any]],
                                         falcon: FalconMock) -> None:
    falcon.set_status(ALICE, "contained")
    step = act("falcon.lift_containment", {"device_id": ALICE})
    assert step["status"] == "succeeded", step["error"]
    assert step["output"]["status"] == "normal"
    assert step["output"]["changed"] is True
    [lift] = falcon.calls_to("POST", "/devices/entities/devices-actions/v2")
    assert lift.arg("action_name") == "lift_containment"

    again = act("falcon.lift_containment", {"device_id": ALICE})
    assert again["output"]["changed"] is False
    assert len(falcon.calls_to("POST", "/devices/entities/devices-actions/v2")) == 1


# --- quarantine_file / restore_file ------------------------------------------------------------


def test_quarantine_file_collects_evidence_then_removes(act: Callable[..., dict[str, Any]],
                                                        falcon: FalconMock) -> None:
    expected = falcon.file_on(ALICE, ALICE_MODEL)
    assert expected is not None
    step = act("falcon.quarantine_file", {"device_id": ALICE, "path": ALICE_MODEL,
                                          "sha256": expected.sha256.upper()})
    assert step["status"] == "succeeded", step["error"]
    output = step["output"]
    assert output["status"] == "removed"
    assert output["changed"] is True
    assert output["sha256"] == expected.sha256
    assert output["evidence"]["sha256"] == expected.sha256
    assert output["evidence"]["size"] == expected.size
    assert falcon.file_on(ALICE, ALICE_MODEL) is None
    assert rtr_commands(falcon) == ["get", "rm"]  # evidence first
    rm = falcon.calls_to("POST", "/real-time-response/entities/active-responder-command/v1")[-1]
    assert rm.json["command_string"] == f'rm "{ALICE_MODEL}"'
    assert len(falcon.calls_to("DELETE", "/real-time-response/entities/sessions/v1")) == 1

    again = act("falcon.quarantine_file", {"device_id": ALICE, "path": ALICE_MODEL})
    assert again["status"] == "succeeded", again["error"]
    assert again["output"]["status"] == "absent"
    assert again["output"]["changed"] is False
    assert rtr_commands(falcon) == ["get", "rm", "get"]


def test_quarantine_file_move_restore_and_repeats(act: Callable[..., dict[str, Any]],
                                                  falcon: FalconMock) -> None:
    inputs = {"hostname": "WS-ALICE-01", "path": ALICE_MODEL, "mode": "move",
              "destination": ALICE_QUARANTINE, "collect_evidence": False}
    moved_to = ALICE_QUARANTINE + r"\corp-brain-v3.safetensors"
    step = act("falcon.quarantine_file", inputs)
    assert step["status"] == "succeeded", step["error"]
    assert step["output"]["status"] == "moved"
    assert step["output"]["destination"] == moved_to
    assert step["output"]["evidence"] is None
    assert falcon.file_on(ALICE, ALICE_MODEL) is None
    assert rtr_commands(falcon) == ["filehash", "mv"]
    moved = falcon.file_on(ALICE, moved_to)
    assert moved is not None and step["output"]["sha256"] == moved.sha256

    again = act("falcon.quarantine_file", inputs)
    assert again["output"] | {"status": "moved", "changed": False} == again["output"]

    restore = {"device_id": ALICE, "path": ALICE_MODEL, "destination": ALICE_QUARANTINE}
    back = act("falcon.restore_file", restore)
    assert back["status"] == "succeeded", back["error"]
    assert back["output"]["changed"] is True
    assert falcon.file_on(ALICE, ALICE_MODEL) is not None
    back_again = act("falcon.restore_file", restore)
    assert back_again["output"]["changed"] is False


def test_quarantine_file_on_a_mac_uses_forward_slashes(act: Callable[..., dict[str, Any]],
                                                       falcon: FalconMock) -> None:
    step = act("falcon.quarantine_file", {
        "device_id": BOB, "path": "/Users/bob/models/llama-ft.gguf", "mode": "move",
        "destination": "/var/crownguard/quarantine"})
    assert step["status"] == "succeeded", step["error"]
    assert step["output"]["destination"] == "/var/crownguard/quarantine/llama-ft.gguf"
    assert falcon.file_on(BOB, "/var/crownguard/quarantine/llama-ft.gguf") is not None


def test_quarantine_file_leaves_a_different_file_alone(act: Callable[..., dict[str, Any]],
                                                       falcon: FalconMock) -> None:
    step = act("falcon.quarantine_file", {"device_id": ALICE, "path": ALICE_MODEL,
                                          "sha256": "0" * 64})
    assert step["status"] == "failed"
    assert "not the expected" in step["error"]
    assert falcon.file_on(ALICE, ALICE_MODEL) is not None
    assert rtr_commands(falcon) == ["get"]
    assert step["attempts"] == 1  # a ConflictError is not retried

    without_evidence = act("falcon.quarantine_file", {
        "device_id": ALICE, "path": ALICE_MODEL, "sha256": "0" * 64, "collect_evidence": False})
    assert without_evidence["status"] == "failed"
    assert "not the expected" in without_evidence["error"]
    assert rtr_commands(falcon) == ["get", "filehash"]  # hashed on the host, nothing uploaded


def test_quarantine_file_checks_the_rtr_commands_own_result(
        act: Callable[..., dict[str, Any]], falcon: FalconMock) -> None:
    step = act("falcon.quarantine_file", {"device_id": ALICE, "path": ALICE_MODEL,
                                          "mode": "move", "destination": r"C:\NoSuchFolder"})
    assert step["status"] == "failed"
    assert "failed on the host" in step["error"]
    assert "Could not find a part of the path" in step["error"]
    assert falcon.file_on(ALICE, ALICE_MODEL) is not None
    # the session is closed even though the command failed
    assert len(falcon.calls_to("DELETE", "/real-time-response/entities/sessions/v1")) == 1


def test_quarantine_file_move_needs_a_destination(act: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(SpecError, match="destination"):
        act("falcon.quarantine_file", {"device_id": ALICE, "path": ALICE_MODEL, "mode": "move"})


def test_quarantine_file_refuses_a_path_that_could_inject(
        act: Callable[..., dict[str, Any]], falcon: FalconMock) -> None:
    with pytest.raises(SpecError, match="path"):
        act("falcon.quarantine_file", {"device_id": ALICE, "path": 'C:\\x" & rm "C:\\Windows'})
    assert falcon.calls_to("POST", "/real-time-response/entities/sessions/v1") == []


def test_restore_file_unknown_everywhere_is_not_found(act: Callable[..., dict[str, Any]]) -> None:
    step = act("falcon.restore_file", {"device_id": ALICE, "path": r"C:\nothing.bin",
                                       "destination": ALICE_QUARANTINE})
    assert step["status"] == "failed"
    assert "neither on host" in step["error"]


# --- a playbook --------------------------------------------------------------------------------

PLAYBOOK = """
name: falcon-contain-and-quarantine
steps:
  - id: find
    action: falcon.find_host
    with: {hostname: "${{ event.device.hostname }}"}
    retry: {max_attempts: 3, backoff_seconds: 0.01}
  - id: contain
    action: falcon.contain_host
    needs: [find]
    with: {device_id: "${{ steps.find.output.device_id }}"}
    retry: {max_attempts: 3, backoff_seconds: 0.01}
    timeout_seconds: 30
  - id: quarantine
    action: falcon.quarantine_file
    needs: [find]
    with:
      device_id: "${{ steps.find.output.device_id }}"
      path: "${{ event.file.path }}"
      sha256: "${{ event.file.sha256 }}"
    retry: {max_attempts: 3, backoff_seconds: 0.01}
    timeout_seconds: 30
"""


def test_playbook_contains_the_host_and_quarantines_the_model(
        falcon: FalconMock, host: Any, crownguard_config: Callable[..., Any],
        run_playbook: Callable[..., dict[str, Any]]) -> None:
    model = falcon.file_on(ALICE, ALICE_MODEL)
    assert model is not None
    config = crownguard_config({"falcon": falcon.connection_settings()}, host=host)
    event = {"device": {"hostname": "WS-ALICE-01"},
             "file": {"path": ALICE_MODEL, "sha256": model.sha256}}
    record = run_playbook(PLAYBOOK, event, config=config, host=host)
    assert record["status"] == "succeeded", record
    assert record["steps"]["contain"]["output"]["status"] == "contained"
    assert record["steps"]["quarantine"]["output"]["status"] == "removed"
    assert falcon.hosts[ALICE].status == "contained"
    assert falcon.file_on(ALICE, ALICE_MODEL) is None
    # one token for the whole run: the connection caches it across steps
    assert len(falcon.calls_to("POST", "/oauth2/token")) == 1
