"""The mock vendors a scenario runs against: started once, reset per scenario, seeded from the
scenario's `mocks` section."""

from __future__ import annotations

from typing import Any

from ..mocks import MockServer, RecordedCall
from ..plugins import PluginHost
from .format import ScenarioError


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
# Each adapter turns a documented list of records into the mock's own helper calls (add_user,
# add_host...). `set` and `call` reach any mock's tunables and public helpers.


def _falcon_hosts(mock: Any, items: list[dict[str, Any]]) -> None:
    for item in items:
        fields = {k: item[k] for k in ("platform_name", "os_version", "local_ip", "last_seen",
                                       "status") if k in item}
        if "platform" in item:
            fields["platform_name"] = item["platform"]
        device = mock.add_host(item["hostname"], device_id=item.get("device_id"), **fields)
        for folder in item.get("folders") or ():
            mock.add_folder(device, folder)
        for spec in item.get("files") or ():
            file = mock.add_file(device, spec["path"], str(spec.get("content", "model"))
                                 .encode())
            if spec.get("sha256"):  # stand in for bytes the scenario does not carry
                file.sha256 = spec["sha256"].lower()


def _mlflow_versions(mock: Any, items: list[dict[str, Any]]) -> None:
    for item in items:
        target = int(item.get("version", 1))
        while len(mock.models.get(item["name"], {}).get("versions", {})) < target - 1:
            mock.add_version(item["name"], {})  # earlier versions, no files
        files = {path: str(text).encode() for path, text in (item.get("files") or {}).items()}
        mock.add_version(item["name"], files, aliases=tuple(item.get("aliases") or ()),
                         tags=item.get("tags") or {})


ADAPTERS: dict[str, dict[str, Any]] = {
    "falcon": {"hosts": _falcon_hosts},
    "defender": {"machines": lambda m, items: _defender_machines(m, items)},
    "slack": {"users": lambda m, items: [m.add_user(u["email"], u.get("name", u["email"]),
                                                    locale=u.get("locale")) for u in items],
              "channels": lambda m, items: [m.add_channel(c["name"],
                                                          private=c.get("private", False),
                                                          member=c.get("member", True))
                                            for c in items]},
    "okta": {"users": lambda m, items: [m.add_user(
        u["login"], email=u.get("email"), first_name=u.get("first_name", "Test"),
        last_name=u.get("last_name", "User"), status=u.get("status", "ACTIVE"),
        sessions=u.get("sessions", 1)) for u in items]},
    "entra": {"users": lambda m, items: [m.add_user(
        u["upn"], mail=u.get("mail"), display_name=u.get("name", "Test User"),
        enabled=u.get("enabled", True)) for u in items]},
    "servicenow": {"users": lambda m, items: [m.add_user(u["user_name"], u["email"],
                                                         u.get("name", u["user_name"]))
                                              for u in items]},
    "jira": {"issues": lambda m, items: [m.add_issue(i["summary"], labels=i.get("labels"),
                                                     status=i.get("status", "To Do"))
                                         for i in items]},
    "mlflow": {"versions": _mlflow_versions},
}


def _defender_machines(mock: Any, items: list[dict[str, Any]]) -> None:
    for item in items:
        machine = mock.add_machine(item["dns_name"], machine_id=item.get("machine_id"))
        for spec in item.get("files") or ():
            mock.add_file(machine, str(spec.get("content", "model")).encode(),
                          spec.get("name", "model.safetensors"))


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
            elif section in ADAPTERS.get(name, {}):
                ADAPTERS[name][section](mock, list(value))
            else:
                known = sorted([*ADAPTERS.get(name, {}), "set", "call"])
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
