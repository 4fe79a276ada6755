"""Fixtures of the service tests: the mock vendors, the service's files, and `served`, one
`crownguard serve` process per test module (see servicetest.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from servicetest import MAX_BODY, PLAYBOOKS, SECRETS, TOKENS, Served, start_service

from crownguard.engine.plugins import PluginHost
from crownguard.engine.scenarios import MockFleet


@pytest.fixture(scope="module")
def service_fleet() -> Iterator[MockFleet]:
    with MockFleet(PluginHost.from_entry_points()) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def service_files(tmp_path_factory: pytest.TempPathFactory,
                  service_fleet: MockFleet) -> dict[str, Any]:
    """The connections file (secrets by reference), policy, playbooks and the environment."""
    folder = tmp_path_factory.mktemp("serve")
    for name, text in PLAYBOOKS.items():
        (folder / name).write_text(text)
    (folder / "policy.yaml").write_text(json.dumps({"routing": {
        "playbooks": list(PLAYBOOKS), "shipped_playbooks": False}}))
    env: dict[str, str] = {}
    okta = service_fleet.connections()["okta"]
    env["CG_TEST_OKTA_TOKEN"] = okta["token"]
    tokens = []
    for n, (name, (role, token)) in enumerate(TOKENS.items()):
        env[f"CG_TEST_TOKEN_{n}"] = token
        tokens.append({"name": name, "token": f"${{env:CG_TEST_TOKEN_{n}}}", "role": role})
    env["CG_TEST_SIEM_SECRET"] = SECRETS["siem"]
    (folder / "burst.key").write_text(SECRETS["burst"] + "\n")
    config = {"connections": {"okta": {**okta, "token": "${env:CG_TEST_OKTA_TOKEN}"}},
              "service": {"tokens": tokens, "max_body_bytes": MAX_BODY, "sources": {
                  "siem": {"secret": "${env:CG_TEST_SIEM_SECRET}"},
                  "burst": {"secret": "${file:burst.key}", "max_requests_per_minute": 2}}}}
    (folder / "connections.yaml").write_text(json.dumps(config))
    return {"folder": folder, "config": folder / "connections.yaml",
            "policy": folder / "policy.yaml", "env": env}


@pytest.fixture(scope="module")
def served(service_files: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    service = start_service(service_files, tmp_path_factory.mktemp("journal") / "j.sqlite")
    yield service
    code = service.stop()
    assert code == 0, "".join(service.log)
    assert "Traceback" not in "".join(service.log), "".join(service.log)
