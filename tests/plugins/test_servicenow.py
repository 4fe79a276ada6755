"""The servicenow plugin against its stateful mock: every action, idempotency, exactly one case
per incident under retries and resumes, its own error classes, paging, OAuth grants (the
faults every vendor shares are in test_conformance.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import crownguard.plugins.servicenow as servicenow_plugin
from crownguard.engine import Config
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.spec import parse_playbook
from crownguard.plugins.servicenow.mock import INTEGRATION_USER, ServiceNowMock

FAST_RETRY = {"max_attempts": 3, "backoff_seconds": 0.01}


def playbook(*steps: dict[str, Any]) -> str:
    """Playbook text (JSON is YAML) with the given steps."""
    return json.dumps({"name": "servicenow-test", "steps": list(steps)}, indent=1)


def step(action: str, with_: dict[str, Any], *, id: str = "s", retry: dict[str, Any] | None
         = None, **extra: Any) -> dict[str, Any]:
    return {"id": id, "action": f"servicenow.{action}", "with": with_,
            "retry": retry or FAST_RETRY, **extra}


@pytest.fixture
def sn(mock_server: Callable[..., Any]) -> ServiceNowMock:
    server = mock_server(ServiceNowMock)
    assert isinstance(server, ServiceNowMock)
    return server


@pytest.fixture
def host(isolated_host: Callable[..., PluginHost]) -> PluginHost:
    return isolated_host(servicenow_plugin, name="servicenow")


@pytest.fixture
def config(crownguard_config: Callable[..., Config], host: PluginHost,
           sn: ServiceNowMock) -> Callable[..., Config]:
    def make(auth: str = "basic", **overrides: Any) -> Config:
        return crownguard_config({"servicenow": {**sn.connection_settings(auth), **overrides}},
                                 host=host)

    return make


@pytest.fixture
def run(run_playbook: Callable[..., dict[str, Any]], host: PluginHost,
        config: Callable[..., Config]) -> Callable[..., dict[str, Any]]:
    def go(*steps: dict[str, Any], cfg: Config | None = None, **kwargs: Any) -> dict[str, Any]:
        return run_playbook(playbook(*steps), {"id": "alert-1"}, config=cfg or config(),
                            host=host, **kwargs)

    return go


INCIDENT = {"short_description": "Model exfiltration by jane.doe", "caller": "jane.doe",
            "urgency": 1, "impact": 2, "description": "A fine-tuned model left the network."}


# create ----------------------------------------------------------------------------------------


def test_create_incident_stores_one_record_with_correlation(sn: ServiceNowMock,
                                                            run: Callable[..., Any]) -> None:
    record = run(step("create_incident", INCIDENT))
    out = record["steps"]["s"]["output"]
    assert record["status"] == "succeeded", record
    [stored] = sn.records("incident")
    assert out["changed"] is True
    assert out["sys_id"] == stored["sys_id"] and out["number"] == stored["number"] == "INC0010001"
    assert stored["correlation_id"] == out["correlation_id"]
    assert out["correlation_id"].startswith("crownguard-")
    assert stored["short_description"] == INCIDENT["short_description"]
    assert stored["urgency"] == "1" and stored["impact"] == "2"
    jane = next(u for u in sn.records("sys_user") if u["user_name"] == "jane.doe")
    assert stored["caller_id"] == jane["sys_id"]
    assert out["link"].endswith(f"incident.do%3Fsys_id%3D{stored['sys_id']}")


def test_same_incident_key_in_a_second_run_is_not_opened_again(sn: ServiceNowMock,
                                                               run: Callable[..., Any]) -> None:
    inputs = {**INCIDENT, "correlation_id": "alert-42"}
    first = run(step("create_incident", inputs))["steps"]["s"]["output"]
    second = run(step("create_incident", inputs))["steps"]["s"]["output"]
    assert first["changed"] is True and second["changed"] is False
    assert first["sys_id"] == second["sys_id"]
    assert first["correlation_id"] == "crownguard-alert-42"
    assert len(sn.records("incident")) == 1
    lookups = sn.calls_to("GET", "/api/now/table/incident")
    assert lookups[-1].arg("sysparm_query") == \
        "correlation_id=crownguard-alert-42^ORDERBYsys_created_on"


def test_without_a_key_each_run_opens_its_own_record(sn: ServiceNowMock,
                                                     run: Callable[..., Any]) -> None:
    run(step("create_incident", INCIDENT))
    run(step("create_incident", INCIDENT))
    assert len(sn.records("incident")) == 2


def test_create_hr_case_resolves_people_and_accepts_subject(sn: ServiceNowMock,
                                                            run: Callable[..., Any]) -> None:
    record = run(step("create_hr_case", {
        "subject": "Departing engineer copied a model", "subject_person": "jane.doe@example.com",
        "opened_for": "hr.partner", "priority": 2, "work_notes": "Opened by crownguard.",
        "fields": {"u_case_category": "ignored by the instance", "description": "From fields"}}))
    assert record["status"] == "succeeded", record
    [case] = sn.records("sn_hr_core_case")
    users = {u["user_name"]: u["sys_id"] for u in sn.records("sys_user")}
    assert case["number"] == "HRC0001001"
    assert case["short_description"] == "Departing engineer copied a model"
    assert case["subject_person"] == users["jane.doe"]
    assert case["opened_for"] == users["hr.partner"]
    assert case["priority"] == "2" and case["description"] == "From fields"
    assert "u_case_category" not in case
    assert sn.journal(case["sys_id"]) == ["Opened by crownguard."]


def test_opened_for_defaults_to_the_subject_person(sn: ServiceNowMock,
                                                   run: Callable[..., Any]) -> None:
    run(step("create_hr_case", {"short_description": "x", "subject_person": "jane.doe"}))
    [case] = sn.records("sn_hr_core_case")
    assert case["opened_for"] == case["subject_person"] != ""
    assert len(sn.calls_to("GET", "/api/now/table/sys_user")) == 1


def test_unknown_user_fails_with_not_found_and_creates_nothing(sn: ServiceNowMock,
                                                               run: Callable[..., Any]) -> None:
    record = run(step("create_hr_case", {"short_description": "x",
                                         "subject_person": "nobody@example.com"}))
    result = record["steps"]["s"]
    assert result["status"] == "failed"
    assert "servicenow find subject person" in result["error"]
    assert "no sys_user with user_name or email 'nobody@example.com'" in result["error"]
    assert result["attempts"] == 1  # not retryable
    assert sn.records("sn_hr_core_case") == []


# exactly one case per incident: lost answers, retries, resumes ---------------------------------


@pytest.mark.parametrize("action,table", [("create_incident", "incident"),
                                          ("create_hr_case", "sn_hr_core_case")])
def test_a_lost_create_answer_and_the_retry_leave_one_record(
        sn: ServiceNowMock, run: Callable[..., Any], action: str, table: str) -> None:
    sn.lose_response("POST", f"/api/now/table/{table}", status=503)
    record = run(step(action, {"short_description": "Model exfiltration"}))
    result = record["steps"]["s"]
    assert result["status"] == "succeeded", result
    assert result["attempts"] == 2
    assert len(sn.calls_to("POST", f"/api/now/table/{table}")) == 1
    [stored] = sn.records(table)
    assert result["output"]["sys_id"] == stored["sys_id"]
    # The retry found the record this step created: it still reports the change.
    assert result["output"]["changed"] is True


def test_a_create_answer_that_comes_too_late_leaves_one_record(
        sn: ServiceNowMock, run: Callable[..., Any], config: Callable[..., Config]) -> None:
    sn.lose_response("POST", "/api/now/table/incident", delay=1.0)
    record = run(step("create_incident", {"short_description": "x"}),
                 cfg=config(timeout_seconds=0.3))
    result = record["steps"]["s"]
    assert result["status"] == "succeeded", result
    assert result["attempts"] == 2
    assert len(sn.records("incident")) == 1


def test_a_resumed_step_finds_the_record_its_crashed_attempt_created(
        sn: ServiceNowMock, host: PluginHost, config: Callable[..., Config]) -> None:
    events: list[dict[str, Any]] = []
    book = parse_playbook(playbook(step("create_hr_case", {"short_description": "x"},
                                        retry={"max_attempts": 1})), host.actions)
    sn.lose_response("POST", "/api/now/table/sn_hr_core_case", status=502)
    first = Runner(host, config(), journal=events.append).run(book, {"id": "a"}, run_id="r-1")
    assert first["steps"]["s"]["status"] == "failed"
    # The process "died" right after the attempt started: the journal ends there.
    cut = next(i for i, e in enumerate(events) if e["type"] == "step_started") + 1
    started = events[0]
    inputs = {"event": {"id": "a"}, "vars": {}, "risk": {},
              "run": {"id": "r-1", "playbook": book.name, "dry_run": False}}
    assert started["type"] == "run_started"
    resumed = Runner(host, config()).resume(book, "r-1", inputs, events[:cut])
    result = resumed["steps"]["s"]
    assert result["status"] == "succeeded", result
    assert result["output"]["changed"] is True
    assert len(sn.records("sn_hr_core_case")) == 1


# work notes ------------------------------------------------------------------------------------


def _incident(sn: ServiceNowMock, run: Callable[..., Any]) -> dict[str, Any]:
    out: dict[str, Any] = run(step("create_incident", {"short_description": "x"}))["steps"]["s"][
        "output"]
    return out


def test_add_work_note_writes_once_and_repeats_are_unchanged(sn: ServiceNowMock,
                                                            run: Callable[..., Any]) -> None:
    incident = _incident(sn, run)
    note = {"table": "incident", "number": incident["number"], "note": "Host contained.",
            "dedupe_key": "contain-1"}
    first = run(step("add_work_note", note))["steps"]["s"]["output"]
    second = run(step("add_work_note", note))["steps"]["s"]["output"]
    assert first == {"table": "incident", "sys_id": incident["sys_id"],
                     "number": incident["number"], "changed": True}
    assert second["changed"] is False
    assert sn.journal(incident["sys_id"]) == ["Host contained.\n\n[crownguard:contain-1]"]


def test_add_work_note_with_a_lost_answer_is_written_once(sn: ServiceNowMock,
                                                          run: Callable[..., Any]) -> None:
    incident = _incident(sn, run)
    sn.lose_response("PATCH", "/api/now/table/incident/", status=500)
    record = run(step("add_work_note", {"table": "incident", "sys_id": incident["sys_id"],
                                        "note": "Sessions revoked."}))
    result = record["steps"]["s"]
    assert result["status"] == "succeeded" and result["attempts"] == 2
    assert result["output"]["changed"] is True
    [entry] = sn.journal(incident["sys_id"])
    assert entry.startswith("Sessions revoked.\n\n[crownguard:")


def test_add_work_note_to_an_unknown_record_is_not_found(sn: ServiceNowMock,
                                                         run: Callable[..., Any]) -> None:
    record = run(step("add_work_note", {"table": "incident", "sys_id": "0" * 32, "note": "x"}))
    error = record["steps"]["s"]["error"]
    assert "servicenow add work note to incident (HTTP 404): No Record found" in error


# get, find, close ------------------------------------------------------------------------------


def test_get_record_by_number_and_by_sys_id(sn: ServiceNowMock, run: Callable[..., Any]) -> None:
    incident = _incident(sn, run)
    by_number = run(step("get_record", {"table": "incident", "number": incident["number"],
                                        "fields": ["state", "short_description"]}))
    by_id = run(step("get_record", {"table": "incident", "sys_id": incident["sys_id"]}))
    out = by_number["steps"]["s"]["output"]
    assert out["record"] == {"number": incident["number"], "state": "1",
                             "short_description": "x", "sys_id": incident["sys_id"]}
    full = by_id["steps"]["s"]["output"]["record"]
    assert full["sys_id"] == incident["sys_id"] and full["correlation_id"].startswith("crown")


def test_get_record_unknown_number_is_not_found(sn: ServiceNowMock,
                                                run: Callable[..., Any]) -> None:
    record = run(step("get_record", {"table": "incident", "number": "INC0999999"}))
    assert "no incident record with number 'INC0999999'" in record["steps"]["s"]["error"]


def test_find_records_follows_link_pages(sn: ServiceNowMock, run: Callable[..., Any],
                                         config: Callable[..., Config]) -> None:
    for _ in range(5):
        _incident(sn, run)
    before = len(sn.calls_to("GET", "/api/now/table/incident"))
    record = run(step("find_records", {"table": "incident", "query": "active=true^ORDERBYnumber",
                                       "fields": ["number"]}), cfg=config(page_size=2))
    out = record["steps"]["s"]["output"]
    assert [r["number"] for r in out["records"]] == [f"INC00{10001 + i}" for i in range(5)]
    assert out["count"] == 5 and out["truncated"] is False
    pages = sn.calls_to("GET", "/api/now/table/incident")[before:]
    assert [c.arg("sysparm_offset") for c in pages] == ["0", "2", "4"]
    assert all(c.arg("sysparm_query") == "active=true^ORDERBYnumber" for c in pages)


def test_find_records_stops_at_max_records(sn: ServiceNowMock, run: Callable[..., Any],
                                           config: Callable[..., Config]) -> None:
    for _ in range(5):
        _incident(sn, run)
    record = run(step("find_records", {"table": "incident", "query": "", "max_records": 3}),
                 cfg=config(page_size=2))
    out = record["steps"]["s"]["output"]
    assert out["count"] == 3 and out["truncated"] is True and len(out["records"]) == 3


def test_close_record_resolves_an_incident_and_is_idempotent(sn: ServiceNowMock,
                                                             run: Callable[..., Any]) -> None:
    incident = _incident(sn, run)
    close = {"table": "incident", "sys_id": incident["sys_id"], "close_notes": "False alarm."}
    first = run(step("close_record", close))["steps"]["s"]["output"]
    second = run(step("close_record", close))["steps"]["s"]["output"]
    assert first["changed"] is True and first["state"] == "6"
    assert second["changed"] is False
    [stored] = sn.records("incident")
    assert stored["state"] == "6" and stored["close_code"] == "Solution provided"
    assert stored["close_notes"] == "False alarm." and stored["active"] == "false"


def test_close_record_closes_an_hr_case_complete(sn: ServiceNowMock,
                                                 run: Callable[..., Any]) -> None:
    case = run(step("create_hr_case", {"short_description": "x"}))["steps"]["s"]["output"]
    out = run(step("close_record", {"table": case["table"], "sys_id": case["sys_id"]}))[
        "steps"]["s"]["output"]
    assert out["state"] == "3" and out["changed"] is True
    [stored] = sn.records("sn_hr_core_case")
    assert stored["close_notes"] == "Closed by crownguard: the response was undone."


def test_close_record_reports_a_refused_close(sn: ServiceNowMock,
                                              run: Callable[..., Any]) -> None:
    case = run(step("create_hr_case", {"short_description": "x"}))["steps"]["s"]["output"]
    sn.refuse_state_changes("sn_hr_core_case")
    record = run(step("close_record", {"table": case["table"], "sys_id": case["sys_id"]}))
    assert record["steps"]["s"]["status"] == "failed"
    assert "kept state '1' instead of '3'" in record["steps"]["s"]["error"]


def test_create_actions_name_their_undo(host: PluginHost) -> None:
    actions = host.actions
    for name in ("servicenow.create_incident", "servicenow.create_hr_case"):
        assert actions[name].undo == "servicenow.close_record"
        assert actions[name].side_effect is True
    assert actions["servicenow.get_record"].side_effect is False
    for item in actions.values():
        if item.plugin == "servicenow":
            assert item.input_schema.get("additionalProperties") is False
            assert item.output_schema["type"] == "object"
            assert item.retry is not None and item.retry.max_attempts == 3
            if item.side_effect:
                assert "changed" in item.output_schema["required"]


# errors only this vendor has (the shared ones: test_conformance.py) ------------------------------


def test_missing_hr_role_is_a_403_auth_error(sn: ServiceNowMock,
                                             run: Callable[..., Any]) -> None:
    sn.set_roles(INTEGRATION_USER, {"itil"})
    record = run(step("create_hr_case", {"short_description": "x"}))
    error = record["steps"]["s"]["error"]
    assert error.startswith("servicenow create sn_hr_core_case (HTTP 403): Operation Failed: "
                            "ACL Exception Insert Failed")
    assert "lack a permission" in error
    assert sn.records("sn_hr_core_case") == []


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried(sn: ServiceNowMock, run: Callable[..., Any],
                                   status: int) -> None:
    sn.inject("status", status=status, path="/api/now/table/incident", method="GET")
    record = run(step("create_incident", {"short_description": "x"}))
    assert record["steps"]["s"]["status"] == "succeeded"
    assert record["steps"]["s"]["attempts"] == 2
    assert len(sn.records("incident")) == 1


def test_a_list_answer_without_result_is_a_bad_response(sn: ServiceNowMock,
                                                        run: Callable[..., Any]) -> None:
    sn.inject("malformed", path="/api/now/table/incident", body='{"records": []}')
    result = run(step("get_record", {"table": "incident", "number": "INC0010001"}))["steps"]["s"]
    assert "the answer has no 'result'" in result["error"]


def test_unknown_table_is_a_conflict_with_the_instance_message(sn: ServiceNowMock,
                                                               run: Callable[..., Any]) -> None:
    result = run(step("get_record", {"table": "u_nope", "number": "INC0010001"}))["steps"]["s"]
    assert result["error"] == "servicenow get u_nope record (HTTP 400): Invalid table u_nope"


# OAuth -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["oauth", "oauth_client"])
def test_oauth_token_is_fetched_once_and_refreshed_once_after_expiry(
        sn: ServiceNowMock, run: Callable[..., Any], config: Callable[..., Config],
        auth: str) -> None:
    cfg = config(auth)
    first = run(step("create_incident", {"short_description": "x"}, id="a"),
                step("get_record", {"table": "incident", "sys_id": "${{ steps.a.output.sys_id }}"},
                     id="b", needs=["a"]), cfg=cfg)
    assert first["status"] == "succeeded", first
    assert len(sn.calls_to("POST", "/oauth_token.do")) == 1
    grant = sn.calls_to("POST", "/oauth_token.do")[0].form["grant_type"]
    assert grant == ("password" if auth == "oauth" else "client_credentials")
    sn.expire_tokens()  # mid-run for the next run on the same connection
    second = run(step("get_record", {"table": "incident", "number": "INC0010001"}), cfg=cfg)
    assert second["steps"]["s"]["status"] == "succeeded"
    assert second["steps"]["s"]["attempts"] == 1  # the refresh is not a step retry
    assert len(sn.calls_to("POST", "/oauth_token.do")) == 2
    gets = sn.calls_to("GET", "/api/now/table/incident")
    assert gets[-2].headers["Authorization"] != gets[-1].headers["Authorization"]


def test_a_static_token_is_not_refreshed(sn: ServiceNowMock, run: Callable[..., Any],
                                         config: Callable[..., Config]) -> None:
    cfg = config("token")
    sn.expire_tokens()
    result = run(step("get_record", {"table": "incident", "number": "INC0010001"}),
                 cfg=cfg)["steps"]["s"]
    assert result["status"] == "failed" and "(HTTP 401)" in result["error"]
    assert len(sn.calls_to("GET", "/api/now/table/incident")) == 1


# a playbook end to end -------------------------------------------------------------------------


def test_playbook_opens_a_case_and_an_incident_and_notes_them(
        sn: ServiceNowMock, run_playbook: Callable[..., dict[str, Any]], host: PluginHost,
        config: Callable[..., Config]) -> None:
    text = """
name: departing-engineer-case
steps:
  - id: case
    action: servicenow.create_hr_case
    with:
      subject: "Model exfiltration by ${{ event.actor.email }}"
      subject_person: "${{ event.actor.email }}"
      correlation_id: "${{ event.id }}"
      description: "${{ event.file.name }} was copied to ${{ event.destination }}."
    retry: {max_attempts: 3, backoff_seconds: 0.01}
  - id: incident
    action: servicenow.create_incident
    with:
      short_description: "Model exfiltration (${{ event.id }})"
      caller: "${{ event.actor.email }}"
      correlation_id: "${{ event.id }}"
    retry: {max_attempts: 3, backoff_seconds: 0.01}
  - id: note
    action: servicenow.add_work_note
    needs: [case, incident]
    with:
      table: "${{ steps.case.output.table }}"
      sys_id: "${{ steps.case.output.sys_id }}"
      note: "Related incident ${{ steps.incident.output.number }}."
  - id: check
    action: servicenow.get_record
    needs: [note]
    with:
      table: sn_hr_core_case
      number: "${{ steps.case.output.number }}"
      fields: [state, subject_person]
"""
    event = {"id": "alert-7", "actor": {"email": "jane.doe@example.com"},
             "file": {"name": "llama-ft.safetensors"}, "destination": "personal cloud"}
    sn.lose_response("POST", "/api/now/table/sn_hr_core_case", status=503)
    record = run_playbook(text, event, config=config(), host=host)
    assert record["status"] == "succeeded", record
    steps = record["steps"]
    assert steps["case"]["attempts"] == 2
    [case] = sn.records("sn_hr_core_case")
    [incident] = sn.records("incident")
    assert case["correlation_id"] == incident["correlation_id"] == "crownguard-alert-7"
    assert sn.journal(case["sys_id"])[0].startswith(f"Related incident {incident['number']}.")
    assert steps["check"]["output"]["record"]["state"] == "1"
    again = run_playbook(text, event, config=config(), host=host)
    assert again["steps"]["case"]["output"]["changed"] is False
    assert again["steps"]["incident"]["output"]["changed"] is False
    assert len(sn.records("sn_hr_core_case")) == len(sn.records("incident")) == 1


def test_dry_run_calls_nothing_that_changes_state(sn: ServiceNowMock,
                                                  run: Callable[..., Any]) -> None:
    record = run(step("create_incident", INCIDENT), dry_run=True)
    assert record["steps"]["s"]["output"]["would_call"] == "servicenow.create_incident"
    assert sn.calls == []
