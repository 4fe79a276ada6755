"""Shared test setup: no real network, ever."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

# CI runs the same examples every time (a failure there must be reproducible, not a dice
# roll); locally hypothesis keeps exploring new ones.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

_real_connect = socket.socket.connect
_real_getaddrinfo = socket.getaddrinfo


def _loopback(host: Any) -> bool:
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        raise OSError(f"tests must not reach the network (tried {address[0]})")
    return _real_connect(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _loopback(host):
        raise socket.gaierror(f"tests must not resolve outside names (tried {host})")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def _journal_in_tmp(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    # CLI runs journal by default; never into the real ~/.local/state during tests.
    path = tmp_path_factory.mktemp("journal") / "journal.sqlite"
    monkeypatch.setenv("CROWNGUARD_JOURNAL", str(path))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)
    yield


@pytest.fixture(scope="module")
def fleet() -> Iterator[Any]:
    """Every mock vendor server, started once per test module (reset it in each test)."""
    from crownguard.engine.plugins import PluginHost
    from crownguard.engine.scenarios import MockFleet

    with MockFleet(PluginHost.from_entry_points()) as started:
        yield started


@pytest.fixture
def fleet_connections(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Write a connections file for a running MockFleet, every secret taken from an
    environment variable (as a deployment would): returns (the file, the secret values)."""
    import json

    def write(fleet: Any) -> tuple[Any, list[str]]:
        secrets: list[str] = []
        types = fleet.host.connection_types
        connections: dict[str, Any] = {}
        for name, settings_ in fleet.connections().items():
            entry = {}
            for key, value in settings_.items():
                if key in types[name].secrets:
                    variable = f"CG_TEST_{name}_{key}".upper()
                    monkeypatch.setenv(variable, str(value))
                    secrets.append(str(value))
                    entry[key] = f"${{env:{variable}}}"
                else:
                    entry[key] = value
            connections[name] = entry
        config = tmp_path / "connections.yaml"
        config.write_text(json.dumps({"connections": connections}))
        return config, secrets

    return write
