"""schemathesis against the served /openapi.json of a real `crownguard serve` process.

Every operation is called with generated parameters and bodies, signed (events) and with an
approver's bearer token (the rest): no answer may be a 5xx, and every answer's status, content
type, headers and body must be the ones /openapi.json documents for its route, the error shape
`{"error": {"code", "message", "where"}}` included.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servicetest import SECRETS, SLOW, TOKENS, Served, new_event, sign

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
# Enough examples to reach every documented refusal; the module takes ~15 s.
EXAMPLES = 40
SEEN: dict[str, set[int]] = {}


class SignedAndBearer(requests.auth.AuthBase):
    """Sign every request's exact body as the `siem` source, and carry alice's token."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else bytes(body)
        ts = str(int(time.time()))
        request.headers["X-Crownguard-Timestamp"] = ts
        request.headers["X-Crownguard-Signature"] = sign(SECRETS["siem"], ts, raw)
        # Always alice's: a generated Authorization would only ever meet 401 (tested apart).
        request.headers["Authorization"] = f"Bearer {TOKENS['alice@corp.example'][1]}"
        return request


@pytest.fixture(scope="module")
def api_schema(served: Served) -> Any:
    return schemathesis.openapi.from_url(f"{served.base}/openapi.json")


@pytest.fixture(scope="module")
def fuzz_session(served: Served) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.auth = SignedAndBearer()
    return session


def _operations() -> list[str]:
    return ["GET /healthz", "GET /readyz", "GET /metrics", "POST /v1/events/{source}",
            "GET /v1/runs", "GET /v1/runs/{run_id}",
            "POST /v1/runs/{run_id}/steps/{step_id}/answer", "POST /v1/runs/{run_id}/cancel",
            "POST /v1/runs/{run_id}/undo", "POST /v1/runs/{run_id}/rerun", "GET /v1/audit",
            "GET /v1/playbooks"]


def _with_path(pair: tuple[Any, dict[str, str]]) -> Any:
    case, values = pair
    if "body" in values:
        case.body = values.pop("body")
    case.path_parameters = {**(case.path_parameters or {}), **values}
    return case


@pytest.fixture(scope="module")
def real_runs(served: Served) -> list[str]:
    """A waiting run and a succeeded one, so the run routes meet real runs too (409s...)."""
    ids = []
    for event in (new_event(), new_event(SLOW)):
        assert served.post_event(event).status_code == 202
        ids += [run["run_id"] for run in served.runs_of(event["id"])]
    assert len(ids) == 2, ids
    return ids


@pytest.mark.parametrize("mode", ["positive", "negative", "real-runs"])
@pytest.mark.parametrize("label", _operations())
def test_every_answer_is_documented(label: str, mode: str, api_schema: Any, served: Served,
                                    fuzz_session: requests.Session,
                                    request: pytest.FixtureRequest) -> None:
    method, path = label.split()
    operation = api_schema[path][method]
    fixed: dict[str, Any] | None = None
    if path == "/v1/events/{source}" and mode != "negative":
        # Mostly a configured source (signed by SignedAndBearer), sometimes an unknown one.
        fixed = {"source": st.sampled_from(["siem", "siem", "siem", "nosuch"])}
        if mode == "real-runs":
            fixed["body"] = st.sampled_from([new_event(), [new_event(), new_event()]])
    elif mode == "real-runs":
        if "{run_id}" not in path:
            pytest.skip("no run in the path")
        runs = request.getfixturevalue("real_runs")
        fixed = {"run_id": st.sampled_from(runs), **({"step_id": st.just("ask")}
                                                    if "{step_id}" in path else {})}
    elif mode == "negative" and not (operation.path_parameters or operation.query
                                     or operation.body):
        pytest.skip("nothing to make invalid: no parameter and no body")
    generation = schemathesis.GenerationMode("negative" if mode == "negative" else "positive")
    strategy = operation.as_strategy(generation_mode=generation)
    if fixed:
        strategy = st.tuples(strategy, st.fixed_dictionaries(fixed)).map(_with_path)

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        response = case.call_and_validate(base_url=served.base, session=fuzz_session,
                                          checks=CHECKS, timeout=30)
        SEEN.setdefault(label, set()).add(response.status_code)

    fuzz()


def test_every_4xx_is_documented_with_the_error_shape(served: Served) -> None:
    spec = served.call("GET", "/openapi.json", who=None).json()
    schemas = spec["components"]["schemas"]
    assert schemas["Error"]["required"] == ["error"]
    assert schemas["Error"]["additionalProperties"] is False
    assert schemas["Error"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
    assert set(schemas["ErrorDetail"]["required"]) == {"code", "message", "where"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            codes = operation["responses"]
            assert "500" in codes, (method, path)
            if path != "/healthz":
                assert "503" in codes, (method, path)
            if operation.get("parameters") or operation.get("requestBody"):
                assert any(c.startswith("4") for c in codes), (method, path)
            for code, response in codes.items():
                if code[0] in "45":
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Error"}, (method, path, code)


def test_undocumented_statuses_are_caught(served: Served) -> None:
    """The check the fuzzer relies on fails for a status a route does not list (a 401 on a
    route documented without one would be reported, not let through)."""
    spec = served.call("GET", "/openapi.json", who=None).json()
    assert "401" not in spec["paths"]["/healthz"]["get"]["responses"]
    assert "401" in spec["paths"]["/v1/runs"]["get"]["responses"]
    assert "429" in spec["paths"]["/v1/events/{source}"]["post"]["responses"]


def test_the_fuzzer_reached_the_service() -> None:
    """Runs after the fuzzing above: it got past the signature and the tokens, not only
    refusals at the door."""
    if len(SEEN) < len(_operations()):
        pytest.skip("run with the fuzzing tests above")
    assert 202 in SEEN["POST /v1/events/{source}"], SEEN
    assert {200, 404} <= SEEN["GET /v1/runs/{run_id}"], SEEN
    assert 409 in SEEN["POST /v1/runs/{run_id}/cancel"], SEEN
