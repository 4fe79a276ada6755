"""The scenarios that test a playbook, for the playbooks page: the scenario files beside the
playbook's file (and in its `scenarios/` folder) whose `playbook`/`playbooks` name that file,
or whose `expect.playbooks` names the playbook. Read with the scenario loader (safe YAML,
schema-checked); a file that does not load is listed as such, never a failed page."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ...errors import CrownguardError
from ...scenarios.format import SCENARIO_SUFFIXES, Scenario, load_scenario
from ...spec import Playbook

MAX_FILES = 500  # scenario files read at most per folder


@dataclass(frozen=True)
class ScenarioView:
    name: str
    file: str
    description: str = ""
    expects: str = ""  # the run status it expects, when it says
    problem: str = ""  # why the file did not load


def _files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for place in (folder, folder / "scenarios"):
        if place.is_dir():
            found += sorted(p for p in place.iterdir() if p.name.endswith(SCENARIO_SUFFIXES))
    return found[:MAX_FILES]


def _tests(scenario: Scenario, playbook: Playbook) -> bool:
    data = scenario.data
    named = ([data["playbook"]] if data.get("playbook") else []) + list(data.get("playbooks")
                                                                       or [])
    source = Path(playbook.source).resolve() if playbook.source else None
    if source is not None and any((scenario.base / p).resolve() == source for p in named):
        return True
    return playbook.name in ((data.get("expect") or {}).get("playbooks") or [])


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:  # gone since the listing: read again next time
        return -1.0


class ScenarioIndex:
    """Scenario files read once per change of their folder (its mtime and listing)."""

    def __init__(self) -> None:
        self._read: dict[Path, tuple[tuple[tuple[str, float], ...],
                                     list[Scenario | ScenarioView]]] = {}

    def _load(self, folder: Path) -> list[Scenario | ScenarioView]:
        files = _files(folder)
        stamp = tuple((str(p), _mtime(p)) for p in files)
        cached = self._read.get(folder)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        loaded: list[Scenario | ScenarioView] = []
        for path in files:
            try:
                loaded.append(load_scenario(path))
            except (CrownguardError, OSError) as exc:
                loaded.append(ScenarioView(path.name, str(path), problem=str(exc)[:300]))
        self._read[folder] = (stamp, loaded)
        return loaded

    def testing(self, playbook: Playbook) -> list[ScenarioView]:
        if not playbook.source:
            return []
        shown = []
        for item in self._load(Path(playbook.source).parent):
            if isinstance(item, ScenarioView):
                continue  # not known to test this playbook: it did not load
            if _tests(item, playbook):
                expect = item.data.get("expect") or {}
                shown.append(ScenarioView(item.name, item.path.name,
                                          str(item.data.get("description") or "").strip(),
                                          str(expect.get("status") or "")))
        return shown

    def broken(self, playbook: Playbook) -> list[ScenarioView]:
        """Scenario files beside the playbook that did not load."""
        if not playbook.source:
            return []
        return [s for s in self._load(Path(playbook.source).parent)
                if isinstance(s, ScenarioView)]
