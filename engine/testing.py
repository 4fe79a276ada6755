"""The crownguard pytest plugin (entry point `pytest11`), for plugin and playbook authors.

Fixtures:
- `crownguard_host`: a PluginHost with every installed plugin (honours CROWNGUARD_PLUGINS).
- `isolated_host`: a factory `isolated_host(module_or_obj, name=...)` giving a PluginHost with
  only `core` and the given plugins: test a plugin before it is installed.
- `mock_server`: a factory that starts a MockServer (a class, or a mock name registered by a
  plugin) and stops it after the test.
- `crownguard_config`: a factory building a Config from a mapping of connections.
- `run_playbook`: run a playbook file or text with a host and config, returning the run record.

The `*.scenario.yaml` collector (`pytest playbooks/`) is the triage wing's own pytest plugin,
crownguard.engine.triage.testing (entry point `crownguard-scenarios`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .config import Config, config_from_mapping
from .mocks import MockServer
from .plugins import PluginHost
from .runner import Runner
from .spec import load_playbook, parse_playbook


@pytest.fixture
def crownguard_host() -> PluginHost:
    return PluginHost.from_entry_points()


@pytest.fixture
def isolated_host() -> Callable[..., PluginHost]:
    def make(*plugins: Any, name: str | None = None, core: bool = True) -> PluginHost:
        host = PluginHost()
        if core:
            host.add("crownguard.plugins.core", "core")
        for index, plugin in enumerate(plugins):
            plugin_name = name if name and len(plugins) == 1 else None
            if plugin_name is None:
                module_name = getattr(plugin, "__name__", "") or str(plugin)
                plugin_name = module_name.rsplit(".", 1)[-1] or f"plugin{index}"
            host.add(plugin, plugin_name)
        return host

    return make


@pytest.fixture
def mock_server(crownguard_host: PluginHost) -> Iterator[Callable[..., MockServer]]:
    started: list[MockServer] = []

    def start(kind: type[MockServer] | str, **kwargs: Any) -> MockServer:
        if isinstance(kind, str):
            spec = crownguard_host.mock_servers.get(kind)
            if spec is None:
                raise LookupError(f"no mock server '{kind}' is registered")
            server = spec.factory(**kwargs) if kwargs else spec.factory()
        else:
            server = kind(**kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        if server.is_running():
            server.stop()


@pytest.fixture
def crownguard_config(crownguard_host: PluginHost) -> Callable[..., Config]:
    def make(connections: dict[str, Any], host: PluginHost | None = None,
             env: dict[str, str] | None = None, **settings: Any) -> Config:
        data: dict[str, Any] = {"connections": connections}
        if settings:
            data["settings"] = settings
        return config_from_mapping(data, (host or crownguard_host).connection_types, env)

    return make


@pytest.fixture
def run_playbook(crownguard_host: PluginHost) -> Callable[..., dict[str, Any]]:
    def run(playbook: str | Path, event: dict[str, Any] | None = None, *,
            config: Config | None = None, host: PluginHost | None = None,
            **kwargs: Any) -> dict[str, Any]:
        plugin_host = host or crownguard_host
        if isinstance(playbook, Path) or (isinstance(playbook, str) and "\n" not in playbook):
            loaded = load_playbook(playbook, plugin_host.actions)
        else:
            loaded = parse_playbook(playbook, plugin_host.actions)
        runner_kwargs = {k: kwargs.pop(k) for k in ("max_concurrency", "journal", "dry_run",
                                                    "seed") if k in kwargs}
        return Runner(plugin_host, config, **runner_kwargs).run(loaded, event, **kwargs)

    return run
