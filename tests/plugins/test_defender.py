"""defender plugin: every action against the Defender mock, idempotent repeats, machine
actions polled to their end, OData paging, and a small playbook end to end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crownguard.engine import SpecError
from crownguard.plugins import defender as defender_plugin
from crownguard.plugins.defender.mock import DefenderMock

ALICE = "1e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d"
BOB = "7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b"
@pytest.fixture
def defender(mock_server: Callable[..., Any]) -> DefenderMock:
    server: DefenderMock = mock_server(DefenderMock)
    return server


@pytest.fixture
def host(isolated_host: Callable[..., Any]) -> Any:
    return isolated_host(defender_plugin, name="defender")


@pytest.fixture
def act(defender: DefenderMock, host: Any, mock_config: Callable[..., Any],
        run_step: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Run one defender action as a one-step playbook; the step's record."""

    def run(action: str, inputs: dict[str, Any], **settings: Any) -> dict[str, Any]:
        config = mock_config("defender", defender, host=host, **settings)
        return run_step(action, inputs, config=config, host=host)

    return run


def posts(defender: DefenderMock, verb: str) -> list[Any]:
    return defender.calls_to("POST", f"/api/machines/{{machine_id}}/{verb}")


def model_sha(defender: DefenderMock, machine_id: str = ALICE) -> tuple[str, str]:
    sha1 = next(iter(defender.machines[machine_id].files))
    return sha1, defender.files[sha1].sha256


# --- find_machine ------------------------------------------------------------------------------


def test_find_machine_by_short_host_name(act: Callable[..., dict[str, Any]],
                                         defender: DefenderMock) -> None:
    step = act("defender.find_machine", {"hostname": "WS-ALICE-01"})
    assert step["status"] == "succeeded", step["error"]
    assert step["output"]["machine_id"] == ALICE
    assert step["output"]["computer_dns_name"] == "ws-alice-01.corp.example"
    assert step["output"]["count"] == 1
    filters = [c.arg("$filter") for c in defender.calls_to("GET", "/api/machines")]
    assert filters == ["computerDnsName eq 'ws-alice-01'",
                       "startswith(computerDnsName,'ws-alice-01.')"]


def test_find_machine_by_dns_name_and_by_id(act: Callable[..., dict[str, Any]],
                                            defender: DefenderMock) -> None:
    by_name = act("defender.find_machine", {"hostname": "mbp-bob-02.corp.example"})
    assert by_name["output"]["machine_id"] == BOB
    assert defender.calls_to("GET", "/api/machines")[0].arg("$filter") == \
        "computerDnsName eq 'mbp-bob-02.corp.example'"
    by_id = act("defender.find_machine", {"machine_id": BOB})
    assert by_id["status"] == "succeeded", by_id["error"]
    assert by_id["output"]["osPlatform"] == "macOS"


def test_find_machine_follows_odata_next_links(act: Callable[..., dict[str, Any]],
                                               defender: DefenderMock) -> None:
    defender.page_size = 2
    for day in range(1, 6):
        defender.add_machine("lab-07.corp.example", lastSeen=f"2026-11-0{day}T10:00:00Z")
    defender.add_machine("lab-070.corp.example")  # same prefix, another host
    step = act("defender.find_machine", {"hostname": "lab-07"})
    assert step["status"] == "succeeded", step["error"]
    assert step["output"]["count"] == 5
    assert step["output"]["lastSeen"] == "2026-11-05T10:00:00Z"
    # one exact-name query (nothing), then 2 + 2 + 1 of the 5 `lab-07.` machines
    assert len(defender.calls_to("GET", "/api/machines")) == 1 + 3


def test_find_machine_unknown_name_and_unknown_id(act: Callable[..., dict[str, Any]]) -> None:
    by_name = act("defender.find_machine", {"hostname": "no-such-host"})
    assert by_name["status"] == "failed"
    assert "no machine named 'no-such-host'" in by_name["error"]
    by_id = act("defender.find_machine", {"machine_id": "a" * 40})
    assert by_id["status"] == "failed"
    assert "defender get machine (HTTP 404)" in by_id["error"]
    assert "ResourceNotFound" in by_id["error"]
    assert by_id["attempts"] == 1


def test_find_machine_needs_a_machine(act: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(SpecError, match="defender.find_machine input"):
        act("defender.find_machine", {"hostname": ""})


# --- isolate / release -------------------------------------------------------------------------


def test_isolate_polls_the_action_to_succeeded_then_repeats_unchanged(
        act: Callable[..., dict[str, Any]], defender: DefenderMock) -> None:
    defender.action_polls = 3
    step = act("defender.isolate_machine", {"hostname": "ws-alice-01"})
    assert step["status"] == "succeeded", step["error"]
    output = step["output"]
    assert output | {"isolated": True, "isolation_type": "Full", "changed": True,
                     "action_status": "Succeeded", "machine_id": ALICE} == output
    assert defender.machines[ALICE].isolated
    [post] = posts(defender, "isolate")
    assert set(post.json) == {"Comment", "IsolationType"}
    assert post.json["IsolationType"] == "Full"
    assert post.json["Comment"].startswith("isolate [crownguard run ")
    polls = defender.calls_to("GET", f"/api/machineactions/{output['action_id']}")
    assert len(polls) == 3

    again = act("defender.isolate_machine", {"machine_id": ALICE, "isolation_type": "Selective"})
    assert again["status"] == "succeeded", again["error"]
    assert again["output"]["changed"] is False
    assert again["output"]["isolation_type"] == "Full"  # the isolation in force
    assert again["output"]["action_id"] == output["action_id"]
    assert len(posts(defender, "isolate")) == 1


def test_isolate_selective_with_a_comment(act: Callable[..., dict[str, Any]],
                                          defender: DefenderMock) -> None:
    step = act("defender.isolate_machine", {"machine_id": BOB, "isolation_type": "Selective",
                                            "comment": "INC-4711 model exfiltration"})
    assert step["status"] == "succeeded", step["error"]
    assert step["output"]["isolation_type"] == "Selective"
    [post] = posts(defender, "isolate")
    assert post.json["IsolationType"] == "Selective"
    assert post.json["Comment"].startswith("INC-4711 model exfiltration [crownguard run ")
    assert defender.machines[BOB].isolation_type == "Selective"


def test_isolate_a_machine_isolated_from_the_portal_is_unchanged(
        act: Callable[..., dict[str, Any]], defender: DefenderMock) -> None:
    defender.isolate_now(ALICE)
    step = act("defender.isolate_machine", {"machine_id": ALICE})
    assert step["output"]["changed"] is False
    assert posts(defender, "isolate") == []


def test_isolate_waits_for_someone_elses_pending_isolation(act: Callable[..., dict[str, Any]],
                                                           defender: DefenderMock) -> None:
    pending = defender.start_action(ALICE, "Isolate", scope="Full")
    step = act("defender.isolate_machine", {"machine_id": ALICE})
    assert step["status"] == "succeeded", step["error"]
    assert step["output"]["changed"] is False
    assert step["output"]["action_id"] == pending.id
    assert defender.machines[ALICE].isolated
    assert posts(defender, "isolate") == []


def test_isolate_rejected_as_already_in_progress_adopts_the_running_action(
        act: Callable[..., dict[str, Any]], defender: DefenderMock) -> None:
    pending = defender.start_action(ALICE, "Isolate", scope="Full")
    # The plugin's first look sees no isolation yet (it raced the other request).
    defender.inject("status", status=200, method="GET", path="/api/machineactions",
                    body={"value": []})
    step = act("defender.isolate_machine", {"machine_id": ALICE})
    assert step["status"] == "succeeded", step["error"]
    assert len(posts(defender, "isolate")) == 1  # answered 400 ActiveRequestAlreadyExists
    assert step["output"]["changed"] is False
    assert step["output"]["action_id"] == pending.id


def test_isolate_lets_a_pending_release_land_first(act: Callable[..., dict[str, Any]],
                                                   defender: DefenderMock) -> None:
    defender.isolate_now(ALICE)
    defender.start_action(ALICE, "Unisolate")
    step = act("defender.isolate_machine", {"machine_id": ALICE})
    assert step["status"] == "succeeded", step["error"]
    assert step["output"]["changed"] is True
    assert defender.machines[ALICE].isolated


def test_a_failed_isolation_fails_the_step_and_a_rerun_submits_anew(
        act: Callable[..., dict[str, Any]], defender: DefenderMock) -> None:
    defender.fail_next("Isolate")
    failed = act("defender.isolate_machine", {"machine_id": ALICE})
    assert failed["status"] == "failed"
    assert "ended Failed" in failed["error"]
    assert failed["attempts"] == 1
    assert not defender.machines[ALICE].isolated
    rerun = act("defender.isolate_machine", {"machine_id": ALICE})
    assert rerun["status"] == "succeeded", rerun["error"]
    assert rerun["output"]["changed"] is True
    assert len(posts(defender, "isolate")) == 2


def test_release_and_its_repeat(act: Callable[..., dict[str, Any]],
                                defender: DefenderMock) -> None:
    defender.isolate_now(ALICE)
    step = act("defender.release_machine", {"machine_id": ALICE})
    assert step["status"] == "succeeded", step["error"]
    assert step["output"] | {"isolated": False, "changed": True} == step["output"]
    assert not defender.machines[ALICE].isolated
    assert set(posts(defender, "unisolate")[0].json) == {"Comment"}
    again = act("defender.release_machine", {"machine_id": ALICE})
    assert again["output"]["changed"] is False
    assert len(posts(defender, "unisolate")) == 1


def test_release_a_machine_never_isolated_does_nothing(act: Callable[..., dict[str, Any]],
                                                       defender: DefenderMock) -> None:
    step = act("defender.release_machine", {"machine_id": BOB})
    assert step["status"] == "succeeded", step["error"]
    assert step["output"] | {"changed": False, "action_id": None} == step["output"]
    assert posts(defender, "unisolate") == []


# --- quarantine_file ---------------------------------------------------------------------------


def test_quarantine_by_sha256_resolves_the_sha1_then_repeats_unchanged(
        act: Callable[..., dict[str, Any]], defender: DefenderMock) -> None:
    sha1, sha256 = model_sha(defender)
    step = act("defender.quarantine_file", {"hostname": "ws-alice-01", "sha256": sha256.upper()})
    assert step["status"] == "succeeded", step["error"]
    output = step["output"]
    assert output | {"sha1": sha1, "sha256": sha256, "changed": True,
                     "action_status": "Succeeded"} == output
    assert defender.calls_to("GET", f"/api/files/{sha256}")
    [post] = posts(defender, "StopAndQuarantineFile")
    assert post.json["Sha1"] == sha1
    assert set(post.json) == {"Comment", "Sha1"}
    assert sha1 in defender.machines[ALICE].quarantined

    again = act("defender.quarantine_file", {"machine_id": ALICE, "sha1": sha1})
    assert again["output"]["changed"] is False
    assert again["output"]["action_id"] == output["action_id"]
    assert len(posts(defender, "StopAndQuarantineFile")) == 1


def test_quarantine_by_sha1_needs_no_file_lookup(act: Callable[..., dict[str, Any]],
                                                 defender: DefenderMock) -> None:
    sha1, _ = model_sha(defender)
    step = act("defender.quarantine_file", {"machine_id": ALICE, "sha1": sha1})
    assert step["status"] == "succeeded", step["error"]
    assert defender.calls_to("GET", "/api/files/{file_id}") == []


def test_quarantine_of_another_file_is_a_new_action(act: Callable[..., dict[str, Any]],
                                                    defender: DefenderMock) -> None:
    first = defender.add_file(ALICE, b"weights one", "one.gguf")
    second = defender.add_file(ALICE, b"weights two", "two.gguf")
    assert act("defender.quarantine_file", {"machine_id": ALICE, "sha1": first.sha1}
               )["output"]["changed"] is True
    assert act("defender.quarantine_file", {"machine_id": ALICE, "sha1": second.sha1}
               )["output"]["changed"] is True


def test_quarantine_unknown_sha256_is_not_found(act: Callable[..., dict[str, Any]],
                                                defender: DefenderMock) -> None:
    step = act("defender.quarantine_file", {"machine_id": ALICE, "sha256": "b" * 64})
    assert step["status"] == "failed"
    assert "defender get file (HTTP 404)" in step["error"]
    assert posts(defender, "StopAndQuarantineFile") == []


def test_quarantine_needs_a_hash(act: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(SpecError):
        act("defender.quarantine_file", {"machine_id": ALICE})


# --- a playbook --------------------------------------------------------------------------------

PLAYBOOK = """
name: defender-isolate-and-quarantine
steps:
  - id: find
    action: defender.find_machine
    with: {hostname: "${{ event.device.hostname }}"}
    retry: {max_attempts: 3, backoff_seconds: 0.01}
  - id: isolate
    action: defender.isolate_machine
    needs: [find]
    with: {machine_id: "${{ steps.find.output.machine_id }}"}
    retry: {max_attempts: 3, backoff_seconds: 0.01}
    timeout_seconds: 30
  - id: quarantine
    action: defender.quarantine_file
    needs: [find]
    with:
      machine_id: "${{ steps.find.output.machine_id }}"
      sha256: "${{ event.file.sha256 }}"
    retry: {max_attempts: 3, backoff_seconds: 0.01}
    timeout_seconds: 30
"""


def test_playbook_isolates_and_quarantines(defender: DefenderMock, host: Any,
                                           crownguard_config: Callable[..., Any],
                                           run_playbook: Callable[..., dict[str, Any]]) -> None:
    sha1, sha256 = model_sha(defender)
    config = crownguard_config({"defender": defender.connection_settings()}, host=host)
    record = run_playbook(PLAYBOOK, {"device": {"hostname": "ws-alice-01"},
                                     "file": {"sha256": sha256}}, config=config, host=host)
    assert record["status"] == "succeeded", record
    assert record["steps"]["isolate"]["output"]["isolated"] is True
    assert record["steps"]["quarantine"]["output"]["sha1"] == sha1
    assert defender.machines[ALICE].isolated
    assert sha1 in defender.machines[ALICE].quarantined
    assert len(defender.calls_to("POST", f"/{defender.tenant_id}/oauth2/v2.0/token")) == 1
