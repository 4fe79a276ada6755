"""The jira plugin against its stateful mock: every action, idempotency, exactly one issue per
incident under retries, resumes and a lagging search index, its own error classes, paging,
and a playbook end to end (the faults every vendor shares are in test_conformance.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import crownguard.plugins.jira as jira_plugin
from crownguard.engine import Config
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.spec import parse_playbook
from crownguard.plugins.jira.mock import JiraMock
from crownguard.plugins.jira.mock.adf import adf_problems

FAST_RETRY = {"max_attempts": 3, "backoff_seconds": 0.01}


def playbook(*steps: dict[str, Any]) -> str:
    return json.dumps({"name": "jira-test", "steps": list(steps)}, indent=1)


def step(action: str, with_: dict[str, Any], *, id: str = "s",
         retry: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": id, "action": f"jira.{action}", "with": with_, "retry": retry or FAST_RETRY,
            **extra}


@pytest.fixture
def jira(mock_server: Callable[..., Any]) -> JiraMock:
    server = mock_server(JiraMock)
    assert isinstance(server, JiraMock)
    return server


@pytest.fixture
def host(isolated_host: Callable[..., PluginHost]) -> PluginHost:
    return isolated_host(jira_plugin, name="jira")


@pytest.fixture
def config(crownguard_config: Callable[..., Config], host: PluginHost,
           jira: JiraMock) -> Callable[..., Config]:
    def make(auth: str = "basic", **overrides: Any) -> Config:
        settings = {**jira.connection_settings(auth), "index_settle_seconds": 0.2, **overrides}
        return crownguard_config({"jira": settings}, host=host)

    return make


@pytest.fixture
def run(run_playbook: Callable[..., dict[str, Any]], host: PluginHost,
        config: Callable[..., Config]) -> Callable[..., dict[str, Any]]:
    def go(*steps: dict[str, Any], cfg: Config | None = None, **kwargs: Any) -> dict[str, Any]:
        return run_playbook(playbook(*steps), {"id": "alert-1"}, config=cfg or config(),
                            host=host, **kwargs)

    return go


ISSUE = {"summary": "Model exfiltration by jane.doe",
         "description": "User **jane.doe** copied `llama-ft.safetensors`.\n\n- contain\n- revoke",
         "labels": ["exfiltration"], "priority": "Highest"}


def output(record: dict[str, Any], step_id: str = "s") -> dict[str, Any]:
    assert record["steps"][step_id]["status"] == "succeeded", record["steps"][step_id]
    result: dict[str, Any] = record["steps"][step_id]["output"]
    return result


# create ----------------------------------------------------------------------------------------


def test_create_issue_with_adf_description_labels_and_marker(jira: JiraMock,
                                                             run: Callable[..., Any]) -> None:
    out = output(run(step("create_issue", ISSUE)))
    [issue] = jira.issues()
    assert out["key"] == issue["key"] == "SEC-1" and out["id"] == issue["id"]
    assert out["changed"] is True and out["project"] == "SEC"
    assert out["url"].endswith("/browse/SEC-1")
    assert out["correlation_id"].startswith("crownguard-")
    fields = issue["fields"]
    assert sorted(fields["labels"]) == sorted(["exfiltration", out["correlation_id"]])
    assert fields["priority"]["name"] == "Highest"
    assert adf_problems(fields["description"]) == []
    assert [n["type"] for n in fields["description"]["content"]] == ["paragraph", "bulletList"]
    marker = issue["properties"]["crownguard"]
    assert marker["correlation_id"] == out["correlation_id"] and marker["step_id"] == "s"
    [search] = jira.calls_to("POST", "/rest/api/3/search/jql")
    assert search.json["jql"] == (f'project = "SEC" AND labels = "{out["correlation_id"]}" '
                                  "ORDER BY created ASC")
    assert search.json["properties"] == ["crownguard"]


def test_same_incident_key_in_a_second_run_is_not_opened_again(jira: JiraMock,
                                                               run: Callable[..., Any]) -> None:
    inputs = {**ISSUE, "correlation_id": "alert-42"}
    first = output(run(step("create_issue", inputs)))
    second = output(run(step("create_issue", inputs)))
    assert first["changed"] is True and second["changed"] is False
    assert first["key"] == second["key"] and first["correlation_id"] == "crownguard-alert-42"
    assert len(jira.issues()) == 1


def test_without_a_key_each_run_opens_its_own_issue(jira: JiraMock,
                                                    run: Callable[..., Any]) -> None:
    run(step("create_issue", ISSUE))
    run(step("create_issue", ISSUE))
    assert len(jira.issues()) == 2


def test_plain_text_description_and_multiline_summary(jira: JiraMock,
                                                      run: Callable[..., Any]) -> None:
    output(run(step("create_issue", {"summary": "Model\nexfiltration", "project": "SEC",
                                     "description": "a **b**\nc", "description_format":
                                     "plain", "issue_type": "Incident"})))
    [issue] = jira.issues()
    assert issue["fields"]["summary"] == "Model exfiltration"
    assert issue["fields"]["issuetype"]["name"] == "Incident"
    assert issue["fields"]["description"]["content"] == [{"type": "paragraph", "content": [
        {"type": "text", "text": "a **b**"}, {"type": "hardBreak"},
        {"type": "text", "text": "c"}]}]


def test_no_project_and_no_default_is_an_input_error(jira: JiraMock, run: Callable[..., Any],
                                                     config: Callable[..., Config]) -> None:
    cfg = config()
    cfg.connections.get("jira").settings.pop("default_project")
    result = run(step("create_issue", {"summary": "x"}), cfg=cfg)["steps"]["s"]
    assert result["status"] == "failed"
    assert "no 'project' given and the connection has no default_project" in result["error"]
    assert jira.calls == []


def test_labels_in_fields_keep_the_correlation_label(jira: JiraMock,
                                                     run: Callable[..., Any]) -> None:
    out = output(run(step("create_issue", {"summary": "x", "correlation_id": "a-1",
                                           "fields": {"labels": ["extra"]}})))
    assert sorted(jira.issues()[0]["fields"]["labels"]) == ["crownguard-a-1", "extra"]
    assert out["correlation_id"] == "crownguard-a-1"


def test_a_field_jira_refuses_is_reported_by_name(jira: JiraMock,
                                                  run: Callable[..., Any]) -> None:
    result = run(step("create_issue", {"summary": "x",
                                       "fields": {"description": "not ADF"}}))["steps"]["s"]
    assert result["status"] == "failed" and result["attempts"] == 1
    assert "jira create issue (HTTP 400)" in result["error"]
    assert "description: Operation value must be an Atlassian Document" in result["error"]


# exactly one issue per incident ----------------------------------------------------------------


def test_a_lost_create_answer_and_the_retry_leave_one_issue(jira: JiraMock,
                                                            run: Callable[..., Any]) -> None:
    jira.lose_response("POST", "/rest/api/3/issue", status=503)
    result = run(step("create_issue", ISSUE))["steps"]["s"]
    assert result["status"] == "succeeded", result
    assert result["attempts"] == 2 and result["output"]["changed"] is True
    assert len(jira.calls_to("POST", "/rest/api/3/issue")) == 1
    assert [i["key"] for i in jira.issues()] == [result["output"]["key"]]


def test_the_retry_waits_for_a_lagging_search_index(jira: JiraMock, run: Callable[..., Any],
                                                    config: Callable[..., Config]) -> None:
    jira.index_lag(2)  # the new issue is missing from the next two search answers
    jira.lose_response("POST", "/rest/api/3/issue", status=502)
    result = run(step("create_issue", ISSUE), cfg=config(index_settle_seconds=2))["steps"]["s"]
    assert result["status"] == "succeeded", result
    assert len(jira.issues()) == 1
    # attempt 1: one search, the create; attempt 2: searches until the index shows the issue
    assert len(jira.calls_to("POST", "/rest/api/3/search/jql")) == 4


def test_without_settling_a_lagging_index_would_duplicate(jira: JiraMock,
                                                          run: Callable[..., Any],
                                                          config: Callable[..., Config]) -> None:
    # The counter-test: it shows the settle time is what prevents the duplicate above.
    jira.index_lag(2)
    jira.lose_response("POST", "/rest/api/3/issue", status=502)
    run(step("create_issue", ISSUE), cfg=config(index_settle_seconds=0))
    assert len(jira.issues()) == 2


def test_a_create_answer_that_comes_too_late_leaves_one_issue(
        jira: JiraMock, run: Callable[..., Any], config: Callable[..., Config]) -> None:
    jira.lose_response("POST", "/rest/api/3/issue", delay=1.0)
    result = run(step("create_issue", ISSUE), cfg=config(timeout_seconds=0.3))["steps"]["s"]
    assert result["status"] == "succeeded" and result["attempts"] == 2
    assert len(jira.issues()) == 1


def test_a_resumed_step_finds_the_issue_its_crashed_attempt_created(
        jira: JiraMock, host: PluginHost, config: Callable[..., Config]) -> None:
    events: list[dict[str, Any]] = []
    book = parse_playbook(playbook(step("create_issue", ISSUE, retry={"max_attempts": 1})),
                          host.actions)
    jira.lose_response("POST", "/rest/api/3/issue", status=504)
    first = Runner(host, config(), journal=events.append).run(book, {}, run_id="r-9")
    assert first["steps"]["s"]["status"] == "failed"
    cut = next(i for i, e in enumerate(events) if e["type"] == "step_started") + 1
    inputs = {"event": {}, "vars": {}, "risk": {},
              "run": {"id": "r-9", "playbook": book.name, "dry_run": False}}
    resumed = Runner(host, config()).resume(book, "r-9", inputs, events[:cut])
    assert output(resumed)["changed"] is True
    assert len(jira.issues()) == 1


# comments --------------------------------------------------------------------------------------


def test_add_comment_in_adf_once_and_repeats_are_unchanged(jira: JiraMock,
                                                           run: Callable[..., Any]) -> None:
    key = jira.add_issue("existing")
    comment = {"issue": key, "body": "Host **contained**.", "dedupe_key": "contain-1"}
    first = output(run(step("add_comment", comment)))
    second = output(run(step("add_comment", comment)))
    assert first["changed"] is True and second == {**first, "changed": False}
    [stored] = jira.comments(key)
    assert stored["id"] == first["comment_id"]
    assert adf_problems(stored["body"]) == []
    assert stored["body"]["content"][0]["content"][1] == {
        "type": "text", "text": "contained", "marks": [{"type": "strong"}]}


def test_add_comment_reads_every_page_of_comments(jira: JiraMock, run: Callable[..., Any],
                                                  config: Callable[..., Config]) -> None:
    key = jira.add_issue("busy issue")
    comment = {"issue": key, "body": "Sessions revoked.", "dedupe_key": "revoke-1"}
    output(run(step("add_comment", comment)))
    for n in range(4):
        output(run(step("add_comment", {"issue": key, "body": f"note {n}"})))
    before = len(jira.calls_to("GET", f"/rest/api/3/issue/{key}/comment"))
    again = output(run(step("add_comment", comment), cfg=config(page_size=2)))
    assert again["changed"] is False
    pages = jira.calls_to("GET", f"/rest/api/3/issue/{key}/comment")[before:]
    assert [c.arg("startAt") for c in pages] == ["0", "2", "4"]
    assert all(c.arg("maxResults") == "2" for c in pages)
    [listing] = jira.calls_to("POST", "/rest/api/3/comment/list")[-1:]
    assert listing.arg("expand") == "properties" and len(listing.json["ids"]) == 5
    assert len(jira.comments(key)) == 5


def test_add_comment_with_a_lost_answer_is_added_once(jira: JiraMock,
                                                      run: Callable[..., Any]) -> None:
    key = jira.add_issue("existing")
    jira.lose_response("POST", f"/rest/api/3/issue/{key}/comment", status=500)
    result = run(step("add_comment", {"issue": key, "body": "x"}))["steps"]["s"]
    assert result["status"] == "succeeded" and result["attempts"] == 2
    assert result["output"]["changed"] is True
    assert len(jira.comments(key)) == 1


def test_add_comment_to_an_unknown_issue_is_not_found(jira: JiraMock,
                                                      run: Callable[..., Any]) -> None:
    result = run(step("add_comment", {"issue": "SEC-404", "body": "x"}))["steps"]["s"]
    assert result["status"] == "failed" and result["attempts"] == 1
    assert result["error"].startswith("jira list comments (HTTP 404)")
    assert "Issue does not exist or you do not have permission to see it." in result["error"]


# workflow --------------------------------------------------------------------------------------


def test_transition_by_name_with_comment_and_repeat(jira: JiraMock,
                                                    run: Callable[..., Any]) -> None:
    key = jira.add_issue("existing")
    move = {"issue": key, "transition": "In Progress", "comment": "Investigating."}
    first = output(run(step("transition_issue", move)))
    second = output(run(step("transition_issue", move)))
    assert first == {"issue": key, "status": "In Progress", "changed": True}
    assert second == {**first, "changed": False}
    [posted] = jira.calls_to("POST", f"/rest/api/3/issue/{key}/transitions")
    assert posted.json["transition"] == {"id": "21"}
    assert [c["body"]["content"][0]["content"][0]["text"] for c in jira.comments(key)] == [
        "Investigating."]


def test_transition_to_status_with_resolution(jira: JiraMock, run: Callable[..., Any]) -> None:
    key = jira.add_issue("existing")
    out = output(run(step("transition_issue", {"issue": key, "to_status": "done",
                                               "resolution": "Won't Do"})))
    assert out["status"] == "Done" and out["changed"] is True
    [issue] = jira.issues()
    assert issue["status"] == "Done" and issue["fields"]["resolution"]["name"] == "Won't Do"


def test_unknown_transition_lists_the_available_ones(jira: JiraMock,
                                                     run: Callable[..., Any]) -> None:
    key = jira.add_issue("existing")
    result = run(step("transition_issue", {"issue": key, "transition": "Escalate"}))["steps"]["s"]
    assert result["status"] == "failed" and result["attempts"] == 1
    assert ("no transition 'Escalate' from the issue's status (available: In Progress -> In "
            "Progress, Done -> Done)") in result["error"]


def test_close_issue_is_the_undo_and_is_idempotent(jira: JiraMock, run: Callable[..., Any],
                                                   host: PluginHost) -> None:
    created = output(run(step("create_issue", ISSUE)))
    first = output(run(step("close_issue", {"issue": created["key"]})))
    second = output(run(step("close_issue", {"issue": created["key"]})))
    assert first == {"issue": created["key"], "status": "Done", "changed": True}
    assert second["changed"] is False
    [issue] = jira.issues()
    assert issue["fields"]["resolution"]["name"] == "Done"
    [note] = jira.comments(created["key"])
    assert note["body"]["content"][0]["content"][0]["text"] == \
        "Closed by crownguard: the response was undone."
    assert host.actions["jira.create_issue"].undo == "jira.close_issue"


def test_get_issue_and_unknown_issue(jira: JiraMock, run: Callable[..., Any]) -> None:
    key = jira.add_issue("existing", labels=["a"], status="In Progress")
    out = output(run(step("get_issue", {"issue": key})))
    assert out["key"] == key and out["status"] == "In Progress"
    assert out["status_category"] == "indeterminate" and out["fields"]["labels"] == ["a"]
    missing = run(step("get_issue", {"issue": "SEC-99"}))["steps"]["s"]
    assert missing["error"].startswith("jira get issue (HTTP 404)")


def test_find_issues_follows_next_page_tokens(jira: JiraMock, run: Callable[..., Any],
                                              config: Callable[..., Config]) -> None:
    keys = [jira.add_issue(f"issue {n}", labels=["leak"]) for n in range(5)]
    jira.add_issue("other")
    out = output(run(step("find_issues", {"jql": "project = SEC AND labels = leak ORDER BY "
                                                 "created ASC"}), cfg=config(page_size=2)))
    assert [i["key"] for i in out["issues"]] == keys
    assert out["count"] == 5 and out["truncated"] is False
    searches = jira.calls_to("POST", "/rest/api/3/search/jql")
    assert [c.json.get("nextPageToken") is None for c in searches] == [True, False, False]
    limited = output(run(step("find_issues", {"jql": "labels = leak", "max_results": 3}),
                         cfg=config(page_size=2)))
    assert limited["count"] == 3 and limited["truncated"] is True


def test_find_issues_reports_jql_errors(jira: JiraMock, run: Callable[..., Any]) -> None:
    result = run(step("find_issues", {"jql": "ORDER BY created"}))["steps"]["s"]
    assert result["status"] == "failed"
    assert result["error"].startswith("jira search issues (HTTP 400) [request id ")
    assert "Unbounded JQL queries are not allowed here." in result["error"]


def test_actions_declare_their_contract(host: PluginHost) -> None:
    actions = {n: a for n, a in host.actions.items() if a.plugin == "jira"}
    assert set(actions) == {"jira.create_issue", "jira.add_comment", "jira.transition_issue",
                            "jira.close_issue", "jira.get_issue", "jira.find_issues"}
    for item in actions.values():
        assert item.input_schema.get("additionalProperties") is False
        assert item.retry is not None and item.retry.max_attempts == 3
        assert item.summary and item.description.count("\n") >= 2
        if item.side_effect:
            assert "changed" in item.output_schema["required"]
    assert not actions["jira.get_issue"].side_effect


# errors only this vendor has (the shared ones: test_conformance.py) ------------------------------


def test_missing_create_permission_is_a_403_auth_error(jira: JiraMock,
                                                       run: Callable[..., Any]) -> None:
    jira.set_permissions("SEC", {"BROWSE_PROJECTS"})
    result = run(step("create_issue", ISSUE))["steps"]["s"]
    assert result["status"] == "failed" and result["attempts"] == 1
    assert result["error"].startswith("jira create issue (HTTP 403) [request id ")
    assert "You do not have permission to create issues in this project." in result["error"]
    assert jira.issues() == []


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried(jira: JiraMock, run: Callable[..., Any], status: int) -> None:
    jira.inject("status", status=status, path="/rest/api/3/search/jql")
    result = run(step("create_issue", ISSUE))["steps"]["s"]
    assert result["status"] == "succeeded" and result["attempts"] == 2
    assert len(jira.issues()) == 1


def test_a_bearer_token_works_too(jira: JiraMock, run: Callable[..., Any],
                                  config: Callable[..., Config]) -> None:
    out = output(run(step("create_issue", ISSUE), cfg=config("token")))
    assert out["changed"] is True
    assert jira.calls[-1].headers["Authorization"].startswith("Bearer ")


# a playbook end to end -------------------------------------------------------------------------


def test_playbook_opens_comments_and_moves_one_issue(
        jira: JiraMock, run_playbook: Callable[..., dict[str, Any]], host: PluginHost,
        config: Callable[..., Config]) -> None:
    text = """
name: model-exfil-ticket
steps:
  - id: ticket
    action: jira.create_issue
    with:
      summary: "Model exfiltration by ${{ event.actor.email }}"
      correlation_id: "${{ event.id }}"
      labels: [exfiltration]
      priority: High
      description: |
        ## What happened
        **${{ event.actor.email }}** copied `${{ event.file.name }}` to ${{ event.destination }}.

        1. Contain the host
        2. Revoke sessions
    retry: {max_attempts: 3, backoff_seconds: 0.01}
  - id: note
    action: jira.add_comment
    needs: [ticket]
    with: {issue: "${{ steps.ticket.output.key }}", body: "Host contained by crownguard."}
  - id: triage
    action: jira.transition_issue
    needs: [note]
    with: {issue: "${{ steps.ticket.output.key }}", to_status: In Progress}
  - id: check
    action: jira.get_issue
    needs: [triage]
    with: {issue: "${{ steps.ticket.output.key }}"}
"""
    event = {"id": "alert-7", "actor": {"email": "jane.doe@example.com"},
             "file": {"name": "llama-ft.safetensors"}, "destination": "personal cloud"}
    jira.lose_response("POST", "/rest/api/3/issue", status=503)
    record = run_playbook(text, event, config=config(), host=host)
    assert record["status"] == "succeeded", record
    assert output(record, "check")["status"] == "In Progress"
    [issue] = jira.issues()
    assert "crownguard-alert-7" in issue["fields"]["labels"]
    heading = issue["fields"]["description"]["content"][0]
    assert heading == {"type": "heading", "attrs": {"level": 2},
                       "content": [{"type": "text", "text": "What happened"}]}
    assert len(jira.comments(issue["key"])) == 1
    again = run_playbook(text, event, config=config(), host=host)
    assert output(again, "ticket")["changed"] is False
    assert output(again, "triage")["changed"] is False
    assert len(jira.issues()) == 1
    assert len(jira.comments(issue["key"])) == 2  # a new run's note has a new key


def test_dry_run_calls_nothing(jira: JiraMock, run: Callable[..., Any]) -> None:
    record = run(step("create_issue", ISSUE), dry_run=True)
    assert record["steps"]["s"]["output"]["would_call"] == "jira.create_issue"
    assert jira.calls == []
