"""ServiceNowMock behaves as an instance does: encoded queries, Link paging, journal fields,
ACLs, the incident data policy, OAuth grants, rate-limit headers and error bodies."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import requests

import crownguard.plugins.servicenow as servicenow_plugin
from crownguard.engine.plugins import PluginHost
from crownguard.plugins.servicenow.mock import INTEGRATION_USER, OAUTH_CLIENT_ID, ServiceNowMock
from crownguard.plugins.servicenow.mock.query import parse_query


@pytest.fixture
def sn(mock_server: Callable[..., Any]) -> ServiceNowMock:
    server = mock_server(ServiceNowMock)
    assert isinstance(server, ServiceNowMock)
    return server


@pytest.fixture
def api(sn: ServiceNowMock) -> requests.Session:
    session = requests.Session()
    session.auth = (INTEGRATION_USER, sn.password)
    session.headers["Accept"] = "application/json"
    return session


def insert(sn: ServiceNowMock, api: requests.Session, table: str = "incident",
           **values: Any) -> dict[str, Any]:
    response = api.post(f"{sn.base_url}/api/now/table/{table}", json=values)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


RECORDS = [{"a": "1", "b": "x", "n": "3"}, {"a": "2", "b": "y", "n": "1"},
           {"a": "1", "b": "y", "n": "2"}]


@pytest.mark.parametrize("query,expected", [
    ("a=1", ["3", "2"]),
    ("a=1^b=y", ["2"]),
    ("a=2^ORb=x", ["3", "1"]),
    ("b=y^a=2^ORn=2", ["1", "2"]),        # OR binds tighter than AND
    ("bLIKEY", ["1", "2"]),
    ("nIN1,3", ["3", "1"]),
    ("a!=1", ["1"]),
    ("bSTARTSWITHx^ORnISEMPTY", ["3"]),
    ("a=1^ORDERBYn", ["2", "3"]),
    ("ORDERBYDESCn", ["3", "2", "1"]),
    ("zzz=1", []),                          # unknown field: no rows
    ("a~1", []),                            # unparseable term: no rows
    ("", ["3", "1", "2"]),
])
def test_encoded_queries(query: str, expected: list[str]) -> None:
    parsed = parse_query(query)
    found = parsed.sort([r for r in RECORDS if parsed.matches(r)])
    assert [r["n"] for r in found] == expected


def test_link_header_and_total_count(sn: ServiceNowMock, api: requests.Session) -> None:
    for _ in range(5):
        insert(sn, api, short_description="x")
    url = f"{sn.base_url}/api/now/table/incident"
    page = api.get(url, params={"sysparm_limit": "2", "sysparm_offset": "2",
                                "sysparm_query": "active=true", "sysparm_fields": "number"})
    assert page.headers["X-Total-Count"] == "5"
    assert [r["number"] for r in page.json()["result"]] == ["INC0010003", "INC0010004"]
    rels = {rel: re.search(r"sysparm_offset=(\d+)", link["url"]).group(1)  # type: ignore[union-attr]
            for rel, link in page.links.items()}
    assert rels == {"first": "0", "prev": "0", "next": "4", "last": "4"}
    assert "sysparm_query=active%3Dtrue" in page.links["next"]["url"]
    last = api.get(page.links["next"]["url"])
    assert "next" not in last.links and len(last.json()["result"]) == 1
    single = api.get(url, params={"sysparm_limit": 10})
    assert "Link" not in single.headers


def test_values_are_strings_and_references_carry_links(sn: ServiceNowMock,
                                                        api: requests.Session) -> None:
    jane = next(u for u in sn.records("sys_user") if u["user_name"] == "jane.doe")
    record = insert(sn, api, short_description="x", caller_id=jane["sys_id"], urgency=1,
                    u_unknown="dropped")
    assert record["urgency"] == "1" and "u_unknown" not in record
    assert record["caller_id"] == {"link": f"{sn.base_url}/api/now/table/sys_user/"
                                           f"{jane['sys_id']}", "value": jane["sys_id"]}


def test_work_notes_are_journal_entries(sn: ServiceNowMock, api: requests.Session) -> None:
    record = insert(sn, api, short_description="x", work_notes="first")
    url = f"{sn.base_url}/api/now/table/incident/{record['sys_id']}"
    assert api.patch(url, json={"work_notes": "second"}).status_code == 200
    raw = api.get(url, params={"sysparm_fields": "work_notes"}).json()["result"]
    shown = api.get(url, params={"sysparm_fields": "work_notes,state",
                                 "sysparm_display_value": "true"}).json()["result"]
    assert raw == {"work_notes": ""}
    assert shown["state"] == "New"
    entries = shown["work_notes"].split("\n\n")
    assert entries[0].endswith("Crownguard Integration (Work notes)\nsecond")
    assert entries[1].endswith("(Work notes)\nfirst")


def test_acls_hide_rows_and_refuse_writes(sn: ServiceNowMock, api: requests.Session) -> None:
    record = insert(sn, api, "sn_hr_core_case", short_description="x")
    sn.set_roles(INTEGRATION_USER, {"itil"})
    base = f"{sn.base_url}/api/now/table/sn_hr_core_case"
    assert api.get(base).json() == {"result": []}
    hidden = api.get(f"{base}/{record['sys_id']}")
    assert hidden.status_code == 404
    assert hidden.json() == {"error": {"message": "No Record found", "detail": "Record doesn't "
                                       "exist or ACL restricts the record retrieval"},
                             "status": "failure"}
    refused = api.post(base, json={"short_description": "y"})
    assert refused.status_code == 403
    assert refused.json()["error"]["detail"] == \
        "ACL Exception Insert Failed due to security constraints"


def test_resolving_an_incident_needs_code_and_notes(sn: ServiceNowMock,
                                                    api: requests.Session) -> None:
    record = insert(sn, api, short_description="x")
    url = f"{sn.base_url}/api/now/table/incident/{record['sys_id']}"
    refused = api.patch(url, json={"state": "6"})
    assert refused.status_code == 403
    assert "mandatory: Resolution code, Resolution notes" in refused.json()["error"]["detail"]
    done = api.patch(url, json={"state": 6, "close_code": "Solution provided",
                                "close_notes": "ok"})
    assert done.json()["result"]["state"] == "6" and done.json()["result"]["active"] == "false"


def test_unauthenticated_and_unknown_paths(sn: ServiceNowMock) -> None:
    anonymous = requests.get(f"{sn.base_url}/api/now/table/incident")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["message"] == "User Not Authenticated"
    assert "Basic" in anonymous.headers["WWW-Authenticate"]
    wrong = requests.get(f"{sn.base_url}/api/now/table/incident", auth=(INTEGRATION_USER, "no"))
    assert wrong.status_code == 401
    unknown = requests.get(f"{sn.base_url}/api/now/nothing", auth=(INTEGRATION_USER, sn.password))
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == "Requested URI does not represent any resource"
    table = requests.get(f"{sn.base_url}/api/now/table/u_x", auth=(INTEGRATION_USER, sn.password))
    assert table.json()["error"]["message"] == "Invalid table u_x"


def test_oauth_grants_and_token_expiry(sn: ServiceNowMock) -> None:
    token_url = f"{sn.base_url}/oauth_token.do"
    form = {"grant_type": "password", "client_id": OAUTH_CLIENT_ID,
            "client_secret": sn.client_secret, "username": INTEGRATION_USER,
            "password": sn.password}
    issued = requests.post(token_url, data=form).json()
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 1800
    bearer = {"Authorization": f"Bearer {issued['access_token']}"}
    assert requests.get(f"{sn.base_url}/api/now/table/incident", headers=bearer).ok
    sn.expire_tokens()
    assert requests.get(f"{sn.base_url}/api/now/table/incident",
                        headers=bearer).status_code == 401
    refreshed = requests.post(token_url, data={
        "grant_type": "refresh_token", "client_id": OAUTH_CLIENT_ID,
        "client_secret": sn.client_secret, "refresh_token": issued["refresh_token"]})
    assert refreshed.ok and refreshed.json()["access_token"] != issued["access_token"]
    denied = requests.post(token_url, data={**form, "password": "wrong"})
    assert denied.status_code == 401
    assert denied.json() == {"error_description": "access_denied", "error": "server_error"}


def test_rate_limit_answer_has_the_instance_headers(sn: ServiceNowMock,
                                                    api: requests.Session) -> None:
    sn.throttle(times=1, retry_after=7)
    limited = api.get(f"{sn.base_url}/api/now/table/incident")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "7"
    assert {"X-RateLimit-Limit", "X-RateLimit-Reset", "X-RateLimit-Rule"} <= set(limited.headers)
    assert limited.json()["status"] == "failure"
    assert api.get(f"{sn.base_url}/api/now/table/incident").ok
    assert len(sn.calls) == 2


def test_a_lost_response_still_stores_the_record(sn: ServiceNowMock,
                                                 api: requests.Session) -> None:
    sn.lose_response("POST", "/api/now/table/incident", status=503)
    lost = api.post(f"{sn.base_url}/api/now/table/incident", json={"short_description": "x"})
    assert lost.status_code == 503 and lost.json()["status"] == "failure"
    assert len(sn.records("incident")) == 1
    assert api.post(f"{sn.base_url}/api/now/table/incident",
                    json={"short_description": "y"}).status_code == 201


def test_the_mock_is_contributed_through_the_plugin_hook(
        isolated_host: Callable[..., PluginHost]) -> None:
    host = isolated_host(servicenow_plugin, name="servicenow")
    spec = host.mock_servers["servicenow"]
    assert isinstance(spec.factory(), ServiceNowMock)
    assert host.connection_types["servicenow"].secrets == ("password", "token", "client_secret")
