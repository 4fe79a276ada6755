"""The scenario collector (pytest11 entry point `crownguard-scenarios`): every
`*.scenario.yaml` file pytest is pointed at (`pytest playbooks/`) runs as a scenario test
against the mock vendors (docs/scenarios.md); one set of mocks serves the whole session.

The fixtures for plugin and playbook authors are the core's (crownguard.engine.testing).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..errors import ScenarioFailed
from ..plugins import PluginHost
from ..scenarios import SCENARIO_SUFFIXES, MockFleet, load_scenario
from .scenarios import run_scenario

_FLEET_KEY = pytest.StashKey[Any]()


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    """Collect `*.scenario.yaml` (and `.yml`) files as scenario tests."""
    if file_path.name.endswith(SCENARIO_SUFFIXES):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    """One scenario file: one test item."""

    def collect(self) -> Iterator[pytest.Item]:
        scenario = load_scenario(self.path)
        yield ScenarioItem.from_parent(self, name=scenario.name, scenario=scenario)


class ScenarioItem(pytest.Item):
    """Runs a scenario against the mock vendors, shared by every scenario of the session."""

    def __init__(self, *, scenario: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.scenario = scenario

    def _fleet(self) -> tuple[PluginHost, Any]:
        stash = self.config.stash
        if _FLEET_KEY not in stash:
            host = PluginHost.from_entry_points()
            fleet = MockFleet(host).start()
            stash[_FLEET_KEY] = (host, fleet)
            self.config.add_cleanup(fleet.stop)
        found: tuple[PluginHost, Any] = stash[_FLEET_KEY]
        return found

    def runtest(self) -> None:
        host, fleet = self._fleet()
        result = run_scenario(self.scenario, host, fleet)
        if not result.passed:
            raise ScenarioFailed("\n".join([result.error] if result.error
                                           else result.mismatches))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            return f"scenario '{self.scenario.name}' ({self.path}):\n{excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario: {self.scenario.name}"
