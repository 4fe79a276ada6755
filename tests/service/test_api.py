"""The service's HTTP API through a real `crownguard serve` process: signed intake, the runs
API with roles, the error shape, health, metrics and the OpenAPI description."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from servicetest import (
    MAX_BODY,
    SECRETS,
    SHORT_WAIT,
    SLOW,
    TOKENS,
    Served,
    new_event,
    wait_for,
)

from crownguard.engine.scenarios import MockFleet


def _error(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "where"}
    assert body["error"]["code"] == code, body
    assert "Traceback" not in answer.text
    return dict(body["error"])


# --- intake ------------------------------------------------------------------------------------


def test_a_signed_event_is_accepted_and_its_run_appears(served: Served) -> None:
    event = new_event()
    answer = served.post_event(event)
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": [{"event_id": event["id"], "duplicate": False}]}
    [run] = served.runs_of(event["id"])
    assert run["playbook"] == "contain-after-approval" and run["status"] == "waiting"
    listed = served.call("GET", "/v1/runs?status=waiting&playbook=contain-after-approval")
    assert run["run_id"] in [r["run_id"] for r in listed.json()["runs"]]


def test_a_redelivered_event_is_accepted_and_never_run_twice(served: Served) -> None:
    event = new_event()
    assert served.post_event(event).status_code == 202
    first = served.runs_of(event["id"])
    again = served.post_event(event)
    assert again.status_code == 202
    assert again.json()["accepted"] == [{"event_id": event["id"], "duplicate": True}]
    assert [e for e, _ in served.intake()].count(event["id"]) == 1
    assert len(first) == 1 and served.runs_of(event["id"]) == first


@pytest.mark.parametrize(("change", "code", "where"), [
    ({"secret": "not-the-secret-0123456789"}, "bad_signature", "X-Crownguard-Signature"),
    # Offsets from the time of the request, not of collection (a long suite runs minutes later).
    ({"timestamp": -301}, "stale_timestamp", "X-Crownguard-Timestamp"),
    ({"timestamp": +400}, "stale_timestamp", "X-Crownguard-Timestamp"),
    ({"headers": {"X-Crownguard-Signature": None}}, "unsigned", "X-Crownguard-Signature"),
    ({"headers": {"X-Crownguard-Timestamp": None}}, "unsigned", "X-Crownguard-Timestamp"),
    ({"headers": {"X-Crownguard-Timestamp": "yesterday"}}, "bad_timestamp",
     "X-Crownguard-Timestamp"),
    ({"source": "nobody"}, "unknown_source", "source"),
    ({"secret": SECRETS["burst"]}, "bad_signature", "X-Crownguard-Signature"),  # another's
])
def test_a_badly_signed_request_is_401_and_nothing_is_stored(served: Served,
                                                             change: dict[str, Any], code: str,
                                                             where: str) -> None:
    event = new_event()
    if "timestamp" in change:
        change = {**change, "timestamp": int(time.time()) + change["timestamp"]}
    error = _error(served.post_event(event, **change), 401, code)
    assert error["where"] == where
    assert event["id"] not in [e for e, _ in served.intake()]
    assert SECRETS["siem"] not in error["message"]


def test_the_signature_covers_the_body(served: Served) -> None:
    event = new_event()
    ts = str(int(time.time()))
    from servicetest import sign

    other = json.dumps(new_event()).encode()
    answer = served.post_event(event, headers={"X-Crownguard-Timestamp": ts,
                                               "X-Crownguard-Signature":
                                                   sign(SECRETS["siem"], ts, other)})
    _error(answer, 401, "bad_signature")


@pytest.mark.parametrize(("body", "code", "where"), [
    (b"{not json", "not_json", "line 1 column 2"),
    (b'"an event"', "not_an_event", "body"),
    (b"[]", "no_events", "body"),
    ({"what": "is this"}, "invalid_event", "body"),
])
def test_a_body_that_is_no_event_is_400(served: Served, body: Any, code: str,
                                        where: str) -> None:
    error = _error(served.post_event(body), 400, code)
    assert error["where"] == where


def test_a_bad_field_is_400_naming_item_and_field_and_nothing_is_stored(served: Served) -> None:
    good, bad = new_event(), new_event()
    bad["file"]["name"] = 3
    error = _error(served.post_event([good, bad]), 400, "invalid_event")
    assert error["where"] == "item 2: file.name"
    assert "item 2: file.name: 3 is not of type 'string'" in error["message"]
    stored = [e for e, _ in served.intake()]
    assert good["id"] not in stored and bad["id"] not in stored


def test_a_body_over_the_limit_is_413(served: Served) -> None:
    events = [new_event() for _ in range(MAX_BODY // 1000 + 2)]
    assert len(json.dumps(events)) > MAX_BODY
    error = _error(served.post_event(events), 413, "too_large")
    assert "service.max_body_bytes" in error["message"]
    assert events[0]["id"] not in [e for e, _ in served.intake()]


def test_a_chunked_body_over_the_limit_is_413_too(served: Served) -> None:
    # No Content-Length to go by: the limit holds while the body is read.
    def chunks() -> Any:
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    answer = served.http.post(f"{served.base}/v1/events/siem", data=chunks(),
                              headers={"X-Crownguard-Timestamp": str(int(time.time())),
                                       "X-Crownguard-Signature": "v1=00"}, timeout=30)
    assert "content-length" not in {k.lower() for k in answer.request.headers}
    _error(answer, 413, "too_large")


def test_a_source_over_its_rate_is_429_with_retry_after(served: Served) -> None:
    answers = [served.post_event(new_event(), source="burst") for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [202, 202]
    _error(answers[2], 429, "rate_limited")
    assert int(answers[2].headers["Retry-After"]) >= 1


# --- the runs API ------------------------------------------------------------------------------


def test_answering_through_the_api_records_the_token_name_as_by(served: Served,
                                                               service_fleet: MockFleet) -> None:
    okta = service_fleet.get("okta")
    event = new_event()
    okta.add_user(event["actor"]["email"])  # type: ignore[attr-defined]
    served.post_event(event)
    [run] = served.runs_of(event["id"])
    run_id = run["run_id"]
    [wait] = run["waiting"]
    assert wait["step"] == "ask" and wait["approvers"] == ["alice@corp.example"]
    assert wait["expires_at"] and run["timeline"][0]["type"] == "run_started"
    path = f"/v1/runs/{run_id}/steps/ask/answer"
    # Who may answer: a viewer may not; an approver the step does not name is refused.
    _error(served.call("POST", path, json_body={"decision": "approve"}), 403, "forbidden")
    refused = _error(served.call("POST", path, who="bob@corp.example",
                                 json_body={"decision": "approve"}), 403, "answer_refused")
    assert "bob@corp.example may not answer" in refused["message"]
    # No `by` from the body: the token says who.
    _error(served.call("POST", path, who="alice@corp.example",
                       json_body={"decision": "approve", "by": "mallory"}), 422,
           "invalid_request")
    start = max(e["seq"] for e in _audit(served, 0))
    # A run id prefix of 8 or more characters is taken, as by the CLI.
    answer = served.call("POST", f"/v1/runs/{run_id[:10]}/steps/ask/answer",
                         who="alice@corp.example",
                         json_body={"decision": "approve", "comment": "go"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["run"]["status"] == "succeeded"
    assert okta.status_of(event["actor"]["email"]) == "SUSPENDED"  # type: ignore[attr-defined]
    approvals = [e["payload"] for e in _audit(served, start) if e["kind"] == "approval"]
    assert [(a["by"], a["accepted"], a["comment"]) for a in approvals] == [
        ("alice@corp.example", True, "go")]
    shown = served.call("GET", f"/v1/runs/{run_id}").json()
    assert [(a["by"], a["accepted"]) for a in shown["approvals"]] == [
        ("bob@corp.example", False), ("alice@corp.example", True)]
    assert shown["waiting"] == [] and shown["status"] == "succeeded"


def _audit(served: Served, since: int) -> list[dict[str, Any]]:
    answer = served.call("GET", f"/v1/audit?since_seq={since}")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith(
        "application/x-ndjson")
    entries = [json.loads(line) for line in answer.text.splitlines()]
    assert all(e["seq"] > since for e in entries)
    return entries


def test_roles_decide_who_may_cancel(served: Served) -> None:
    event = new_event()
    served.post_event(event)
    [run] = served.runs_of(event["id"])
    path = f"/v1/runs/{run['run_id']}/cancel"
    _error(served.call("POST", path, who=None), 401, "unauthenticated")
    _error(served.call("POST", path, who=None, token="x" * 30), 401, "unauthenticated")
    error = _error(served.call("POST", path, json_body={}), 403, "forbidden")
    assert "'siem-reader' is a viewer; this needs responder" in error["message"]
    assert served.call("GET", f"/v1/runs/{run['run_id']}").json()["status"] == "waiting"
    cancelled = served.call("POST", path, who="ops-bot", json_body={"reason": "false alarm"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["run"]["status"] == "cancelled"
    entry = [e for e in _audit(served, 0) if e["run_id"] == run["run_id"]
             and e["type"] == "run_cancelled"]
    assert entry and entry[0]["payload"]["by"] == "ops-bot"
    _error(served.call("POST", path, who="ops-bot"), 409, "run_state")
    rerun = served.call("POST", f"/v1/runs/{run['run_id']}/rerun", who="ops-bot")
    assert rerun.status_code == 200, rerun.text
    assert rerun.json()["parent_run_id"] == run["run_id"]
    assert rerun.json()["run"]["status"] == "waiting"


def test_undo_through_the_api_reverts_as_the_caller(served: Served,
                                                   service_fleet: MockFleet) -> None:
    okta = service_fleet.get("okta")
    event = new_event(SLOW)
    email = event["actor"]["email"] = f"{event['id']}@example.com"
    okta.add_user(email)  # type: ignore[attr-defined]
    served.post_event(event)
    [run] = served.runs_of(event["id"])
    assert run["status"] == "succeeded" and okta.status_of(email) == "SUSPENDED"  # type: ignore[attr-defined]
    path = f"/v1/runs/{run['run_id']}/undo"
    _error(served.call("POST", path), 403, "forbidden")
    dry = served.call("POST", path, who="ops-bot", json_body={"dry_run": True})
    assert dry.status_code == 200 and dry.json()["dry_run"] is True
    assert okta.status_of(email) == "SUSPENDED"  # type: ignore[attr-defined]
    undone = served.call("POST", path, who="ops-bot", json_body={})
    assert undone.status_code == 200, undone.text
    assert undone.json()["calls"] == 1 and undone.json()["run"]["status"] == "succeeded"
    assert okta.status_of(email) == "ACTIVE"  # type: ignore[attr-defined]
    shown = served.call("GET", f"/v1/runs/{undone.json()['undo_run_id']}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["steps"]["undo_suspend"]["status"] == "succeeded", shown.text
    [undo_run] = [r for r in served.call("GET", "/v1/runs?limit=500").json()["runs"]
                  if r["run_id"] == undone.json()["undo_run_id"]]
    assert undo_run["kind"] == "undo" and undo_run["parent_run_id"] == run["run_id"]
    started = [e["payload"] for e in _audit(served, 0) if e["run_id"] == undo_run["run_id"]
               and e["type"] == "run_started"]
    assert [(p["by"], p["undo_of"]) for p in started] == [("ops-bot", run["run_id"])]


def test_an_expired_wait_is_settled_by_the_timer(served: Served) -> None:
    event = new_event(SHORT_WAIT)
    served.post_event(event)
    [run] = served.runs_of(event["id"])
    assert run["playbook"] == "short-wait"

    def settled() -> Any:
        shown = served.call("GET", f"/v1/runs/{run['run_id']}").json()
        return shown if shown["status"] != "waiting" else None

    shown = wait_for(settled, 15, "the timer to settle the expired wait")
    assert shown["status"] == "failed" and shown["steps"]["ask"]["status"] == "failed"


def test_runs_are_listed_newest_first_in_pages(served: Served) -> None:
    for _ in range(3):
        event = new_event()
        served.post_event(event)
        served.runs_of(event["id"])
    first = served.call("GET", "/v1/runs?limit=2").json()
    assert len(first["runs"]) == 2 and first["next_cursor"]
    second = served.call("GET", f"/v1/runs?limit=2&cursor={first['next_cursor']}").json()
    created = [r["created_at"] for r in first["runs"] + second["runs"]]
    assert created == sorted(created, reverse=True)
    assert not {r["run_id"] for r in first["runs"]} & {r["run_id"] for r in second["runs"]}
    _error(served.call("GET", "/v1/runs?status=sleeping"), 400, "bad_parameter")
    _error(served.call("GET", "/v1/runs?cursor=nonsense"), 400, "bad_cursor")
    _error(served.call("GET", "/v1/runs?limit=0"), 422, "invalid_request")
    _error(served.call("GET", "/v1/runs/0000000000000000"), 404, "unknown_run")


def test_playbooks_lists_what_routing_can_start(served: Served) -> None:
    found = served.call("GET", "/v1/playbooks").json()["playbooks"]
    assert {p["name"]: bool(p["trigger"]) for p in found} == {
        "contain-after-approval": True, "short-wait": True, "suspend-now": True}


# --- errors, health, metrics, OpenAPI -------------------------------------------------------------


def test_every_error_has_the_json_shape(served: Served) -> None:
    _error(served.call("GET", "/v1/nothing-here"), 404, "not_found")
    _error(served.call("DELETE", "/v1/runs"), 405, "method_not_allowed")
    _error(served.call("POST", "/v1/runs/x/steps/y/answer", who="alice@corp.example",
                       json_body={"decision": "maybe"}), 422, "invalid_request")


def test_health_metrics_and_openapi(served: Served) -> None:
    assert served.call("GET", "/healthz", who=None).json() == {"status": "ok"}
    ready = served.call("GET", "/readyz", who=None)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    served.post_event(new_event())
    metrics = served.call("GET", "/metrics", who=None)
    assert metrics.status_code == 200
    names = {line.split("{")[0].split(" ")[0] for line in metrics.text.splitlines()
             if line and not line.startswith("#")}
    assert names and all(n.startswith("crownguard_") for n in names)
    assert "crownguard_events_accepted_total" in names
    assert "crownguard_http_requests_total" in names
    spec = served.call("GET", "/openapi.json", who=None).json()
    assert spec["openapi"].startswith("3.1")
    assert {"/v1/events/{source}", "/v1/runs", "/v1/runs/{run_id}",
            "/v1/runs/{run_id}/steps/{step_id}/answer", "/v1/runs/{run_id}/cancel",
            "/v1/runs/{run_id}/undo", "/v1/runs/{run_id}/rerun", "/v1/audit",
            "/v1/playbooks", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])


def test_no_token_or_secret_reaches_the_log(served: Served) -> None:
    text = "".join(served.log)
    for _, token in TOKENS.values():
        assert token not in text
    for secret in SECRETS.values():
        assert secret not in text
