"""The triage wing's respond(): what `crownguard respond` and the service do with events,
without printing. (Handled failures are the core's now: tests/test_outcome.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crownguard.engine.config import config_from_mapping
from crownguard.engine.plugins import PluginHost
from crownguard.engine.scenarios import MockFleet
from crownguard.engine.triage import (
    InMemoryDedupe,
    build_triage,
    default_policy_data,
    normalise,
    policy_from_mapping,
)
from crownguard.engine.triage.respond import respond

ROOT = Path(__file__).resolve().parents[1]
USB = ROOT / "plugins" / "incydr" / "samples" / "model-to-removable-media.json"


class Seen:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def verdict(self, number: int, verdict: Any) -> None:
        self.calls.append(("verdict", number))

    def starting(self, playbook: Any) -> None:
        self.calls.append(("starting", playbook.name))

    def finished(self, record: dict[str, Any]) -> None:
        self.calls.append(("finished", record["status"]))


def test_respond_triages_claims_and_runs_each_event_once(fleet: MockFleet) -> None:
    host: PluginHost = fleet.host
    policy = policy_from_mapping(default_policy_data())
    triage = build_triage(policy, host, store=InMemoryDedupe())
    config = config_from_mapping({"connections": fleet.connections()}, host.connection_types)
    event = normalise(json.loads(USB.read_text()), sources=host.event_sources.values())
    seen = Seen()
    try:
        first = respond(triage, host, config, [event, event], dry_run=True, observer=seen)
        wet = respond(triage, host, config, [event, event])
    finally:
        config.connections.close()
        triage.close()
    assert [r.verdict.playbooks != [] for r in first] == [True, True]  # a dry run claims nothing
    chosen = [p.name for p in first[0].verdict.playbooks]
    assert seen.calls[0] == ("verdict", 0) and ("starting", chosen[0]) in seen.calls
    assert [len(r.runs) for r in wet] == [len(chosen), 0]  # the second delivery is a duplicate
    assert {"runs", "playbooks"} <= set(wet[0].to_dict())
