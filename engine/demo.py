"""`crownguard demo`: start the mock vendor servers in-process and run scenarios end to end.

Every mock a plugin registers is started on a free loopback port and the connections file is
built from the mocks' own `connection_settings()`, so the demo exercises the same code path as
a real deployment, only pointed at local imitations of the vendors.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .config import config_from_mapping
from .mocks import MockServer
from .plugins import PluginHost
from .runner import Runner
from .spec import load_playbook
from .timeline import Timeline


@dataclass
class Scenario:
    title: str
    playbook: Path
    event: dict[str, Any]
    prepare: Callable[[dict[str, MockServer]], None] = lambda mocks: None
    variables: Callable[[dict[str, MockServer]], dict[str, Any]] = lambda mocks: {}
    expect: str = "succeeded"


def _core_playbook(name: str) -> Path:
    from importlib import resources

    return Path(str(resources.files("crownguard.plugins.core").joinpath(f"playbooks/{name}")))


def _webhook_vars(mocks: dict[str, MockServer]) -> dict[str, Any]:
    return {"webhook_base": mocks["webhook"].base_url}


def _flaky_tickets(mocks: dict[str, MockServer]) -> None:
    mocks["webhook"].inject("status", status=503, retry_after=0.1, path="/hooks/tickets")


def _broken_tickets(mocks: dict[str, MockServer]) -> None:
    mocks["webhook"].inject("status", status=500, path="/hooks/tickets", times=None)


EVENT = {"actor": {"email": "dana@example.com"}, "destination": {"name": "USB drive"},
         "file": {"name": "fraud-model-v7.safetensors", "sha256": "9f2c" + "0" * 60},
         "risk_score": 85}


def default_scenarios() -> list[Scenario]:
    playbook = _core_playbook("notify-soc.yaml")
    low = {**EVENT, "risk_score": 30, "destination": {"name": "personal cloud"}}
    return [
        Scenario("High-risk alert; the ticket webhook answers 503 once and is retried",
                 playbook, EVENT, _flaky_tickets, _webhook_vars),
        Scenario("Low-risk alert: no page", playbook, low, variables=_webhook_vars),
        Scenario("Ticket webhook down: the failure path escalates", playbook, EVENT,
                 _broken_tickets, _webhook_vars),
    ]


@dataclass
class DemoResult:
    title: str
    status: str
    seconds: float
    record: dict[str, Any] = field(default_factory=dict)


def run_demo(host: PluginHost, scenarios: list[Scenario] | None = None, *,
             quiet: bool = False, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    mocks: dict[str, MockServer] = {}
    results: list[DemoResult] = []
    try:
        for name, spec in sorted(host.mock_servers.items()):
            server = spec.factory()
            server.start()
            mocks[name] = server
        connections: dict[str, Any] = {}
        for name, spec in host.mock_servers.items():
            connections.setdefault(spec.connection_name, {}).update(
                mocks[name].connection_settings())
        print(f"started {len(mocks)} mock vendor servers: "
              + ", ".join(f"{n} ({m.base_url})" for n, m in sorted(mocks.items())), file=out)
        for number, scenario in enumerate(scenarios or default_scenarios(), 1):
            for mock in mocks.values():
                mock.clear_faults()
            scenario.prepare(mocks)
            config = config_from_mapping({"connections": connections}, host.connection_types)
            playbook = load_playbook(scenario.playbook, host.actions)
            print(f"\n[{number}] {scenario.title}\n    playbook: {playbook.name}", file=out)
            sink = None if quiet else Timeline(out, indent="    ")
            started = time.perf_counter()
            record = Runner(host, config, journal=sink).run(
                playbook, scenario.event, variables=scenario.variables(mocks))
            results.append(DemoResult(scenario.title, record["status"],
                                      time.perf_counter() - started, record))
            print(f"    => {record['status']}", file=out)
    finally:
        for mock in mocks.values():
            if mock.is_running():
                mock.stop()
    print("\nsummary", file=out)
    width = max(len(r.title) for r in results) if results else 10
    for r in results:
        print(f"  {r.title:<{width}}  {r.status:<10} {r.seconds * 1000:7.0f} ms", file=out)
    calls = sum(len(m.calls) for m in mocks.values())
    print(f"\n{len(results)} scenarios, {calls} vendor calls", file=out)
    return 0


def _dump(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2)
