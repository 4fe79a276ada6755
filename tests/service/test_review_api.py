"""Defects found by the review of `crownguard serve` (issue 14), each through a real process:
what an attacker or a careless sender can send, and what the contract says comes back."""

from __future__ import annotations

import json
from typing import Any

from servicetest import Served, new_event


def _error(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "where"}
    assert body["error"]["code"] == code, body
    return dict(body["error"])


# --- intake: JSON that Python reads and the pipeline cannot hold ---------------------------------


def test_a_lone_surrogate_in_an_event_is_a_400_naming_the_field(served: Served) -> None:
    """A lone \\ud800 escape is valid JSON grammar but no text: it was a 500 as a key and, as
    a value, a stored event whose run then answered 500 to every GET, for good."""
    event = new_event()
    raw = json.dumps(event).encode().replace(b'"name": "model-', b'"name": "\\ud800model-')
    error = _error(served.post_event(raw), 400, "invalid_event")
    assert error["where"] == "file.name" and "surrogate" in error["message"]
    keyed = json.dumps(new_event()).encode().replace(b'"action"', b'"act\\udc00ion"')
    error = _error(served.post_event(keyed), 400, "invalid_event")
    assert error["where"] == "act\\udc00ion"
    listed = b"[" + json.dumps(new_event()).encode() + b", " + raw + b"]"
    assert _error(served.post_event(listed), 400, "invalid_event")["where"] == "item 2: file.name"
    assert event["id"] not in [e for e, _ in served.intake()]


def test_an_integer_too_large_for_triage_is_a_400_not_a_failed_intake(served: Served) -> None:
    """10**400 passed the schema (an integer), was stored with a 202, then failed in the
    background ("int too large to convert to float"): the sender believed it was handled."""
    event = new_event()
    raw = json.dumps(event).encode()
    raw = raw.replace(f'"size": {event["file"]["size"]}'.encode(), b'"size": 1' + b"0" * 400)
    error = _error(served.post_event(raw), 400, "invalid_event")
    assert error["where"] == "file.size" and "401 digits" in error["message"]
    assert event["id"] not in [e for e, _ in served.intake()]
    longer = raw.replace(b"1" + b"0" * 400, b"1" * 5000)  # past Python's int limit: no hint
    error = _error(served.post_event(longer), 400, "invalid_event")
    assert error["where"] == "file.size" and "set_int_max_str_digits" not in error["message"]


# --- the runs API: bodies ------------------------------------------------------------------------


def _waiting_run(served: Served) -> str:
    event = new_event()
    assert served.post_event(event).status_code == 202
    [run] = served.runs_of(event["id"])
    assert run["status"] == "waiting", run
    return str(run["run_id"])


def _json(served: Served, path: str, raw: bytes, who: str) -> Any:
    from servicetest import TOKENS
    return served.http.post(f"{served.base}{path}", data=raw, timeout=30, headers={
        "Authorization": f"Bearer {TOKENS[who][1]}", "Content-Type": "application/json"})


def test_a_lone_surrogate_in_an_answer_or_a_reason_is_a_422(served: Served) -> None:
    """`{"comment": "\\ud800"}` was a 500 (the journal could not encode it)."""
    run_id = _waiting_run(served)
    answer = _json(served, f"/v1/runs/{run_id}/steps/ask/answer",
                   b'{"decision": "approve", "comment": "ok \\ud800"}', "alice@corp.example")
    error = _error(answer, 422, "invalid_request")
    assert error["where"] == "body.comment" and "surrogate" in error["message"]
    cancel = _json(served, f"/v1/runs/{run_id}/cancel", b'{"reason": "\\udfff"}', "ops-bot")
    assert _error(cancel, 422, "invalid_request")["where"] == "body.reason"
    undo = _json(served, f"/v1/runs/{run_id}/undo", b'{"step": "\\ud800"}', "ops-bot")
    assert _error(undo, 422, "invalid_request")["where"] == "body.step"
    shown = served.call("GET", f"/v1/runs/{run_id}")
    assert shown.status_code == 200 and shown.json()["status"] == "waiting"
    fine = _json(served, f"/v1/runs/{run_id}/steps/ask/answer",
                 '{"decision": "approve", "comment": "é \\ud83d\\ude00"}'.encode(),
                 "alice@corp.example")
    assert fine.status_code == 200, fine.text
    assert fine.json()["run"]["steps"]["ask"]["output"]["comment"] == "é \U0001f600"


# --- the runs API: parameters --------------------------------------------------------------------


def test_a_sequence_number_past_64_bits_is_a_422_not_a_500(served: Served) -> None:
    """`since_seq=9223372036854775808` (and `after=` of the dead letters) reached the
    database and overflowed there: a 500."""
    for path, name in (("/v1/audit?since_seq=", "since_seq"),
                       ("/v1/intake/dead-letters?after=", "after")):
        for value in ("9223372036854775808", "9" * 30):
            error = _error(served.call("GET", path + value), 422, "invalid_request")
            assert error["where"] == f"query.{name}", error
        assert served.call("GET", path + "9223372036854775807").status_code == 200


def test_the_body_limit_holds_on_every_route_not_only_the_events(served: Served) -> None:
    """service.max_body_bytes ("larger request bodies are refused (413)") held on the events
    route only: a 20 KB answer to a 16 KB service was recorded with a 200."""
    from servicetest import MAX_BODY, TOKENS
    run_id = _waiting_run(served)
    path = f"/v1/runs/{run_id}/steps/ask/answer"
    big = json.dumps({"decision": "approve", "comment": "x" * MAX_BODY}).encode()
    error = _error(_json(served, path, big, "alice@corp.example"), 413, "too_large")
    assert error["where"] == "body" and str(MAX_BODY) in error["message"]
    chunked = served.http.post(  # no Content-Length: counted as it arrives
        f"{served.base}{path}", data=iter([big[:8000], big[8000:]]), timeout=30, headers={
            "Authorization": f"Bearer {TOKENS['alice@corp.example'][1]}",
            "Content-Type": "application/json"})
    _error(chunked, 413, "too_large")
    assert served.call("GET", f"/v1/runs/{run_id}").json()["status"] == "waiting"
    fits = json.dumps({"decision": "approve", "comment": "x" * 1000}).encode()
    assert _json(served, path, fits, "alice@corp.example").status_code == 200


def test_a_body_nested_too_deeply_for_the_runs_api_is_a_documented_400(served: Served) -> None:
    """The framework's own 400 for a body json cannot read (a RecursionError) came back as
    `http_error` with the URL as `where`: a code outside the documented set."""
    run_id = _waiting_run(served)
    deep = b'{"comment": ' + b"[" * 5000 + b"]" * 5000 + b"}"  # within max_body_bytes
    for path, who in ((f"/v1/runs/{run_id}/steps/ask/answer", "alice@corp.example"),
                      (f"/v1/runs/{run_id}/cancel", "ops-bot")):
        error = _error(_json(served, path, deep, who), 400, "not_json")
        assert error["where"] == "body", error
    assert served.call("GET", f"/v1/runs/{run_id}").json()["status"] == "waiting"


def test_every_route_documents_the_413_it_can_answer(served: Served) -> None:
    spec = served.http.get(f"{served.base}/openapi.json", timeout=30).json()
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            assert "413" in operation["responses"], (method, path)


def test_a_rerun_refuses_a_body_field_it_does_not_know(served: Served) -> None:
    """"A body with a field the endpoint does not know (such as `by`) is refused with 422":
    the rerun took any body and ignored it, so `{"by": "mallory"}` seemed to work."""
    run_id = _waiting_run(served)
    assert served.call("POST", f"/v1/runs/{run_id}/cancel", who="ops-bot").status_code == 200
    before = served.call("GET", "/v1/runs?limit=1").json()["runs"]
    error = _error(served.call("POST", f"/v1/runs/{run_id}/rerun", who="ops-bot",
                               json_body={"by": "mallory"}), 422, "invalid_request")
    assert error["where"] == "body.by"
    assert served.call("GET", "/v1/runs?limit=1").json()["runs"] == before  # no new run
    bodies: tuple[dict[str, Any] | None, ...] = ({}, None)
    for body in bodies:
        again = served.call("POST", f"/v1/runs/{run_id}/rerun", who="ops-bot", json_body=body)
        assert again.status_code == 200, again.text
        assert again.json()["by"] == "ops-bot"


def test_an_unknown_run_id_is_named_as_where_the_fault_is(served: Served) -> None:
    """`where` names "the header, parameter, field or item at fault": an unknown run id said
    "" (the request as a whole)."""
    for method, path in (("GET", "/v1/runs/nosuchrun0"), ("POST", "/v1/runs/nosuchrun0/cancel")):
        error = _error(served.call(method, path, who="ops-bot"), 404, "unknown_run")
        assert error["where"] == "run_id", error


def test_a_forged_cursor_is_a_400_bad_cursor_never_a_500(served: Served) -> None:
    """The cursor is base64 JSON anyone can write: a seq past 64 bits or 1e400 (int(inf)), or
    a lone surrogate for the time, reached the query and answered 500."""
    import base64
    for forged in (b'["2026-12-02T13:01:34.857296Z", 1e400]',
                   b'["2026-12-02T13:01:34.857296Z", 99999999999999999999999]',
                   b'["\\ud800", 1]', b'["x", 1.5]', b'[1, 2]', b'["x", true]', b'["x", -1]'):
        cursor = base64.urlsafe_b64encode(forged).decode()
        error = _error(served.call("GET", f"/v1/runs?cursor={cursor}"), 400, "bad_cursor")
        assert error["where"] == "cursor", forged
    _waiting_run(served)
    _waiting_run(served)
    first = served.call("GET", "/v1/runs?limit=1").json()
    assert first["next_cursor"]
    following = served.call("GET", f"/v1/runs?limit=1&cursor={first['next_cursor']}")
    assert following.status_code == 200 and following.json()["runs"] != first["runs"]


def test_an_empty_status_or_playbook_filter_is_no_filter(served: Served) -> None:
    """DESIGN.md writes the listing as `GET /v1/runs?status=&playbook=&limit=&cursor=`: a
    client filling that template in part sent `status=` and got 400 bad_parameter, and
    `playbook=` gave an empty page (schemathesis found the first)."""
    run_id = _waiting_run(served)
    for query in ("status=", "playbook=", "status=&playbook=&cursor="):
        answer = served.call("GET", f"/v1/runs?{query}&limit=500")
        assert answer.status_code == 200, answer.text
        assert run_id in [r["run_id"] for r in answer.json()["runs"]], query


def test_a_405_lists_every_method_of_the_path_in_allow(served: Served) -> None:
    """`OPTIONS /v1/access-requests` answered `Allow: POST`, though GET lists them: the
    first route of the path spoke for all (schemathesis: Allow header mismatch)."""
    for method, path, allowed in (("OPTIONS", "/v1/access-requests", {"GET", "POST"}),
                                  ("DELETE", "/v1/runs/abcdefgh", {"GET"}),
                                  ("GET", "/v1/events/siem", {"POST"})):
        answer = served.call(method, path)
        _error(answer, 405, "method_not_allowed")
        assert allowed <= set(answer.headers["Allow"].split(", ")) <= allowed | {"HEAD"}, \
            (path, answer.headers["Allow"])


def test_an_event_nested_too_deeply_is_a_400_not_a_500(served: Served) -> None:
    """A raw Incydr event may carry fields of its own: one nested 970 deep parsed, was
    normalised, and overflowed the stack when encoded for the journal (500); 300 deep was
    stored with a 202."""
    from servicetest import SAMPLE
    sample = json.loads(SAMPLE.read_text())
    for depth in (300, 970):
        sample["event"]["id"] = f"deep-{depth}-{id(sample)}"
        raw = json.dumps(sample).encode()[:-1] + b', "extra": ' + b"[" * depth + b"1" + \
            b"]" * depth + b"}"
        error = _error(served.post_event(raw), 400, "invalid_event")
        assert error["where"] == "body" and "254 levels" in error["message"], error
        listed = b"[" + json.dumps(new_event()).encode() + b", " + raw + b"]"
        assert _error(served.post_event(listed), 400, "invalid_event")["where"] == "item 2"
        assert sample["event"]["id"] not in [e for e, _ in served.intake()]
    # three normalised events (54 brackets each), and one nesting 250 deep (500 brackets)
    assert served.post_event([new_event() for _ in range(3)]).status_code == 202
    fits = json.dumps(sample).encode()[:-1] + b', "extra": ' + b"[" * 250 + b"]" * 250 + b"}"
    assert served.post_event(fits).status_code == 202
