"""The mock vendors a scenario runs against: started once, reset per scenario, seeded from the
scenario's `mocks` section."""

from __future__ import annotations

from typing import Any

from ..errors import ScenarioError
from ..mocks import MockServer, RecordedCall
from ..plugins import PluginHost


class MockFleet:
    """Every mock server the host's plugins register, started once, reset per scenario."""

    def __init__(self, host: PluginHost):
        self.host = host
        self.mocks: dict[str, MockServer] = {}

    def start(self) -> MockFleet:
        for name, spec in sorted(self.host.mock_servers.items()):
            if name not in self.mocks:
                server = spec.factory()
                server.start()
                self.mocks[name] = server
        return self

    def stop(self) -> None:
        for server in self.mocks.values():
            if server.is_running():
                server.stop()
        self.mocks.clear()

    def __enter__(self) -> MockFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Fresh vendor state, no faults, no recorded calls (new credentials too)."""
        for server in self.mocks.values():
            server.clear_faults()
            with server.state_lock:
                server.reset_state()
                server.calls.clear()

    def connections(self) -> dict[str, Any]:
        connections: dict[str, Any] = {}
        for name, spec in self.host.mock_servers.items():
            if name in self.mocks:
                connections.setdefault(spec.connection_name, {}).update(
                    self.mocks[name].connection_settings())
        return connections

    def get(self, name: str) -> MockServer:
        if name not in self.mocks:
            raise ScenarioError(f"no mock server '{name}' (running: "
                                f"{', '.join(sorted(self.mocks)) or 'none'})")
        return self.mocks[name]

    def calls(self) -> list[tuple[str, RecordedCall]]:
        """Every call so far, in the order the mocks received them."""
        found = [(name, call) for name, server in self.mocks.items() for call in server.calls]
        return sorted(found, key=lambda item: item[1].at)


# --- seeding -------------------------------------------------------------------------------
# Each mock seeds its own sections (`MockServer.seed`, a `seed_<section>` method per section);
# `set` and `call` reach any mock's tunables and public helpers.


_BASE_ATTRIBUTES = frozenset(dir(MockServer))


def seed(fleet: MockFleet, mocks: dict[str, Any]) -> None:
    """Apply a scenario's `mocks` section (see docs/scenarios.md)."""
    for name, sections in mocks.items():
        mock = fleet.get(name)
        for section, value in sections.items():
            if section == "set":
                _set(mock, name, value)
            elif section == "call":
                _call(mock, name, value)
            elif section in mock.seeding_sections():
                mock.seed(section, list(value))
            else:
                known = sorted([*mock.seeding_sections(), "set", "call"])
                raise ScenarioError(f"mocks.{name}: no seeding section '{section}' (known: "
                                    f"{', '.join(known)})")


def _set(mock: MockServer, name: str, values: dict[str, Any]) -> None:
    for attribute, value in values.items():
        current = getattr(mock, attribute, _MISSING)
        if attribute.startswith("_") or attribute in _BASE_ATTRIBUTES or current is _MISSING \
                or not isinstance(current, int | float | str | bool | type(None)):
            raise ScenarioError(f"mocks.{name}.set: '{attribute}' is not a setting of the "
                                f"{name} mock")
        setattr(mock, attribute, value)


def _call(mock: MockServer, name: str, calls: list[dict[str, Any]]) -> None:
    for item in calls:
        method = str(item.get("method", ""))
        func = getattr(mock, method, None)
        if method.startswith("_") or method in _BASE_ATTRIBUTES or not callable(func) \
                or hasattr(func, "_mock_routes"):
            raise ScenarioError(f"mocks.{name}.call: '{method}' is not a helper of the {name} "
                                "mock")
        func(*item.get("args", []), **item.get("kwargs", {}))


_MISSING = object()
