"""Fixtures of the service tests: the mock vendors, the service's files, and `served`, one
`crownguard serve` process per test module (see servicetest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from servicetest import Served, start_service, write_service_files

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
    return write_service_files(tmp_path_factory.mktemp("serve"), service_fleet)


@pytest.fixture(scope="module")
def served(service_files: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    service = start_service(service_files, tmp_path_factory.mktemp("journal") / "j.sqlite")
    yield service
    code = service.stop()
    assert code == 0, "".join(service.log)
    assert "Traceback" not in "".join(service.log), "".join(service.log)
