"""JiraMock behaves as Jira Cloud does: JQL, enhanced search paging, ADF-only rich text,
permissions, comments and their properties, the workflow, rate-limit headers, error bodies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

import crownguard.plugins.jira as jira_plugin
from crownguard.engine.plugins import PluginHost
from crownguard.plugins.jira.adf import to_adf
from crownguard.plugins.jira.mock import INTEGRATION_EMAIL, JiraMock
from crownguard.plugins.jira.mock.adf import adf_problems
from crownguard.plugins.jira.mock.jql import JqlError, parse_jql


@pytest.fixture
def jira(mock_server: Callable[..., Any]) -> JiraMock:
    server = mock_server(JiraMock)
    assert isinstance(server, JiraMock)
    return server


@pytest.fixture
def api(jira: JiraMock) -> requests.Session:
    session = requests.Session()
    session.auth = (INTEGRATION_EMAIL, jira.api_token)
    return session


def fields(summary: str = "x", **extra: Any) -> dict[str, Any]:
    return {"fields": {"project": {"key": "SEC"}, "issuetype": {"name": "Task"},
                       "summary": summary, **extra}}


@pytest.mark.parametrize("jql,clauses,order", [
    ('project = "SEC" AND labels = "a-b"', [("project", "=", ("SEC",)),
                                            ("labels", "=", ("a-b",))], []),
    ("labels in (a, \"b c\") AND status != Done ORDER BY created DESC",
     [("labels", "in", ("a", "b c")), ("status", "!=", ("Done",))], [("created", True)]),
    ('summary ~ "model \\"x\\""', [("summary", "~", ('model "x"',))], []),
    ("issuetype not in (Bug) order by key", [("type", "not in", ("Bug",))], [("key", False)]),
])
def test_jql_parsing(jql: str, clauses: list[Any], order: list[Any]) -> None:
    parsed = parse_jql(jql)
    assert [(c.field, c.op, c.values) for c in parsed.clauses] == clauses
    assert list(parsed.order) == order


@pytest.mark.parametrize("jql", ["labels = a labels = b", "nosuchfield = 1", "labels",
                                 "labels = a AND", "labels = a OR", "labels in a"])
def test_jql_errors(jql: str) -> None:
    with pytest.raises(JqlError):
        parse_jql(jql)


def test_and_binds_tighter_than_or() -> None:
    parsed = parse_jql("labels = a AND status = Done OR key = SEC-1")
    values = {"labels": ["a"], "status": ["To Do"], "key": ["SEC-1"]}
    assert parsed.matches(lambda f: values.get(f, []))
    assert not parsed.matches(lambda f: {**values, "key": ["SEC-2"]}.get(f, []))
    assert len(parsed.groups) == 2


def test_search_pages_with_next_page_token(jira: JiraMock, api: requests.Session) -> None:
    keys = [jira.add_issue(f"n{n}", labels=["leak"]) for n in range(3)]
    url = f"{jira.base_url}/rest/api/3/search/jql"
    body = {"jql": "labels = leak ORDER BY created ASC", "maxResults": 2,
            "fields": ["summary"]}
    first = api.post(url, json=body).json()
    assert [i["key"] for i in first["issues"]] == keys[:2] and first["isLast"] is False
    assert first["issues"][0]["fields"] == {"summary": "n0"}
    second = api.post(url, json={**body, "nextPageToken": first["nextPageToken"]}).json()
    assert [i["key"] for i in second["issues"]] == keys[2:]
    assert second["isLast"] is True and "nextPageToken" not in second
    by_get = api.get(url, params={"jql": "labels = leak", "maxResults": "5"}).json()
    assert len(by_get["issues"]) == 3


@pytest.mark.parametrize("jql,message", [
    ("", "Unbounded JQL queries are not allowed here."),
    ("project = NOPE", "The value 'NOPE' does not exist for the field 'project'."),
    ("labels = a b = c", "Expecting either 'OR' or 'AND' but got 'b'."),
])
def test_search_errors(jira: JiraMock, api: requests.Session, jql: str, message: str) -> None:
    answer = api.post(f"{jira.base_url}/rest/api/3/search/jql", json={"jql": jql})
    assert answer.status_code == 400
    assert message in answer.json()["errorMessages"][0]
    assert answer.json()["errors"] == {}


def test_index_lag_hides_new_issues_for_some_searches(jira: JiraMock,
                                                      api: requests.Session) -> None:
    jira.index_lag(1)
    created = api.post(f"{jira.base_url}/rest/api/3/issue", json=fields(labels=["new"]))
    assert created.status_code == 201
    url = f"{jira.base_url}/rest/api/3/search/jql"
    assert api.post(url, json={"jql": "labels = new"}).json()["issues"] == []
    assert len(api.post(url, json={"jql": "labels = new"}).json()["issues"]) == 1


def test_create_validates_like_jira(jira: JiraMock, api: requests.Session) -> None:
    url = f"{jira.base_url}/rest/api/3/issue"
    bad = api.post(url, json={"fields": {"project": {"key": "NOPE"}, "issuetype": {
        "name": "Epic"}, "summary": "a\nb", "description": "plain", "labels": ["a b"],
        "priority": {"name": "Urgent"}, "customfield_1": 1}}).json()
    assert bad["errors"] == {
        "project": "valid project is required", "issuetype": "Specify a valid issue type",
        "summary": "The summary is invalid because it contains newline characters.",
        "description": "Operation value must be an Atlassian Document (see the Atlassian "
                       "Document Format)",
        "labels": "The label contains spaces which is invalid.",
        "priority": "Specify the Priority (id or name) in the string format",
        "customfield_1": "Field 'customfield_1' cannot be set. It is not on the appropriate "
                         "screen, or unknown."}
    good = api.post(url, json={**fields(description=to_adf("**ok**")),
                               "properties": [{"key": "p", "value": {"v": 1}}]})
    assert good.status_code == 201 and set(good.json()) == {"id", "key", "self"}
    assert jira.issues()[0]["properties"] == {"p": {"v": 1}}


@pytest.mark.parametrize("doc,problem", [
    ({"type": "doc", "version": 2, "content": []}, "not an ADF document"),
    ({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
        {"type": "text", "text": ""}]}]}, "non-empty string"),
    ({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
        {"type": "text", "text": "x", "marks": [{"type": "code"}, {"type": "strong"}]}]}]},
     "code can only be combined with link"),
    ({"type": "doc", "version": 1, "content": [{"type": "blockquote", "content": [
        {"type": "heading", "attrs": {"level": 1}}]}]}, "heading is not allowed in blockquote"),
    ({"type": "doc", "version": 1, "content": [{"type": "bulletList", "content": []}]},
     "non-empty list"),
    ({"type": "doc", "version": 1, "content": [{"type": "heading", "attrs": {"level": 7}}]},
     "level must be 1..6"),
    ({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
        {"type": "text", "text": "x", "marks": [{"type": "link"}]}]}]}, "attrs.href"),
])
def test_adf_rules(doc: dict[str, Any], problem: str) -> None:
    assert any(problem in p for p in adf_problems(doc)), adf_problems(doc)


def test_comments_page_and_expose_properties_by_id(jira: JiraMock,
                                                   api: requests.Session) -> None:
    key = jira.add_issue("x")
    url = f"{jira.base_url}/rest/api/3/issue/{key}/comment"
    ids = []
    for n in range(3):
        made = api.post(url, json={"body": to_adf(f"c{n}"),
                                   "properties": [{"key": "k", "value": n}]})
        assert made.status_code == 201 and "properties" not in made.json()
        ids.append(made.json()["id"])
    page = api.get(url, params={"startAt": 1, "maxResults": 1}).json()
    assert page["total"] == 3 and page["startAt"] == 1
    assert [c["id"] for c in page["comments"]] == ids[1:2]
    listed = api.post(f"{jira.base_url}/rest/api/3/comment/list",
                      params={"expand": "properties"}, json={"ids": [int(i) for i in ids]})
    assert [c["properties"] for c in listed.json()["values"]] == [
        [{"key": "k", "value": n}] for n in range(3)]
    assert api.post(url, json={"body": "not adf"}).status_code == 400


def test_workflow_transitions(jira: JiraMock, api: requests.Session) -> None:
    key = jira.add_issue("x")
    url = f"{jira.base_url}/rest/api/3/issue/{key}/transitions"
    listed = api.get(url).json()["transitions"]
    assert [(t["id"], t["to"]["name"], t["to"]["statusCategory"]["key"]) for t in listed] == [
        ("21", "In Progress", "indeterminate"), ("31", "Done", "done")]
    invalid = api.post(url, json={"transition": {"id": "11"}})
    assert invalid.status_code == 400
    assert invalid.json()["errorMessages"] == ["Transition id '11' is not valid for this issue."]
    done = api.post(url, json={"transition": {"id": "31"}})
    assert done.status_code == 204 and done.content == b""
    issue = api.get(f"{jira.base_url}/rest/api/3/issue/{key}",
                    params={"fields": "status,resolution"}).json()
    assert issue["fields"]["status"]["name"] == "Done"
    assert issue["fields"]["resolution"]["name"] == "Done"


def test_permissions_auth_and_request_ids(jira: JiraMock, api: requests.Session) -> None:
    key = jira.add_issue("x")
    anonymous = requests.get(f"{jira.base_url}/rest/api/3/issue/{key}")
    assert anonymous.status_code == 401
    assert anonymous.text == "Client must be authenticated to access this resource."
    assert anonymous.headers["X-AREQUESTID"]
    jira.set_permissions("SEC", set())
    hidden = api.get(f"{jira.base_url}/rest/api/3/issue/{key}")
    assert hidden.status_code == 404
    assert hidden.json()["errorMessages"] == [
        "Issue does not exist or you do not have permission to see it."]


def test_rate_limit_answer_has_jira_headers(jira: JiraMock, api: requests.Session) -> None:
    jira.throttle(times=1, retry_after=3)
    limited = api.post(f"{jira.base_url}/rest/api/3/search/jql", json={"jql": "labels = a"})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert limited.headers["RateLimit-Reason"] == "jira-burst-based"
    assert limited.headers["X-RateLimit-Reset"].endswith("Z")
    assert api.post(f"{jira.base_url}/rest/api/3/search/jql", json={"jql": "labels = a"}).ok


def test_the_mock_is_contributed_through_the_plugin_hook(
        isolated_host: Callable[..., PluginHost]) -> None:
    host = isolated_host(jira_plugin, name="jira")
    assert isinstance(host.mock_servers["jira"].factory(), JiraMock)
    assert host.connection_types["jira"].secrets == ("api_token", "token")
