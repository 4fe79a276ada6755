"""The incydr plugin against its stateful mock: every action, idempotent repeats, the three
paging styles (file-event cursor, session page numbers, watchlist pages) and a playbook run."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine import ActionContext, InputError, NotFoundError
from crownguard.plugins import incydr as incydr_plugin
from crownguard.plugins.incydr.mock import IncydrMock
from crownguard.plugins.incydr.mock.search import QueryProblem
from crownguard.plugins.incydr.mock.seed import DANA, MARCO, PRIYA

SAMPLES = Path(incydr_plugin.__file__).parent / "samples"
FAST_RETRY = "{max_attempts: 3, backoff_seconds: 0.01}"
DANA_EMAIL, PRIYA_EMAIL, MARCO_EMAIL = ("dana.whitfield@example.com", "priya.raman@example.com",
                                        "marco.bianchi@example.com")
USB_SESSION = "e1a0c3f5-7b9d-4c2e-8f1a-3b5d7f9e1c21"
USB_ALERT = "a7c41e02-5d3b-4f6a-9e8c-1b2d3f4a5c61"
NOVEMBER = {"start_time": "2026-11-01", "end_time": "2026-11-30"}


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / f"{name}.json").read_text())


@pytest.fixture
def incydr(mock_server: Callable[..., Any]) -> IncydrMock:
    return mock_server(IncydrMock)


@pytest.fixture
def host(isolated_host: Callable[..., Any]) -> Any:
    return isolated_host(incydr_plugin, name="incydr")


@pytest.fixture
def config(host: Any, incydr: IncydrMock, crownguard_config: Callable[..., Any]) -> Any:
    return crownguard_config({"incydr": incydr.connection_settings()}, host=host)


@pytest.fixture
def act(host: Any, config: Any) -> Callable[..., Any]:
    """Call one action directly (schemas checked both ways), as the runner would."""

    def call(name: str, **inputs: Any) -> Any:
        action = host.action(name)
        action.validate_inputs(inputs)
        ctx = ActionContext(run_id="r1", step_id="s1", attempt=1, idempotency_key="k" * 32,
                            connections=config.connections)
        output = action.func(ctx, inputs)
        action.validate_output(output)
        return output

    return call


# registration ------------------------------------------------------------------------------------


def test_plugin_registers_actions_connection_and_mock(host: Any) -> None:
    names = {n for n in host.actions if n.startswith("incydr.")}
    assert names == {"incydr.search_file_events", "incydr.get_session", "incydr.search_sessions",
                     "incydr.get_alert", "incydr.update_session_state",
                     "incydr.get_watchlists_for_user", "incydr.add_to_watchlist",
                     "incydr.remove_from_watchlist", "incydr.list_watchlist_members"}
    assert host.connection_types["incydr"].secrets == ("client_secret",)
    assert host.mock_servers["incydr"].factory is IncydrMock
    for name in names:
        action = host.action(name)
        assert action.input_schema["additionalProperties"] is False, name
        assert action.retry is not None and (action.retry.max_attempts,
                                             action.retry.backoff_seconds) == (3, 1), name
        assert action.summary and len(action.description.strip().split("\n\n")) >= 2, name
        assert action.connection == "incydr"
        if action.side_effect:
            assert "changed" in action.output_schema["required"], name
        if action.undo:
            assert action.undo in host.actions
    side_effects = {n for n in names if host.action(n).side_effect}
    assert side_effects == {"incydr.update_session_state", "incydr.add_to_watchlist",
                            "incydr.remove_from_watchlist"}
    assert host.action("incydr.add_to_watchlist").undo == "incydr.remove_from_watchlist"


# file events -------------------------------------------------------------------------------------


def test_search_by_user_returns_incydr_v2_events(incydr: IncydrMock,
                                                 act: Callable[..., Any]) -> None:
    result = act("incydr.search_file_events", user=DANA_EMAIL, **NOVEMBER)
    assert (result["returned"], result["total_count"], result["truncated"]) == (1, 1, False)
    event = result["events"][0]
    assert event == sample("model-to-removable-media")
    assert event["event"]["action"] == "removable-media-created"
    assert event["destination"]["removableMedia"]["busType"] == "USB 3.0 Bus"
    sent = incydr.calls_to("POST", "/v2/file-events")[0].json
    assert sent["groupClause"] == "AND" and sent["pgToken"] == ""
    assert (sent["srtKey"], sent["srtDir"], sent["pgNum"]) == ("@timestamp", "desc", 1)
    assert sent["groups"][0] == {"filterClause": "AND", "filters": [
        {"term": "@timestamp", "operator": "ON_OR_AFTER", "value": "2026-11-01T00:00:00.000Z"},
        {"term": "@timestamp", "operator": "ON_OR_BEFORE", "value": "2026-11-30T23:59:59.999Z"}]}
    assert sent["groups"][1] == {"filterClause": "AND", "filters": [
        {"term": "user.email", "operator": "IS", "value": DANA_EMAIL}]}


def test_search_by_hash_name_action_and_destination(act: Callable[..., Any]) -> None:
    usb = sample("model-to-removable-media")
    by_sha = act("incydr.search_file_events", sha256=usb["file"]["hash"]["sha256"], **NOVEMBER)
    assert [e["event"]["id"] for e in by_sha["events"]] == [usb["event"]["id"]]
    by_md5 = act("incydr.search_file_events", md5=usb["file"]["hash"]["md5"], **NOVEMBER)
    assert by_md5["returned"] == 1
    models = act("incydr.search_file_events", file_name="*.safetensors", **NOVEMBER)
    assert {e["file"]["name"] for e in models["events"]} == {
        "acme-support-llama3-8b-ft.safetensors", "adapter_model.safetensors"}
    assert models["events"][0]["@timestamp"] > models["events"][1]["@timestamp"]  # newest first
    ai = act("incydr.search_file_events", file_name="*", destination_categories=["AI Tools"],
             **NOVEMBER)
    assert [e["user"]["email"] for e in ai["events"]] == [MARCO_EMAIL]
    moved = act("incydr.search_file_events", file_name="*",
                event_actions=["removable-media-created", "sync-app-created"], **NOVEMBER)
    assert {e["user"]["email"] for e in moved["events"]} == {DANA_EMAIL, PRIYA_EMAIL}


def test_time_window_limits_the_search(incydr: IncydrMock, act: Callable[..., Any]) -> None:
    before = act("incydr.search_file_events", user=DANA_EMAIL, end_time="2026-11-19")
    assert before["returned"] == 0
    incydr.clock = lambda: datetime(2026, 11, 22, tzinfo=UTC)
    assert act("incydr.search_file_events", user=DANA_EMAIL, within_last="P7D")["returned"] == 1
    assert act("incydr.search_file_events", user=DANA_EMAIL, within_last="PT1H")["returned"] == 0
    sent = incydr.calls_to("POST", "/v2/file-events")[-1].json
    assert sent["groups"][0]["filters"] == [
        {"term": "@timestamp", "operator": "WITHIN_THE_LAST", "value": "PT1H"}]


def test_file_events_follow_next_pg_token_to_the_end(incydr: IncydrMock,
                                                      act: Callable[..., Any]) -> None:
    ids = incydr.add_file_events(25, user="pager@example.com")
    result = act("incydr.search_file_events", user="pager@example.com", page_size=10,
                 max_events=100, **NOVEMBER)
    assert result["returned"] == 25 and result["truncated"] is False
    assert result["pages"] == 3 and result["total_count"] == 25
    assert sorted(e["event"]["id"] for e in result["events"]) == sorted(ids)
    assert len({e["event"]["id"] for e in result["events"]}) == 25
    tokens = [c.json["pgToken"] for c in incydr.calls_to("POST", "/v2/file-events")]
    assert tokens[0] == "" and tokens[1] == result["events"][9]["event"]["id"]
    assert tokens[2] == result["events"][19]["event"]["id"]


def test_a_full_last_page_is_followed_by_an_empty_one(incydr: IncydrMock,
                                                       act: Callable[..., Any]) -> None:
    incydr.add_file_events(20, user="pager@example.com")
    result = act("incydr.search_file_events", user="pager@example.com", page_size=10,
                 **NOVEMBER)
    assert (result["returned"], result["pages"], result["truncated"]) == (20, 3, False)


def test_max_events_truncates(incydr: IncydrMock, act: Callable[..., Any]) -> None:
    incydr.add_file_events(30, user="pager@example.com")
    result = act("incydr.search_file_events", user="pager@example.com", page_size=10,
                 max_events=15, **NOVEMBER)
    assert (result["returned"], result["pages"], result["truncated"]) == (15, 2, True)


@pytest.mark.parametrize("inputs, message", [
    ({"start_time": "2026-11-01"}, "at least one of user, sha256, md5 or file_name"),
    ({"user": DANA_EMAIL, "start_time": "2026-12-01", "end_time": "2026-11-01"},
     "start_time is after end_time"),
    ({"user": DANA_EMAIL, "start_time": "2026-11-01", "within_last": "P1D"},
     "either within_last or start_time"),
    ({"user": DANA_EMAIL, "start_time": "last tuesday"}, "not an ISO 8601"),
])
def test_search_input_problems_are_input_errors(incydr: IncydrMock, act: Callable[..., Any],
                                                inputs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        act("incydr.search_file_events", **inputs)
    assert incydr.calls_to("POST", "/v2/file-events") == []


# sessions and alerts -----------------------------------------------------------------------------


def test_get_session_with_its_events(act: Callable[..., Any]) -> None:
    result = act("incydr.get_session", session_id=USB_SESSION, include_events=True)
    assert (result["state"], result["severity"], result["severity_name"]) == (
        "OPEN", 4, "CRITICAL")
    assert result["score"] == 12 and result["alert_ids"] == [USB_ALERT]
    assert result["actor_id"] == DANA and result["actor_name"] == DANA_EMAIL
    assert result["session"]["sessionId"] == USB_SESSION and result["notes"] == []
    assert [e["event"]["id"] for e in result["events"]] == [
        sample("model-to-removable-media")["event"]["id"]]
    assert "events" not in act("incydr.get_session", session_id=USB_SESSION)


def test_search_sessions_by_user_state_and_severity(act: Callable[..., Any]) -> None:
    dana = act("incydr.search_sessions", user=DANA_EMAIL)
    assert [s["session_id"] for s in dana["sessions"]] == [USB_SESSION]
    critical = act("incydr.search_sessions", severities=[4])
    assert [s["actor_name"] for s in critical["sessions"]] == [DANA_EMAIL]
    assert act("incydr.search_sessions", states=["CLOSED_TP"])["returned"] == 0
    assert act("incydr.search_sessions", end_time="2026-11-19")["returned"] == 0
    assert act("incydr.search_sessions", end_time="2026-11-20")["returned"] == 1
    assert act("incydr.search_sessions", start_time="2026-11-21")["returned"] == 2


def test_sessions_page_by_page_number(incydr: IncydrMock, act: Callable[..., Any]) -> None:
    incydr.add_sessions(120, actor_id=PRIYA)
    result = act("incydr.search_sessions", user=PRIYA_EMAIL, max_sessions=500)
    assert (result["returned"], result["total_count"], result["pages"]) == (121, 121, 3)
    assert len({s["session_id"] for s in result["sessions"]}) == 121
    calls = incydr.calls_to("GET", "/v1/sessions")
    assert [(c.arg("page_number"), c.arg("page_size")) for c in calls] == [
        ("0", "50"), ("1", "50"), ("2", "50")]
    assert {c.arg("actor_id") for c in calls} == {PRIYA}
    assert {c.arg("has_alerts") for c in calls} == {"true"}
    capped = act("incydr.search_sessions", user=PRIYA_EMAIL, max_sessions=60, page_size=25)
    assert (capped["returned"], capped["truncated"], capped["pages"]) == (60, True, 3)


def test_get_alert(act: Callable[..., Any]) -> None:
    alert = act("incydr.get_alert", alert_id=USB_ALERT)
    assert (alert["state"], alert["actor"], alert["risk_severity"]) == (
        "OPEN", DANA_EMAIL, "CRITICAL")
    assert alert["watchlists"][0]["type"] == "DEPARTING_EMPLOYEE"


def test_update_session_state_then_repeat_is_idempotent(incydr: IncydrMock,
                                                        act: Callable[..., Any]) -> None:
    note = "Nudge sent; waiting for the employee's justification."
    first = act("incydr.update_session_state", session_id=USB_SESSION, state="IN_PROGRESS",
                note=note)
    assert first == {"session_id": USB_SESSION, "state": "IN_PROGRESS",
                     "previous_state": "OPEN", "state_changed": True, "note_added": True,
                     "changed": True}
    assert incydr.session_state(USB_SESSION) == "IN_PROGRESS"
    assert [n["content"] for n in incydr.sessions[USB_SESSION]["notes"]] == [note]
    assert incydr.alerts[USB_ALERT]["state"] == "IN_PROGRESS"
    again = act("incydr.update_session_state", session_id=USB_SESSION, state="IN_PROGRESS",
                note=note)
    assert again["changed"] is False and again["previous_state"] == "IN_PROGRESS"
    assert len(incydr.calls_to("POST", "/v1/sessions/change-state")) == 1
    assert len(incydr.calls_to("POST", "/v1/sessions/{id}/add-note")) == 1
    closed = act("incydr.update_session_state", session_id=USB_SESSION, state="CLOSED_TP")
    assert (closed["state_changed"], closed["note_added"], closed["changed"]) == (
        True, False, True)
    assert incydr.session_state(USB_SESSION) == "CLOSED_TP"
    assert incydr.calls_to("POST", "/v1/sessions/change-state")[-1].json == {
        "ids": [USB_SESSION], "newState": "CLOSED_TP"}


# watchlists --------------------------------------------------------------------------------------


def test_departing_employee_and_departure_date(act: Callable[..., Any]) -> None:
    dana = act("incydr.get_watchlists_for_user", user=DANA_EMAIL)
    assert (dana["departing"], dana["departure_date"], dana["actor_id"]) == (
        True, "2026-12-18", DANA)
    assert [w["type"] for w in dana["watchlists"]] == ["DEPARTING_EMPLOYEE"]
    assert dana["actor"]["country"] == "United States" and dana["actor"]["department"]
    by_id = act("incydr.get_watchlists_for_user", user=DANA)
    assert by_id["actor_name"] == DANA_EMAIL and by_id["departing"] is True


def test_department_membership_counts_and_staying_people_are_not_departing(
        act: Callable[..., Any]) -> None:
    priya = act("incydr.get_watchlists_for_user", user=PRIYA_EMAIL)
    assert priya["departing"] is False and priya["departure_date"] is None
    assert [w["type"] for w in priya["watchlists"]] == ["HIGH_IMPACT_EMPLOYEE"]
    assert priya["actor"]["country"] == "India"
    marco = act("incydr.get_watchlists_for_user", user=MARCO_EMAIL)
    assert marco["watchlists"] == [] and marco["actor"]["country"] == "Italy"


def test_add_to_watchlist_with_date_then_repeat(incydr: IncydrMock,
                                                act: Callable[..., Any]) -> None:
    first = act("incydr.add_to_watchlist", user=MARCO_EMAIL, departure_date="2027-01-15")
    assert (first["added"], first["departure_date_changed"], first["changed"]) == (
        True, True, True)
    assert first["previous_departure_date"] is None
    departing = incydr.watchlist_id("DEPARTING_EMPLOYEE")
    assert MARCO in incydr.members_of(departing)
    assert incydr.actors[MARCO]["endDate"] == "2027-01-15"
    assert incydr.calls_to("POST", "/v2/watchlists/{id}/included-actors/add")[0].json == {
        "actorIds": [MARCO], "watchlistId": departing}
    again = act("incydr.add_to_watchlist", user=MARCO_EMAIL, departure_date="2027-01-15")
    assert (again["added"], again["departure_date_changed"], again["changed"]) == (
        False, False, False)
    assert len(incydr.calls_to("POST", "/v2/watchlists/{id}/included-actors/add")) == 1
    assert len(incydr.calls_to("PATCH", "/v1/actors/actor/id/{id}")) == 1
    assert act("incydr.get_watchlists_for_user", user=MARCO_EMAIL)["departing"] is True


def test_add_changes_only_the_date_for_someone_already_listed(
        incydr: IncydrMock, act: Callable[..., Any]) -> None:
    moved = act("incydr.add_to_watchlist", user=DANA_EMAIL, departure_date="2026-12-04")
    assert (moved["added"], moved["departure_date_changed"]) == (False, True)
    assert moved["previous_departure_date"] == "2026-12-18"
    assert incydr.actors[DANA]["endDate"] == "2026-12-04"
    assert incydr.calls_to("POST", "/v2/watchlists/{id}/included-actors/add") == []


def test_add_to_another_watchlist_by_type(incydr: IncydrMock, act: Callable[..., Any]) -> None:
    result = act("incydr.add_to_watchlist", user=MARCO_EMAIL,
                 watchlist_type="HIGH_IMPACT_EMPLOYEE")
    assert result["watchlist_type"] == "HIGH_IMPACT_EMPLOYEE" and result["changed"] is True
    assert result["departure_date_changed"] is False
    assert MARCO in incydr.members_of(incydr.watchlist_id("HIGH_IMPACT_EMPLOYEE"))


def test_add_when_the_tenant_has_no_such_watchlist(incydr: IncydrMock,
                                                   act: Callable[..., Any]) -> None:
    incydr.remove_watchlist("DEPARTING_EMPLOYEE")
    with pytest.raises(NotFoundError, match="no DEPARTING_EMPLOYEE watchlist"):
        act("incydr.add_to_watchlist", user=MARCO_EMAIL)
    with pytest.raises(NotFoundError, match="no watchlist with id 'nope'"):
        act("incydr.list_watchlist_members", watchlist_id="nope")


def test_remove_from_watchlist_then_repeat(incydr: IncydrMock, act: Callable[..., Any]) -> None:
    first = act("incydr.remove_from_watchlist", user=DANA_EMAIL, clear_departure_date=True)
    assert (first["removed"], first["departure_date_cleared"], first["changed"]) == (
        True, True, True)
    assert DANA not in incydr.members_of(incydr.watchlist_id("DEPARTING_EMPLOYEE"))
    assert incydr.actors[DANA]["endDate"] is None
    again = act("incydr.remove_from_watchlist", user=DANA_EMAIL, clear_departure_date=True)
    assert again["changed"] is False
    assert len(incydr.calls_to("POST", "/v2/watchlists/{id}/included-actors/delete")) == 1


def test_remove_leaves_department_members_on_the_list(incydr: IncydrMock,
                                                      act: Callable[..., Any]) -> None:
    result = act("incydr.remove_from_watchlist", user=PRIYA_EMAIL,
                 watchlist_type="HIGH_IMPACT_EMPLOYEE")
    assert result["changed"] is False
    assert PRIYA in incydr.members_of(incydr.watchlist_id("HIGH_IMPACT_EMPLOYEE"))


def test_watchlist_members_page_by_page(incydr: IncydrMock, act: Callable[..., Any]) -> None:
    for index in range(4):
        actor = incydr.add_actor(f"leaver{index}@example.com")
        incydr.watchlists[incydr.watchlist_id("DEPARTING_EMPLOYEE")].included_actors[actor] = (
            1795000000000 + index)
    result = act("incydr.list_watchlist_members", page_size=2)
    assert (result["returned"], result["total_count"], result["pages"]) == (5, 5, 3)
    assert result["members"][0] == {"actor_id": DANA, "actor_name": DANA_EMAIL,
                                    "added_time": "2026-11-07T00:00:00.000Z"}
    calls = incydr.calls_to("GET", "/v2/watchlists/{id}/members")
    assert [(c.arg("page"), c.arg("page_size")) for c in calls] == [
        ("1", "2"), ("2", "2"), ("3", "2")]
    capped = act("incydr.list_watchlist_members", page_size=2, max_members=3)
    assert (capped["returned"], capped["truncated"]) == (3, True)
    high = act("incydr.list_watchlist_members", watchlist_type="HIGH_IMPACT_EMPLOYEE")
    assert [m["actor_name"] for m in high["members"]] == [PRIYA_EMAIL]


# a playbook end to end ---------------------------------------------------------------------------

TRIAGE = f"""
name: incydr-departing-triage
vars:
  session_id: {USB_SESSION}
steps:
  - id: history
    action: incydr.search_file_events
    with:
      sha256: "${{{{ event.file.hash.sha256 }}}}"
      start_time: "2026-11-01"
    retry: {FAST_RETRY}
  - id: person
    action: incydr.get_watchlists_for_user
    with: {{user: "${{{{ event.user.email }}}}"}}
    retry: {FAST_RETRY}
  - id: triage
    action: incydr.update_session_state
    needs: [history, person]
    if: "steps.person.output.departing"
    with:
      session_id: "${{{{ vars.session_id }}}}"
      state: IN_PROGRESS
      note: "Departing ${{{{ steps.person.output.departure_date }}}}: ${{{{ event.file.name }}}}"
    retry: {FAST_RETRY}
"""


def test_playbook_triages_a_departing_employee(incydr: IncydrMock, host: Any, config: Any,
                                               run_playbook: Callable[..., Any]) -> None:
    event = sample("model-to-removable-media")
    record = run_playbook(TRIAGE, event, config=config, host=host)
    assert record["status"] == "succeeded", record
    steps = record["steps"]
    assert steps["history"]["output"]["events"][0]["event"]["id"] == event["event"]["id"]
    assert steps["person"]["output"]["departing"] is True
    assert steps["triage"]["output"]["changed"] is True
    assert incydr.session_state(USB_SESSION) == "IN_PROGRESS"
    assert incydr.sessions[USB_SESSION]["notes"][0]["content"] == (
        "Departing 2026-12-18: acme-support-llama3-8b-ft.safetensors")
    assert len(incydr.calls_to("POST", "/v1/oauth")) == 1  # one token shared by all steps


def test_playbook_leaves_someone_who_stays_alone(incydr: IncydrMock, host: Any, config: Any,
                                                 run_playbook: Callable[..., Any]) -> None:
    record = run_playbook(TRIAGE, sample("model-upload-genai-browser"), config=config, host=host)
    assert record["status"] == "succeeded"
    assert record["steps"]["person"]["output"]["departing"] is False
    assert record["steps"]["triage"]["status"] == "skipped"
    assert incydr.calls_to("POST", "/v1/sessions/change-state") == []


def test_the_documented_playbook_runs(incydr: IncydrMock, host: Any, config: Any,
                                      run_playbook: Callable[..., Any]) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "plugins" / "incydr.md").read_text()
    playbook = doc.split("```yaml\nname: ", 1)[1].split("```", 1)[0]
    incydr.clock = lambda: datetime(2026, 11, 28, tzinfo=UTC)
    record = run_playbook("name: " + playbook, sample("model-to-removable-media"),
                          config=config, host=host)
    assert record["status"] == "succeeded", record
    assert record["steps"]["history"]["output"]["returned"] == 1
    assert record["steps"]["triage"]["output"]["changed"] is True
    assert incydr.session_state(USB_SESSION) == "IN_PROGRESS"


def test_dry_run_calls_no_side_effect(incydr: IncydrMock, host: Any, config: Any,
                                      run_playbook: Callable[..., Any]) -> None:
    record = run_playbook(TRIAGE, sample("model-to-removable-media"), config=config, host=host,
                          dry_run=True)
    assert record["status"] == "succeeded"
    assert record["steps"]["triage"]["output"]["would_call"] == "incydr.update_session_state"
    assert incydr.session_state(USB_SESSION) == "OPEN"
    assert incydr.calls_to("POST", "/v1/sessions/change-state") == []


# the mock's Forensic Search semantics ------------------------------------------------------------


def test_mock_search_operators_and_nested_groups(incydr: IncydrMock) -> None:
    def users(*groups: dict[str, Any], clause: str = "AND") -> set[str]:
        page = incydr.run_query({"groupClause": clause, "groups": list(groups), "pgSize": 100,
                                 "pgToken": ""})
        return {e["user"]["email"] for e in page["fileEvents"]}

    def group(*filters: tuple[str, str, Any], clause: str = "AND") -> dict[str, Any]:
        return {"filterClause": clause, "filters": [{"term": t, "operator": o, "value": v}
                                                    for t, o, v in filters]}

    assert users(group(("risk.score", "GREATER_THAN", 7))) == {DANA_EMAIL, PRIYA_EMAIL}
    assert users(group(("risk.indicators.name", "IS", "departing"))) == {DANA_EMAIL}
    assert users(group(("destination.accountType", "EXISTS", None))) == {PRIYA_EMAIL}
    assert users(group(("file.category", "IS_NOT", "Spreadsheet"),
                       ("destination.category", "IS_NONE", ["Device"]))) == {
        PRIYA_EMAIL, MARCO_EMAIL}
    either = {"subgroupClause": "OR", "subgroups": [
        group(("file.name", "IS", "*.GGUF")), group(("destination.domains", "IS_ANY",
                                                      ["chatgpt.com", "claude.ai"]))]}
    assert users(either, group(("@timestamp", "ON", "2026-11-21T00:00:00Z"))) == {
        PRIYA_EMAIL, MARCO_EMAIL}
    with pytest.raises(QueryProblem, match="unknown operator 'NEAR'"):
        users(group(("file.name", "NEAR", "x")))
