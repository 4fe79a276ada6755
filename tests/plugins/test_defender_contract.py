"""Contract: every request the defender plugin sends uses a path, body fields and $filter
properties that the vendor reference documents.

The reference (../shared/reference/vendor-apis.md, section 3) is read at test time and never
copied here; the test is skipped when it is absent. Three read endpoints the reference does not
list are checked against a small table citing Microsoft's own API pages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine import RecordedCall
from crownguard.plugins import defender as defender_plugin
from crownguard.plugins.defender.mock import DefenderMock

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "vendor-apis.md"
ALICE = "1e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d"


@dataclass
class Documented:
    method: str
    template: str
    body_fields: set[str] = field(default_factory=set)
    filterable: set[str] = field(default_factory=set)
    source: str = "vendor-apis.md §3"

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(self.template))
                          + "$")


# Read endpoints the reference does not list, from Microsoft's Defender API pages (checked
# 2026-11 on learn.microsoft.com/defender-endpoint/api/<page>).
MICROSOFT_PAGES = [
    Documented("GET", "/api/machines", source="get-machines",
               filterable={"computerDnsName", "id", "version", "deviceValue", "aadDeviceId",
                           "machineTags", "lastSeen", "exposureLevel", "onboardingStatus",
                           "lastIpAddress", "healthStatus", "osPlatform", "riskScore",
                           "rbacGroupId"}),
    Documented("GET", "/api/machines/{id}", source="get-machine-by-id"),
    Documented("GET", "/api/files/{id}", source="get-file-information"),
]


@cache
def reference_section() -> str:
    if not REFERENCE.is_file():
        pytest.skip(f"vendor reference not found at {REFERENCE}")
    text = REFERENCE.read_text(encoding="utf-8")
    start = text.find("## 3. Microsoft Defender for Endpoint")
    assert start >= 0, "the reference has no Defender section"
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def documented_endpoints() -> list[Documented]:
    """Endpoints, body fields and filterable properties read from the reference."""
    section = reference_section()
    found: list[Documented] = []
    for match in re.finditer(r"`(GET|POST|PATCH|PUT|DELETE) (/api/[^\s`?]+)(?:\?[^`]*)?`"
                             r"(?:,\s*body\s*`(\{[^`]*\})`)?", section):
        body = set(re.findall(r'"(\w+)"\s*:', match[3] or ""))
        found.append(Documented(match[1], match[2], body))
    filterable = re.search(r"OData\s+filtering works on (.*?)\.\n", section, re.DOTALL)
    assert filterable, "the reference lists no filterable MachineAction properties"
    for item in found:
        if item.template == "/api/machineactions":
            item.filterable = set(re.findall(r"`(\w+)`", filterable[1]))
    return found + MICROSOFT_PAGES


def token_form_fields() -> set[str]:
    bullet = re.search(r"Token endpoint:(.*?)\n- ", reference_section(), re.DOTALL)
    assert bullet, "the reference describes no token request"
    return {name.split("=")[0] for name in re.findall(r"`([a-z_]+(?:=[^`]*)?)`", bullet[1])}


def filter_properties(odata: str) -> set[str]:
    return set(re.findall(r"startswith\(\s*(\w+)\s*,", odata)) | set(
        re.findall(r"(\w+)\s+(?:eq|ne)\s+", odata))


def problems_with(call: RecordedCall, endpoints: list[Documented]) -> Iterator[str]:
    where = f"{call.method} {call.path}"
    if call.path.endswith("/oauth2/v2.0/token"):
        for name in set(call.form) - token_form_fields():
            yield f"{where}: form field {name!r} is not in the documented token request"
        return
    matches = [e for e in endpoints if e.method == call.method and e.pattern.match(call.path)]
    if not matches:
        yield f"{where}: not a documented Defender endpoint"
        return
    endpoint = matches[0]
    if isinstance(call.json, dict):
        for name in set(call.json) - endpoint.body_fields:
            yield (f"{where}: body field {name!r} is not documented (case-sensitive; "
                   f"documented: {sorted(endpoint.body_fields)})")
    for name in call.query:
        if name not in ("$filter", "$top", "$skip"):
            yield f"{where}: query parameter {name!r} is not an OData option Defender takes"
    odata = call.arg("$filter")
    if odata:
        for prop in filter_properties(odata):
            if prop not in endpoint.filterable:
                yield f"{where}: $filter on {prop!r}, which {endpoint.source} does not allow"


SCENARIO = f"""
name: defender-contract-scenario
steps:
  - id: by_name
    action: defender.find_machine
    with: {{hostname: lab-07}}
  - id: by_id
    action: defender.find_machine
    needs: [by_name]
    with: {{machine_id: {ALICE}}}
  - id: isolate
    action: defender.isolate_machine
    needs: [by_id]
    with: {{hostname: ws-alice-01.corp.example, isolation_type: Selective}}
  - id: quarantine
    action: defender.quarantine_file
    needs: [isolate]
    with: {{machine_id: {ALICE}, sha256: "${{{{ event.sha256 }}}}"}}
  - id: release
    action: defender.release_machine
    needs: [quarantine]
    with: {{machine_id: {ALICE}}}
"""


def test_every_request_the_plugin_sends_is_documented(
        mock_server: Callable[..., Any], isolated_host: Callable[..., Any],
        crownguard_config: Callable[..., Any],
        run_playbook: Callable[..., dict[str, Any]]) -> None:
    endpoints = documented_endpoints()
    defender: DefenderMock = mock_server(DefenderMock)
    defender.page_size = 1
    defender.add_machine("lab-07.corp.example")
    defender.add_machine("lab-07.lab.corp.example")
    sha256 = defender.files[next(iter(defender.machines[ALICE].files))].sha256
    host = isolated_host(defender_plugin, name="defender")
    config = crownguard_config({"defender": defender.connection_settings()}, host=host)
    record = run_playbook(SCENARIO, {"sha256": sha256}, config=config, host=host)
    assert record["status"] == "succeeded", record

    sent = {(c.method, e.template) for c in defender.calls for e in endpoints
            if e.method == c.method and e.pattern.match(c.path)}
    assert {("POST", "/api/machines/{machineId}/isolate"),
            ("POST", "/api/machines/{machineId}/unisolate"),
            ("POST", "/api/machines/{machineId}/StopAndQuarantineFile"),
            ("GET", "/api/machineactions/{id}"), ("GET", "/api/machineactions"),
            ("GET", "/api/machines"), ("GET", "/api/machines/{id}"),
            ("GET", "/api/files/{id}")} <= sent
    problems = [p for call in defender.calls for p in problems_with(call, endpoints)]
    assert problems == []


def test_the_contract_check_catches_wrong_case_and_unknown_paths() -> None:
    endpoints = documented_endpoints()
    wrong_case = RecordedCall("POST", f"/api/machines/{ALICE}/isolate", {}, {},
                              json.dumps({"comment": "x", "isolationType": "Full"}).encode())
    assert any("'comment' is not documented" in p for p in problems_with(wrong_case, endpoints))
    unknown = RecordedCall("POST", f"/api/machines/{ALICE}/quarantine", {}, {}, b"{}")
    assert any("not a documented" in p for p in problems_with(unknown, endpoints))
    bad_filter = RecordedCall("GET", "/api/machineactions",
                              {"$filter": ["computerDnsName eq 'x'"]}, {}, b"")
    assert any("$filter on 'computerDnsName'" in p for p in problems_with(bad_filter, endpoints))
