"""The mlflow plugin against its mock: auth flavours, paging, MLflow's own errors (the faults
every vendor shares, token refresh and secrets are in test_conformance.py).

What a real MLflow server does is checked in test_mlflow_server.py; here are the things a real
server does not do on demand (429, 5xx, malformed bodies, expiring OAuth tokens, the pre-3.17
auth API).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

import crownguard.plugins.mlflow as mlflow_plugin
from crownguard.engine import SpecError
from crownguard.engine.plugins import PluginHost
from crownguard.plugins.mlflow.mock import MlflowMock
from crownguard.plugins.mlflow.record import MARK_TAG, REASON_TAG, RECORD_TAG, RUN_TAG

FILES = {"weights.safetensors": b"\x00weights" * 100, "config.json": b'{"layers": 2}',
         "tokenizer/vocab.txt": b"a\nb\nc\n"}

Run = Callable[..., dict[str, Any]]


@pytest.fixture
def host(isolated_host: Callable[..., PluginHost]) -> PluginHost:
    return isolated_host(mlflow_plugin, name="mlflow")


@pytest.fixture
def start(mock_server: Callable[..., Any]) -> Callable[..., MlflowMock]:
    def make(**kwargs: Any) -> MlflowMock:
        mock = mock_server(MlflowMock, **kwargs)
        assert isinstance(mock, MlflowMock)
        mock.add_version("fraud", FILES, aliases=("champion", "prod"))
        mock.add_version("fraud", {"weights.bin": b"v2"}, aliases=("challenger",))
        return mock

    return make


@pytest.fixture
def call(host: PluginHost, mock_config: Callable[..., Any],
         run_step: Run) -> Callable[..., dict[str, Any]]:
    """Run one action as a one-step playbook; returns that step's record (plus the run's)."""

    def run(mock: MlflowMock, action: str, inputs: dict[str, Any], *,
            settings: dict[str, Any] | None = None, events: list[Any] | None = None,
            attempts: int = 3) -> dict[str, Any]:
        config = mock_config("mlflow", settings or mock, host=host)
        return run_step(action, inputs, config=config, host=host, events=events,
                        attempts=attempts)

    return run


# --- reading -----------------------------------------------------------------------------------


def test_get_model_version_by_number_and_by_alias(start: Callable[..., MlflowMock],
                                                   call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    by_number = call(mock, "mlflow.get_model_version", {"name": "fraud", "version": 1})
    assert by_number["status"] == "succeeded", by_number["error"]
    assert by_number["output"]["aliases"] == ["champion", "prod"]
    assert by_number["output"]["quarantined"] is False
    by_alias = call(mock, "mlflow.get_model_version", {"name": "fraud", "alias": "challenger"})
    assert by_alias["output"]["version"] == "2"


def test_unknown_version_and_alias_are_not_found(start: Callable[..., MlflowMock],
                                                 call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    missing = call(mock, "mlflow.get_model_version", {"name": "fraud", "version": "9"})
    assert missing["status"] == "failed" and missing["attempts"] == 1
    assert "mlflow get model version (HTTP 404)" in missing["error"]
    assert "RESOURCE_DOES_NOT_EXIST" in missing["error"]
    no_alias = call(mock, "mlflow.get_model_version", {"name": "fraud", "alias": "nope"})
    assert "has no alias 'nope'" in no_alias["error"] and no_alias["attempts"] == 1


def test_version_and_alias_are_exclusive(start: Callable[..., MlflowMock],
                                         call: Callable[..., dict[str, Any]]) -> None:
    # Caught when the playbook is validated, before anything runs.
    with pytest.raises(SpecError, match="is valid under each of"):
        call(start(), "mlflow.get_model_version",
             {"name": "fraud", "version": "1", "alias": "prod"})


def test_list_model_versions_follows_every_page(start: Callable[..., MlflowMock],
                                                call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    for _ in range(3):
        mock.add_version("fraud")
    mock.add_version("other")
    settings = {**mock.connection_settings(), "page_size": 2}
    result = call(mock, "mlflow.list_model_versions", {"name": "fraud"}, settings=settings)
    assert result["status"] == "succeeded", result["error"]
    assert sorted(v["version"] for v in result["output"]["versions"]) == ["1", "2", "3", "4", "5"]
    assert result["output"]["truncated"] is False
    searches = mock.calls_to("GET", "/api/2.0/mlflow/model-versions/search")
    assert len(searches) == 3
    assert [c.arg("page_token") is None for c in searches] == [True, False, False]
    assert all(c.arg("filter") == "name = 'fraud'" for c in searches)


def test_list_model_versions_stops_at_the_limit(start: Callable[..., MlflowMock],
                                                call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    for _ in range(4):
        mock.add_version("fraud")
    settings = {**mock.connection_settings(), "page_size": 2}
    result = call(mock, "mlflow.list_model_versions", {"limit": 3}, settings=settings)
    assert result["output"]["count"] == 3 and result["output"]["truncated"] is True
    assert len(mock.calls_to("GET", "/api/2.0/mlflow/model-versions/search")) == 2


# --- quarantine and release --------------------------------------------------------------------


def test_quarantine_release_and_their_repeats(start: Callable[..., MlflowMock],
                                              call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    first = call(mock, "mlflow.quarantine_model_version",
                 {"name": "fraud", "version": "1", "reason": "copied to USB"})
    assert first["status"] == "succeeded", first["error"]
    out = first["output"]
    assert out["changed"] is True and out["aliases_removed"] == ["champion", "prod"]
    assert mock.aliases("fraud") == {"challenger": "2"}
    tags = mock.version("fraud", "1")["tags"]
    assert tags[MARK_TAG] == "true" and tags[REASON_TAG] == "copied to USB"
    assert tags[RUN_TAG] == first["run"]["run_id"]
    assert json.loads(tags[RECORD_TAG])["aliases"] == ["champion", "prod"]

    again = call(mock, "mlflow.quarantine_model_version",
                 {"name": "fraud", "version": "1", "reason": "second alert"})
    assert again["output"]["changed"] is False and again["output"]["already_quarantined"] is True
    # The first run keeps the record: a second incident does not overwrite who and why.
    assert again["output"]["record"]["run_id"] == first["run"]["run_id"]
    assert mock.version("fraud", "1")["tags"][REASON_TAG] == "copied to USB"

    seen = call(mock, "mlflow.get_model_version", {"name": "fraud", "version": "1"})["output"]
    assert seen["quarantined"] is True and seen["quarantine"]["aliases"] == ["champion", "prod"]

    released = call(mock, "mlflow.release_model_version", {"name": "fraud", "version": "1"})
    assert released["output"]["changed"] is True
    assert released["output"]["aliases_restored"] == ["champion", "prod"]
    assert mock.aliases("fraud") == {"champion": "1", "prod": "1", "challenger": "2"}
    assert mock.version("fraud", "1")["tags"] == {}

    repeat = call(mock, "mlflow.release_model_version", {"name": "fraud", "version": "1"})
    assert repeat["output"] == {**repeat["output"], "changed": False, "released": False}


def test_a_retried_quarantine_keeps_the_first_attempts_record(
        start: Callable[..., MlflowMock], call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    # The first attempt tags the version and removes one alias, then the server fails.
    alias_path = "/api/2.0/mlflow/registered-models/alias"
    mock.inject("latency", seconds=0, path=alias_path, method="DELETE", times=1)
    mock.inject("status", status=503, path=alias_path, method="DELETE", times=1)
    result = call(mock, "mlflow.quarantine_model_version", {"name": "fraud", "version": "1"})
    assert result["status"] == "succeeded" and result["attempts"] == 2
    assert result["output"]["aliases_removed"] == ["prod"]  # what was left for the retry
    # What the first attempt removed is still in the record, so release restores it too.
    assert result["output"]["record"]["aliases"] == ["champion", "prod"]
    call(mock, "mlflow.release_model_version", {"name": "fraud", "version": "1"})
    assert mock.aliases("fraud") == {"champion": "1", "prod": "1", "challenger": "2"}


def test_release_leaves_an_alias_someone_moved(start: Callable[..., MlflowMock],
                                               call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    call(mock, "mlflow.quarantine_model_version", {"name": "fraud", "version": "1"})
    mock.models["fraud"]["aliases"]["champion"] = "2"  # promoted during the case
    released = call(mock, "mlflow.release_model_version", {"name": "fraud", "version": "1"})
    assert released["output"]["aliases_restored"] == ["prod"]
    assert released["output"]["aliases_skipped"] == [{"alias": "champion", "points_to": "2"}]
    assert mock.aliases("fraud")["champion"] == "2"

    call(mock, "mlflow.quarantine_model_version", {"name": "fraud", "version": "1"})
    mock.models["fraud"]["aliases"]["prod"] = "2"
    moved = call(mock, "mlflow.release_model_version",
                 {"name": "fraud", "version": "1", "move_aliases": True})
    assert moved["output"]["aliases_restored"] == ["prod"]
    assert mock.aliases("fraud")["prod"] == "1"


def test_a_damaged_record_fails_release_clearly(start: Callable[..., MlflowMock],
                                                call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    mock.models["fraud"]["versions"]["1"]["tags"][RECORD_TAG] = "{not json"
    released = call(mock, "mlflow.release_model_version", {"name": "fraud", "version": "1"})
    assert released["status"] == "failed" and released["attempts"] == 1
    assert "crownguard.quarantine.record is damaged" in released["error"]
    read = call(mock, "mlflow.get_model_version", {"name": "fraud", "version": "1"})
    assert read["status"] == "succeeded" and read["output"]["quarantine"] is None


@pytest.mark.parametrize("api, blocked", [("v3", "DENY"), ("legacy", "NO_PERMISSIONS")])
def test_user_access_taken_and_given_back(start: Callable[..., MlflowMock],
                                          call: Callable[..., dict[str, Any]],
                                          api: str, blocked: str) -> None:
    mock = start(auth="basic", auth_api=api)
    mock.add_user("alice@example.com", "alice-pw")
    mock.add_user("bob", "bob-pw")
    mock.grants[("alice@example.com", "fraud")] = "EDIT"

    alice = call(mock, "mlflow.quarantine_model_version",
                 {"name": "fraud", "version": "1", "user": "alice@example.com"})
    assert alice["status"] == "succeeded", alice["error"]
    assert alice["output"]["access"] == {
        "user": "alice@example.com", "api": api, "status": "revoked", "changed": True,
        "permission": blocked, "effective": blocked, "is_admin": False}
    assert mock.grants[("alice@example.com", "fraud")] == blocked
    bob = call(mock, "mlflow.quarantine_model_version",
               {"name": "fraud", "version": "1", "user": "bob"})
    assert bob["output"]["changed"] is True and mock.grants[("bob", "fraud")] == blocked
    again = call(mock, "mlflow.quarantine_model_version",
                 {"name": "fraud", "version": "1", "user": "bob"})
    assert again["output"]["changed"] is False
    assert again["output"]["access"]["status"] == "already_revoked"
    record = again["output"]["record"]["access"]
    assert record == [{"user": "alice@example.com", "api": api, "previous": "EDIT"},
                      {"user": "bob", "api": api, "previous": None}]

    released = call(mock, "mlflow.release_model_version", {"name": "fraud", "version": "1"})
    assert released["status"] == "succeeded", released["error"]
    assert mock.grants == {("alice@example.com", "fraud"): "EDIT"}
    assert [a["user"] for a in released["output"]["access_restored"]] == [
        "alice@example.com", "bob"]


def test_a_permission_changed_during_the_case_is_left_alone(
        start: Callable[..., MlflowMock], call: Callable[..., dict[str, Any]]) -> None:
    mock = start(auth="basic")
    mock.add_user("alice", "alice-pw")
    call(mock, "mlflow.quarantine_model_version", {"name": "fraud", "version": "1",
                                                   "user": "alice"})
    mock.grants[("alice", "fraud")] = "READ"  # an admin decided in the meantime
    released = call(mock, "mlflow.release_model_version", {"name": "fraud", "version": "1"})
    assert released["output"]["access_skipped"] == [{
        "user": "alice", "permission": "READ",
        "reason": "the permission was changed during quarantine; left as it is"}]
    assert mock.grants[("alice", "fraud")] == "READ"


def test_an_admin_user_is_reported_not_claimed_locked_out(
        start: Callable[..., MlflowMock], call: Callable[..., dict[str, Any]]) -> None:
    mock = start(auth="basic")
    mock.add_user("root2", "pw", is_admin=True)
    result = call(mock, "mlflow.quarantine_model_version",
                  {"name": "fraud", "version": "1", "user": "root2"})
    assert result["output"]["access"]["is_admin"] is True
    assert result["output"]["access"]["effective"] == "ADMIN"


def test_user_on_a_server_without_the_auth_app(start: Callable[..., MlflowMock],
                                               call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    result = call(mock, "mlflow.quarantine_model_version",
                  {"name": "fraud", "version": "1", "user": "alice"})
    assert result["status"] == "succeeded", result["error"]
    assert result["output"]["access"]["status"] == "auth_app_not_enabled"
    assert result["output"]["record"]["access"] == []


def test_unknown_user_is_not_found_before_anything_changes(
        start: Callable[..., MlflowMock], call: Callable[..., dict[str, Any]]) -> None:
    mock = start(auth="basic")
    result = call(mock, "mlflow.quarantine_model_version",
                  {"name": "fraud", "version": "1", "user": "mallory"})
    assert result["status"] == "failed" and result["attempts"] == 1
    assert "mlflow get auth user (HTTP 404)" in result["error"] and "mallory" in result["error"]
    assert mock.aliases("fraud")["champion"] == "1" and mock.version("fraud", "1")["tags"] == {}


# --- files -------------------------------------------------------------------------------------


def test_list_model_files_hashes_each_file_once(start: Callable[..., MlflowMock],
                                                call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    result = call(mock, "mlflow.list_model_files", {"name": "fraud", "version": "1"})
    assert result["status"] == "succeeded", result["error"]
    assert result["output"]["files"] == [
        {"path": p, "size": len(c), "sha256": hashlib.sha256(c).hexdigest()}
        for p, c in sorted(FILES.items())]
    assert result["output"]["total_bytes"] == sum(len(c) for c in FILES.values())
    downloads = [c.path for c in mock.calls if c.path.startswith(
        "/api/2.0/mlflow-artifacts/artifacts/")]
    assert sorted(downloads) == sorted(set(downloads)) and len(downloads) == 3


def test_a_model_file_larger_than_max_response_bytes_is_still_hashed(
        start: Callable[..., MlflowMock], call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    weights = bytes(range(256)) * 12_000  # ~3 MB, over a 1 MB answer limit: streamed, not held
    mock.add_version("big", {"model.safetensors": weights})
    settings = {**mock.connection_settings(), "max_response_bytes": 1_000_000}
    result = call(mock, "mlflow.list_model_files", {"name": "big", "version": "1"},
                  settings=settings)
    assert result["status"] == "succeeded", result["error"]
    assert result["output"]["files"] == [{"path": "model.safetensors", "size": len(weights),
                                          "sha256": hashlib.sha256(weights).hexdigest()}]
    # The limit still holds for the JSON answers around it.
    mock.add_version("big", {"a" * 40 + str(i): b"x" for i in range(40_000)})
    listed = call(mock, "mlflow.list_model_files", {"name": "big", "version": "2"},
                  settings=settings, attempts=1)
    assert listed["status"] == "failed" and "max_response_bytes" in listed["error"]


def test_list_model_files_refuses_a_store_the_server_does_not_proxy(
        start: Callable[..., MlflowMock], call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    mock.models["fraud"]["versions"]["1"]["source"] = "s3://bucket/models/fraud?X-Amz-Sig=abc"
    result = call(mock, "mlflow.list_model_files", {"name": "fraud", "version": "1"})
    assert result["status"] == "failed" and "'s3' store" in result["error"]
    assert "X-Amz-Sig" not in result["error"]


def test_a_malformed_listing_is_a_bad_response(start: Callable[..., MlflowMock],
                                               call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    mock.inject("malformed", path="/api/2.0/mlflow-artifacts/artifacts", times=None)
    broken = call(mock, "mlflow.list_model_files", {"name": "fraud", "version": "1"})
    assert broken["status"] == "failed" and broken["attempts"] == 1
    assert "mlflow list model artifacts (HTTP 200): the vendor's answer is not valid JSON" \
        in broken["error"]


def test_a_download_that_does_not_match_the_listing_fails(
        start: Callable[..., MlflowMock], call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    listing = mock.list_artifacts

    def stale(request: Any) -> Any:
        body = listing(request)
        for entry in body.get("files", []):
            if entry["path"] == "config.json":
                entry["file_size"] = 999
        return body

    mock.list_artifacts = stale
    result = call(mock, "mlflow.list_model_files", {"name": "fraud", "version": "1"})
    assert result["status"] == "failed"
    assert "config.json is listed with 999 bytes but 13 arrived" in result["error"]


# --- errors only this vendor has (the shared ones: test_conformance.py) --------------------------


def test_missing_permission_is_a_403_auth_error(start: Callable[..., MlflowMock],
                                                call: Callable[..., dict[str, Any]]) -> None:
    mock = start(auth="basic")
    mock.add_user("reader", "reader-pw")  # default permission READ: may look, not change
    settings = {**mock.connection_settings(), "username": "reader", "password": "reader-pw"}
    result = call(mock, "mlflow.quarantine_model_version", {"name": "fraud", "version": "1"},
                  settings=settings)
    assert result["status"] == "failed" and result["attempts"] == 1
    assert "mlflow tag model version (HTTP 403): Permission denied" in result["error"]
    assert "lack a permission" in result["error"]
    assert mock.aliases("fraud")["champion"] == "1"


def test_two_ways_to_authenticate_is_a_config_error(
        start: Callable[..., MlflowMock], call: Callable[..., dict[str, Any]]) -> None:
    mock = start(auth="token")
    settings = {**mock.connection_settings(), "username": "u", "password": "p-1234"}
    result = call(mock, "mlflow.get_model_version", {"name": "fraud", "version": "1"},
                  settings=settings)
    assert result["status"] == "failed"
    assert "gives username/password and token: choose one" in result["error"]


def test_a_password_without_a_username_is_rejected_with_the_config(
        host: PluginHost, crownguard_config: Callable[..., Any]) -> None:
    with pytest.raises(SpecError, match="'username' is a dependency of 'password'"):
        crownguard_config({"mlflow": {"base_url": "http://127.0.0.1:1", "password": "x"}},
                          host=host)


# --- a playbook end to end ---------------------------------------------------------------------


def test_a_playbook_quarantines_fingerprints_and_releases(
        start: Callable[..., MlflowMock], host: PluginHost,
        crownguard_config: Callable[..., Any], run_playbook: Run) -> None:
    mock = start(auth="basic")
    mock.add_user("leaver@example.com", "pw-leaver")
    mock.grants[("leaver@example.com", "fraud")] = "EDIT"
    config = crownguard_config({"mlflow": mock.connection_settings()}, host=host)
    text = """
name: contain-leaked-model
steps:
  - id: find
    action: mlflow.get_model_version
    with: {name: "${{ event.model.name }}", alias: "${{ event.model.alias }}"}
  - id: quarantine
    action: mlflow.quarantine_model_version
    needs: [find]
    with:
      name: "${{ event.model.name }}"
      version: "${{ steps.find.output.version }}"
      reason: "Model exfiltration by ${{ event.actor.email }}"
      user: "${{ event.actor.email }}"
  - id: fingerprint
    action: mlflow.list_model_files
    needs: [find]
    with: {name: "${{ event.model.name }}", version: "${{ steps.find.output.version }}"}
"""
    event = {"model": {"name": "fraud", "alias": "champion"},
             "actor": {"email": "leaver@example.com"}}
    record = run_playbook(text, event, config=config, host=host)
    assert record["status"] == "succeeded", record
    assert record["steps"]["quarantine"]["output"]["aliases_removed"] == ["champion", "prod"]
    assert mock.grants[("leaver@example.com", "fraud")] == "DENY"
    assert record["steps"]["fingerprint"]["output"]["count"] == 3
    # Someone points the alias back during the case and the alert fires again: only that is
    # undone again, and the user's access (already DENY) is left as it is.
    mock.models["fraud"]["aliases"]["champion"] = "1"
    again = run_playbook(text, event, config=config, host=host)
    assert again["steps"]["quarantine"]["output"]["aliases_removed"] == ["champion"]
    assert again["steps"]["quarantine"]["output"]["access"]["changed"] is False


def test_list_model_files_waits_for_registration(start: Callable[..., MlflowMock],
                                                 call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    pending = mock.add_version("fraud", {"w.bin": b"late"}, pending_polls=2)
    settings = {**mock.connection_settings(), "poll_interval_seconds": 0.01}
    result = call(mock, "mlflow.list_model_files", {"name": "fraud", "version": pending},
                  settings=settings)
    assert result["status"] == "succeeded", result["error"]
    assert result["output"]["count"] == 1
    assert len(mock.calls_to("GET", "/api/2.0/mlflow/model-versions/get")) == 3

    failed = mock.add_version("fraud", {"w.bin": b"x"}, status="FAILED_REGISTRATION")
    mock.models["fraud"]["versions"][failed]["status_message"] = "copy failed"
    broken = call(mock, "mlflow.list_model_files", {"name": "fraud", "version": failed},
                  settings=settings)
    assert broken["status"] == "failed" and broken["attempts"] == 1
    assert f"version {failed} of 'fraud' failed registration: copy failed" in broken["error"]

    stuck = mock.add_version("fraud", {"w.bin": b"x"}, pending_polls=1000)
    slow = call(mock, "mlflow.list_model_files", {"name": "fraud", "version": stuck},
                settings={**settings, "max_wait_seconds": 0.05})
    assert "still PENDING_REGISTRATION after 0.05s" in slow["error"]


def test_the_record_is_the_first_tag_on_and_the_last_off(
        start: Callable[..., MlflowMock], call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    call(mock, "mlflow.quarantine_model_version", {"name": "fraud", "version": "1"})
    set_keys = [c.json["key"] for c in mock.calls_to(
        "POST", "/api/2.0/mlflow/model-versions/set-tag")]
    assert set_keys == [RECORD_TAG, RUN_TAG, REASON_TAG, MARK_TAG]
    # A release interrupted after its first tag removal is finished by a plain retry.
    mock.inject("latency", seconds=0, path="/api/2.0/mlflow/model-versions/delete-tag", times=1)
    mock.inject("status", status=503, path="/api/2.0/mlflow/model-versions/delete-tag", times=1)
    released = call(mock, "mlflow.release_model_version", {"name": "fraud", "version": "1"})
    assert released["status"] == "succeeded" and released["attempts"] == 2
    deleted = [c.json["key"] for c in mock.calls_to(
        "DELETE", "/api/2.0/mlflow/model-versions/delete-tag")]
    assert deleted[0] == MARK_TAG and deleted[-1] == RECORD_TAG
    assert mock.version("fraud", "1")["tags"] == {}
    # Tags left without a record (a quarantine cut short by hand) are cleaned up too.
    mock.models["fraud"]["versions"]["1"]["tags"][MARK_TAG] = "true"
    cleaned = call(mock, "mlflow.release_model_version", {"name": "fraud", "version": "1"})
    assert cleaned["output"]["changed"] is True and cleaned["output"]["released"] is False
    assert mock.version("fraud", "1")["tags"] == {}


def test_a_registry_is_fingerprinted_with_for_each(
        start: Callable[..., MlflowMock], host: PluginHost,
        crownguard_config: Callable[..., Any], run_playbook: Run) -> None:
    mock = start()
    config = crownguard_config({"mlflow": {**mock.connection_settings(), "page_size": 1}},
                               host=host)
    record = run_playbook("""
name: fingerprint-registry
steps:
  - id: versions
    action: mlflow.list_model_versions
    with: {}
  - id: files
    action: mlflow.list_model_files
    needs: [versions]
    for_each: "${{ steps.versions.output.versions }}"
    with: {name: "${{ item.name }}", version: "${{ item.version }}"}
""", {}, config=config, host=host)
    assert record["status"] == "succeeded", record
    hashes = {(o["name"], o["version"]): sorted(f["sha256"] for f in o["files"])
              for o in record["steps"]["files"]["output"]}
    assert hashes == {
        ("fraud", "1"): sorted(hashlib.sha256(c).hexdigest() for c in FILES.values()),
        ("fraud", "2"): [hashlib.sha256(b"v2").hexdigest()]}


def test_a_retry_after_a_lost_answer_still_reports_the_change(
        start: Callable[..., MlflowMock], call: Callable[..., dict[str, Any]]) -> None:
    mock = start()
    delete_alias = mock.delete_alias

    def applied_then_slow(request: Any) -> Any:
        answer = delete_alias(request)
        if (request.get_json(silent=True) or {}).get("alias") == "prod":
            time.sleep(0.5)  # under the mock's lock: the retry waits for the change to land
        return answer

    mock.delete_alias = applied_then_slow
    settings = {**mock.connection_settings(), "timeout_seconds": 0.4}
    result = call(mock, "mlflow.quarantine_model_version", {"name": "fraud", "version": "1"},
                  settings=settings, attempts=5)
    assert result["status"] == "succeeded" and result["attempts"] >= 2
    # The last attempt found nothing left to do, but the step did change the version.
    assert result["output"]["aliases_removed"] == []
    assert result["output"]["changed"] is True
    assert result["output"]["already_quarantined"] is False


def test_a_databricks_style_missing_endpoint_means_no_auth_app(
        start: Callable[..., MlflowMock], call: Callable[..., dict[str, Any]]) -> None:
    mock = start(auth="token")
    mock.inject("status", status=404, path="/api/2.0/mlflow/users/get", times=None,
                body={"error_code": "ENDPOINT_NOT_FOUND", "message": "No API found"})
    result = call(mock, "mlflow.quarantine_model_version",
                  {"name": "fraud", "version": "1", "user": "alice"})
    assert result["status"] == "succeeded", result["error"]
    assert result["output"]["access"]["status"] == "auth_app_not_enabled"
