"""Contract: every request the falcon plugin sends matches CrowdStrike's own endpoint table.

The table is read at test time from the `crowdstrike-falconpy` SDK (public domain), whose
`falconpy._endpoint` modules are generated from the vendor's swagger:
[operation id, method, path, description, collection, parameters]. Body fields are checked
against the body documented by the SDK method that sends that operation. Skipped cleanly when
falconpy is not installed.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from crownguard.engine import RecordedCall
from crownguard.plugins import falcon as falcon_plugin
from crownguard.plugins.falcon.mock import FalconMock

endpoint_package = pytest.importorskip("falconpy._endpoint")

ALICE = "4e1f0c3a9b7d4c21a5f08e6d2b3c7a91"
ALICE_MODEL = r"C:\Users\alice\Downloads\corp-brain-v3.safetensors"
ALICE_QUARANTINE = r"C:\ProgramData\Crownguard\Quarantine"
# RFC 6749 §4.4.2 makes grant_type part of every client-credentials request; the engine's
# OAuth2 client always sends it and Falcon accepts it, though the swagger does not list it.
STANDARD_OAUTH_FIELDS = {"grant_type"}


@dataclass(frozen=True)
class Endpoint:
    operation: str
    method: str
    path: str
    collection: str
    params: tuple[dict[str, Any], ...]

    def named(self, where: str) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in self.params if p.get("in") == where}


@cache
def endpoint_table() -> tuple[Endpoint, ...]:
    found: list[Endpoint] = []
    for module_info in pkgutil.iter_modules(endpoint_package.__path__):
        if module_info.ispkg:
            continue
        module = importlib.import_module(f"{endpoint_package.__name__}.{module_info.name}")
        for name, value in vars(module).items():
            if name.endswith("_endpoints") and isinstance(value, list):
                found.extend(Endpoint(e[0], e[1], e[2], e[4], tuple(e[5])) for e in value)
    return tuple(found)


@cache
def _path_pattern(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")


def match(call: RecordedCall) -> list[Endpoint]:
    return [e for e in endpoint_table()
            if e.method == call.method and _path_pattern(e.path).match(call.path)]


def documented_body_fields(endpoint: Endpoint) -> frozenset[str]:
    """Body fields the SDK documents for an operation: the `body` block of the docstring of
    the service method that sends it, or the `**field**` names in the swagger text."""
    fields = set(_service_method_body_fields(endpoint.collection, endpoint.operation))
    for param in endpoint.named("body").values():
        fields |= set(re.findall(r"\*\*(\w+)\*\*", str(param.get("description", ""))))
    return frozenset(fields)


@cache
def _service_method_body_fields(collection: str, operation: str) -> frozenset[str]:
    try:
        tree = ast.parse(inspect.getsource(importlib.import_module(f"falconpy.{collection}")))
    except (ImportError, OSError):
        return frozenset()
    fields: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(
                isinstance(c, ast.Constant) and c.value == operation for c in ast.walk(node)):
            block = re.search(r"body : dict(.*?)\n\s*\n", ast.get_docstring(node) or "",
                              re.DOTALL)
            if block:
                fields |= set(re.findall(r'"(\w+)":', block.group(1)))
    return frozenset(fields)


def problems_with(call: RecordedCall) -> Iterator[str]:
    where = f"{call.method} {call.path}"
    candidates = match(call)
    if not candidates:
        yield f"{where}: not in falconpy's endpoint table"
        return
    endpoint = candidates[0]
    query = endpoint.named("query")
    for name in call.query:
        if name not in query:
            yield f"{where} ({endpoint.operation}): query parameter {name!r} is not declared"
    for name, param in query.items():
        if param.get("required") and name not in call.query:
            yield f"{where} ({endpoint.operation}): required query parameter {name!r} missing"
        description = str(param.get("description", ""))
        if name == "action_name" and call.arg(name) and call.arg(name) not in description:
            yield f"{where}: action_name {call.arg(name)!r} is not one the API documents"
    form = endpoint.named("formData")
    if form:
        sent = call.form
        for name in set(sent) - set(form) - STANDARD_OAUTH_FIELDS:
            yield f"{where} ({endpoint.operation}): form field {name!r} is not declared"
        for name, param in form.items():
            if param.get("required") and name not in sent:
                yield f"{where} ({endpoint.operation}): required form field {name!r} missing"
    body_params = endpoint.named("body")
    if any(p.get("required") for p in body_params.values()) and call.json is None:
        yield f"{where} ({endpoint.operation}): a JSON body is required"
    if isinstance(call.json, dict):
        if not body_params:
            yield f"{where} ({endpoint.operation}): sends a body the endpoint does not take"
        documented = documented_body_fields(endpoint)
        for name in call.json:
            if name not in documented:
                yield (f"{where} ({endpoint.operation}): body field {name!r} is not documented "
                       f"(documented: {sorted(documented)})")


SCENARIO = f"""
name: falcon-contract-scenario
steps:
  - id: by_name
    action: falcon.find_host
    with: {{hostname: LAB-REIMAGED}}
  - id: by_id
    action: falcon.find_host
    needs: [by_name]
    with: {{device_id: {ALICE}}}
  - id: contain
    action: falcon.contain_host
    needs: [by_id]
    with: {{device_id: {ALICE}}}
  - id: lift
    action: falcon.lift_containment
    needs: [contain]
    with: {{hostname: WS-ALICE-01}}
  - id: move
    action: falcon.quarantine_file
    needs: [lift]
    with: {json.dumps({"device_id": ALICE, "path": ALICE_MODEL, "mode": "move",
                       "destination": ALICE_QUARANTINE})}
  - id: restore
    action: falcon.restore_file
    needs: [move]
    with: {json.dumps({"device_id": ALICE, "path": ALICE_MODEL,
                       "destination": ALICE_QUARANTINE})}
  - id: remove
    action: falcon.quarantine_file
    needs: [restore]
    with: {json.dumps({"device_id": ALICE, "path": ALICE_MODEL})}
"""


def test_every_request_the_plugin_sends_is_in_falconpys_endpoint_table(
        mock_server: Callable[..., Any], isolated_host: Callable[..., Any],
        crownguard_config: Callable[..., Any],
        run_playbook: Callable[..., dict[str, Any]]) -> None:
    falcon: FalconMock = mock_server(FalconMock)
    for day in range(1, 4):
        falcon.add_host("LAB-REIMAGED", last_seen=f"2026-11-0{day}T10:00:00Z")
    host = isolated_host(falcon_plugin, name="falcon")
    config = crownguard_config({"falcon": {**falcon.connection_settings(), "page_size": 2}},
                               host=host)
    record = run_playbook(SCENARIO, {}, config=config, host=host)
    assert record["status"] == "succeeded", record

    operations = {match(c)[0].operation for c in falcon.calls if match(c)}
    assert operations >= {"oauth2AccessToken", "QueryDevicesByFilter", "GetDeviceDetailsV2",
                          "PerformActionV2", "RTR_InitSession",
                          "RTR_ExecuteActiveResponderCommand",
                          "RTR_CheckActiveResponderCommandStatus", "RTR_ListFilesV2",
                          "RTR_DeleteSession"}
    problems = [p for call in falcon.calls for p in problems_with(call)]
    assert problems == []


def test_the_contract_check_catches_a_wrong_path_and_an_undocumented_field() -> None:
    wrong_path = RecordedCall("POST", "/devices/entities/device-actions/v2",
                              {"action_name": ["contain"]}, {}, b'{"ids": ["x"]}')
    assert any("not in falconpy" in p for p in problems_with(wrong_path))
    extra_field = RecordedCall("POST", "/devices/entities/devices-actions/v2",
                               {"action_name": ["contain"]}, {},
                               b'{"ids": ["x"], "reason": "model exfiltration"}')
    assert any("'reason' is not documented" in p for p in problems_with(extra_field))
    bad_action = RecordedCall("POST", "/devices/entities/devices-actions/v2",
                              {"action_name": ["isolate"]}, {}, b'{"ids": ["x"]}')
    assert any("action_name 'isolate'" in p for p in problems_with(bad_action))
    no_sequence = RecordedCall("GET", "/real-time-response/entities/active-responder-command/v1",
                               {"cloud_request_id": ["x"]}, {}, b"")
    assert any("'sequence_id' missing" in p for p in problems_with(no_sequence))
