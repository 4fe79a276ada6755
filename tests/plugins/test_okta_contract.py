"""Contract: every request the okta plugin sends matches Okta's published OpenAPI spec.

The spec (okta/okta-management-openapi-spec, 2.3 MB) is read at test time from
../shared/reference/specs/ (or $CROWNGUARD_VENDOR_SPECS), parsed once per session, and never
copied into this repository; the tests skip cleanly when it is absent. Checked per request:
method and path template, declared and required query parameters and their types, the JSON
body against the operation's requestBody schema, and the SSWS credential scheme. The mock's
routes are checked against the same spec so the mock cannot drift either.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from crownguard.engine import ActionContext, ConflictError, NotFoundError, RecordedCall
from crownguard.plugins import okta as okta_plugin
from crownguard.plugins.okta.mock import OktaMock

SPECS = Path(os.environ.get("CROWNGUARD_VENDOR_SPECS",
                            Path(__file__).resolve().parents[2].parent / "shared" / "reference"
                            / "specs"))
OKTA_SPEC = SPECS / "okta-management.yaml"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# Operations the okta plugin is built on; the scenario below must exercise every one.
PLUGIN_OPERATIONS = {"getUser", "listUsers", "suspendUser", "unsuspendUser",
                     "revokeUserSessions", "listUserGroups", "listGroups", "getGroup",
                     "assignUserToGroup", "unassignUserFromGroup"}


def _nullable_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` as JSON Schema's `null` type, everywhere in a tree."""
    if isinstance(node, list):
        return [_nullable_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_to_json_schema(v) for k, v in node.items()}
    if out.pop("nullable", False) is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    operation_id: str
    parameters: tuple[dict[str, Any], ...]
    request_body: dict[str, Any] | None
    security: tuple[str, ...]


class OpenApiIndex:
    """The operations of an OpenAPI 3.0 document, and a checker for recorded requests."""

    def __init__(self, document: dict[str, Any]):
        self.document = document
        self.components = _nullable_to_json_schema(document.get("components", {}))
        self.operations: list[Operation] = []
        for template, item in document.get("paths", {}).items():
            shared = item.get("parameters", [])
            for method in METHODS:
                op = item.get(method)
                if op is None:
                    continue
                params = {(p["name"], p["in"]): p
                          for p in (self.resolve(x) for x in [*shared, *op.get("parameters", [])])}
                security = op.get("security", document.get("security", []))
                self.operations.append(Operation(
                    method.upper(), template, self._pattern(template), op.get("operationId", ""),
                    tuple(params.values()),
                    self.resolve(op["requestBody"]) if "requestBody" in op else None,
                    tuple(name for requirement in security for name in requirement)))
        # Literal segments win over parameters: /users/me before /users/{id}.
        self.operations.sort(key=lambda o: o.template.count("{"))

    @staticmethod
    def _pattern(template: str) -> re.Pattern[str]:
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        return re.compile(f"^{regex}$")

    def resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        return node

    def find(self, method: str, path: str) -> Operation | None:
        for op in self.operations:
            if op.method == method and op.pattern.match(path):
                return op
        return None

    def templates_for(self, path: str) -> list[str]:
        return sorted({op.method for op in self.operations if op.pattern.match(path)})

    def check(self, call: RecordedCall) -> list[str]:
        """Every way `call` departs from the spec ([] when it conforms)."""
        where = f"{call.method} {call.path}"
        op = self.find(call.method, call.path)
        if op is None:
            allowed = self.templates_for(call.path)
            return [f"{where}: no such operation in the spec"
                    + (f" (the path allows {', '.join(allowed)})" if allowed else "")]
        problems: list[str] = []
        query = [p for p in op.parameters if p.get("in") == "query"]
        declared = {p["name"]: p for p in query}
        for name in call.query:
            if name not in declared:
                problems.append(f"{where} ({op.operation_id}): query parameter '{name}' is not "
                                "declared")
                continue
            problems += self._check_value(where, op, declared[name], call.query[name])
        for param in query:
            if param.get("required") and param["name"] not in call.query:
                problems.append(f"{where} ({op.operation_id}): required query parameter "
                                f"'{param['name']}' is missing")
        problems += self._check_body(where, op, call)
        scheme = call.headers.get("Authorization", "").split(" ", 1)[0]
        if "apiToken" in op.security and scheme != "SSWS":
            problems.append(f"{where} ({op.operation_id}): expected an SSWS API token")
        return problems

    def _check_value(self, where: str, op: Operation, param: dict[str, Any],
                     values: list[str]) -> list[str]:
        kind = (param.get("schema") or {}).get("type")
        problems = []
        for value in values:
            ok = {"boolean": value in ("true", "false"),
                  "integer": re.fullmatch(r"-?\d+", value) is not None}.get(str(kind), True)
            if not ok:
                problems.append(f"{where} ({op.operation_id}): '{param['name']}={value}' is not "
                                f"a {kind}")
        return problems

    def _check_body(self, where: str, op: Operation, call: RecordedCall) -> list[str]:
        body = op.request_body
        if not call.body:
            if body and body.get("required"):
                return [f"{where} ({op.operation_id}): the request body is required"]
            return []
        if body is None:
            return [f"{where} ({op.operation_id}): sends a body the operation does not take"]
        content = body.get("content", {})
        media = call.headers.get("Content-Type", "").split(";")[0].strip()
        if media not in content:
            return [f"{where} ({op.operation_id}): Content-Type '{media}' is not one of "
                    f"{sorted(content)}"]
        schema = content[media].get("schema")
        if schema is None:
            return []
        try:
            payload = json.loads(call.body)
        except ValueError:
            return [f"{where} ({op.operation_id}): the body is not JSON"]
        root = {**_nullable_to_json_schema(copy.deepcopy(schema)),
                "components": self.components}
        validator = jsonschema.Draft7Validator(root)
        return [f"{where} ({op.operation_id}): body {'/'.join(map(str, e.absolute_path))}: "
                f"{e.message}" for e in validator.iter_errors(payload)]


@pytest.fixture(scope="session")
def okta_spec() -> OpenApiIndex:
    if not OKTA_SPEC.is_file():
        pytest.skip(f"Okta's OpenAPI spec is not at {OKTA_SPEC}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with OKTA_SPEC.open(encoding="utf-8") as handle:
        return OpenApiIndex(yaml.load(handle, Loader=loader))


def _call(method: str, path: str, query: dict[str, list[str]] | None = None,
          body: Any = None) -> RecordedCall:
    raw = json.dumps(body).encode() if body is not None else b""
    headers = {"Authorization": "SSWS x"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return RecordedCall(method, path, query or {}, headers, raw)


# the checker can fail ----------------------------------------------------------------------------


def test_checker_accepts_a_conforming_request(okta_spec: OpenApiIndex) -> None:
    call = _call("DELETE", "/api/v1/users/00u1/sessions",
                 {"oauthTokens": ["true"], "forgetDevices": ["false"]})
    assert okta_spec.check(call) == []


@pytest.mark.parametrize(("call", "expected"), [
    (_call("POST", "/api/v1/users/00u1/lifecycle/freeze"), "no such operation"),
    (_call("GET", "/api/v1/users/00u1/lifecycle/suspend"), "the path allows POST"),
    (_call("DELETE", "/api/v1/users/00u1/sessions", {"oauthTokens": ["yes"]}), "not a boolean"),
    (_call("POST", "/api/v1/users/00u1/lifecycle/suspend", {"force": ["true"]}),
     "'force' is not declared"),
    (_call("DELETE", "/api/v1/apps/0oa1/group-push/mappings/gpm1"),
     "required query parameter 'deleteTargetGroup' is missing"),
    (_call("POST", "/api/v1/users", body={"profile": "not an object"}), "body profile"),
    (_call("POST", "/api/v1/users"), "the request body is required"),
    (_call("POST", "/api/v1/users/00u1/lifecycle/suspend", body={"x": 1}),
     "does not take"),
])
def test_checker_rejects_what_okta_would_not_accept(okta_spec: OpenApiIndex, call: RecordedCall,
                                                    expected: str) -> None:
    problems = okta_spec.check(call)
    assert any(expected in p for p in problems), problems


def test_checker_requires_the_ssws_scheme(okta_spec: OpenApiIndex) -> None:
    call = RecordedCall("GET", "/api/v1/users/00u1", {}, {"Authorization": "Bearer x"}, b"")
    assert okta_spec.check(call) == ["GET /api/v1/users/00u1 (getUser): expected an SSWS API "
                                     "token"]


# the plugin and the mock conform -----------------------------------------------------------------


def test_every_request_the_plugin_sends_conforms(
        okta_spec: OpenApiIndex, mock_server: Callable[..., Any],
        isolated_host: Callable[..., Any], crownguard_config: Callable[..., Any]) -> None:
    okta: OktaMock = mock_server(OktaMock)
    okta.page_size = 1  # every look-up pages, so `after` links are exercised too
    host = isolated_host(okta_plugin, name="okta")
    config = crownguard_config({"okta": okta.connection_settings()}, host=host)

    def run(name: str, **inputs: Any) -> Any:
        ctx = ActionContext(run_id="c", step_id="s", attempt=1, idempotency_key="k",
                            connections=config.connections)
        return host.action(name).func(ctx, inputs)

    okta.add_user("h.ng", email="hana.ng@acme.example")
    okta.add_user("h.ng.old", email="hana.ng@acme.example", status="DEPROVISIONED")
    okta.add_user("quote\"d@acme.example")
    run("okta.get_user", user="hana.ng@acme.example")
    run("okta.get_user", user='quote"d@acme.example')
    run("okta.suspend_user", user="alice.chen@acme.example")
    run("okta.suspend_user", user="alice.chen@acme.example")
    run("okta.unsuspend_user", user="alice.chen")
    run("okta.clear_sessions", user="alice.chen@acme.example")
    run("okta.clear_sessions", user="bob.ruiz@acme.example", oauth_tokens=False,
        forget_devices=False)
    group = run("okta.remove_from_group", user="alice.chen@acme.example",
                group="Model Registry Writers")["group_id"]
    run("okta.add_to_group", user="alice.chen@acme.example", group=group)
    with pytest.raises(NotFoundError):
        run("okta.add_to_group", user="alice.chen@acme.example", group="00gUnknownUnknown0000")
    with pytest.raises(ConflictError):
        run("okta.suspend_user", user=okta.add_user("staged@acme.example", status="STAGED"))

    problems = [p for call in okta.calls for p in okta_spec.check(call)]
    assert problems == []
    used = {op.operation_id for call in okta.calls
            if (op := okta_spec.find(call.method, call.path)) is not None}
    assert used == PLUGIN_OPERATIONS


# The org authorization server's token endpoint is in Okta's OAuth spec, not the management one.
OAUTH_ROUTES = {("POST", "/oauth2/v1/token")}


def test_every_mock_route_is_an_okta_operation(okta_spec: OpenApiIndex) -> None:
    for mock_route in OktaMock._routes:
        if (mock_route.method, mock_route.template) in OAUTH_ROUTES:
            continue
        path = re.sub(r"\{[^}]+\}", "00uX", mock_route.template)
        assert okta_spec.find(mock_route.method, path) is not None, mock_route.template
