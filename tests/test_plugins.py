from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import crownguard.engine as engine
import crownguard.engine.triage as triage
from crownguard.engine import ConnectionType, PluginError, action, hookimpl
from crownguard.engine.plugins import PluginHost

ROOT = Path(__file__).resolve().parents[1]


def test_core_is_loaded_through_its_entry_point() -> None:
    host = PluginHost.from_entry_points(env={})
    assert "core" in host.plugins
    assert host.plugins["core"].distribution == "crownguard"
    assert {"core.http_request", "core.noop", "core.transform"} <= set(host.actions)
    assert host.actions["core.noop"].plugin == "core"
    assert "http" in host.connection_types and "webhook" in host.mock_servers
    assert any(p.name == "notify-soc.yaml" for p in host.playbooks)


def test_allow_and_block_lists() -> None:
    assert "core" not in PluginHost.from_entry_points(
        env={"CROWNGUARD_DISABLE_PLUGINS": "core"}).plugins
    assert list(PluginHost.from_entry_points(env={"CROWNGUARD_PLUGINS": "core"}).plugins) == \
        ["core"]
    assert PluginHost.from_entry_points(env={"CROWNGUARD_PLUGINS": "nothing"}).plugins == {}


def test_misspelt_hook_fails_loudly() -> None:
    class Typo:
        @hookimpl
        def crownguard_register_action(self, register: Any) -> None:
            pass

    with pytest.raises(PluginError, match="unknown hook 'crownguard_register_action'"):
        PluginHost().add(Typo(), "typo")


def test_duplicate_and_invalid_registrations_are_named() -> None:
    class Dup:
        @hookimpl
        def crownguard_register_actions(self, register: Any) -> None:
            register(action("core.noop")(lambda ctx, inputs: {}))

    host = PluginHost()
    host.add("crownguard.plugins.core", "core")
    host.add(Dup(), "dup")
    with pytest.raises(PluginError, match="'core.noop' is registered by both"):
        _ = host.actions

    class NotAction:
        @hookimpl
        def crownguard_register_actions(self, register: Any) -> None:
            register(lambda ctx, inputs: {})

    host = PluginHost()
    host.add(NotAction(), "bad")
    with pytest.raises(PluginError, match="not an Action"):
        _ = host.actions

    class BadName:
        @hookimpl
        def crownguard_register_actions(self, register: Any) -> None:
            register(action("NoDots")(lambda ctx, inputs: {}))

    host = PluginHost()
    host.add(BadName(), "badname")
    with pytest.raises(PluginError, match="must look like 'vendor.verb_noun'"):
        _ = host.actions


def test_plugin_raising_during_registration_is_named() -> None:
    class Raises:
        @hookimpl
        def crownguard_register_connection_types(self, register: Any) -> None:
            raise ValueError("oops")

    host = PluginHost()
    host.add(Raises(), "raises")
    with pytest.raises(PluginError, match="plugin 'raises' failed in "
                                          "crownguard_register_connection_types: ValueError"):
        _ = host.connection_types

    class Twice:
        @hookimpl
        def crownguard_register_connection_types(self, register: Any) -> None:
            register(ConnectionType("x", {}))
            register(ConnectionType("x", {}))

    host = PluginHost()
    host.add(Twice(), "twice")
    with pytest.raises(PluginError, match="connection type 'x' is registered by both"):
        _ = host.connection_types


def test_playbook_registration_must_be_a_file(tmp_path: Path) -> None:
    class Ghost:
        @hookimpl
        def crownguard_register_playbooks(self, register: Any) -> None:
            register(tmp_path / "missing.yaml")

    host = PluginHost()
    host.add(Ghost(), "ghost")
    with pytest.raises(PluginError, match="not a file"):
        _ = host.playbooks


def test_same_plugin_name_twice() -> None:
    host = PluginHost()
    host.add("crownguard.plugins.core", "core")
    with pytest.raises(PluginError, match="already loaded"):
        host.add("crownguard.plugins.core", "core")


# --- promises kept across the code base -----------------------------------------------------


def _engine_imports(path: Path) -> list[tuple[int, str]]:
    """(line, what) for every import of engine internals in a plugin module. The triage
    wing's public face (its `__all__`) is public too: event-source mappers build its events."""
    found = []
    tree = ast.parse(path.read_text(), str(path))
    public = set(engine.__all__)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "crownguard.engine.triage":
                found += [(node.lineno, a.name) for a in node.names if a.name not in triage.__all__]
            elif node.module.startswith("crownguard.engine."):
                found.append((node.lineno, f"from {node.module} import ..."))
            elif node.module == "crownguard.engine":
                found += [(node.lineno, a.name) for a in node.names if a.name not in public]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name.startswith("crownguard.engine.")]
    return found


def test_plugins_use_only_the_public_engine_api() -> None:
    offences = []
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        for line, what in _engine_imports(path):
            offences.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert offences == []


def test_every_public_name_is_importable() -> None:
    for name in engine.__all__:
        assert hasattr(engine, name), name


def test_mock_server_registration() -> None:
    from crownguard.engine import MockServerSpec
    from crownguard.plugins.core.mock import WebhookMock

    class Mocks:
        @hookimpl
        def crownguard_register_mock_servers(self, register: Any) -> None:
            register(MockServerSpec("hooks2", WebhookMock, "d", connection="http"))

    host = PluginHost()
    host.add(Mocks(), "mocks")
    spec = host.mock_servers["hooks2"]
    assert spec.connection_name == "http" and spec.factory is WebhookMock

    class Wrong:
        @hookimpl
        def crownguard_register_mock_servers(self, register: Any) -> None:
            register(WebhookMock)

    host = PluginHost()
    host.add(Wrong(), "wrong")
    with pytest.raises(PluginError, match="not a MockServerSpec"):
        _ = host.mock_servers


def test_command_registration() -> None:
    from crownguard.engine.cli.app import build_parser

    ran: list[Any] = []

    class Hello:
        @hookimpl
        def crownguard_register_commands(self, register: Any) -> None:
            register("hello", help="say hello",
                     configure=lambda parser: parser.add_argument("--who", default="world"),
                     run=lambda args, cli: ran.append((args.who, cli.config())) or 0)

    host = PluginHost()
    host.add(Hello(), "hello")
    assert set(host.commands) == {"hello"} and host.commands["hello"].plugin == "hello"
    parser = build_parser(host)
    args = parser.parse_args(["hello", "--who", "dana"])
    assert args.func(args) == 0 and ran[0][0] == "dana"
    assert ran[0][1].connections is not None  # cli.config(): no --config, an empty one

    class Again:
        @hookimpl
        def crownguard_register_commands(self, register: Any) -> None:
            register("hello", run=lambda args, cli: 0)

    host.add(Again(), "again")
    with pytest.raises(PluginError, match="command 'hello' is registered by both 'hello' and "
                                          "'again'"):
        _ = host.commands

    class Clash:
        @hookimpl
        def crownguard_register_commands(self, register: Any) -> None:
            register("approve", run=lambda args, cli: 0)

    host = PluginHost()
    host.add(Clash(), "clash")
    with pytest.raises(PluginError, match="plugin 'clash' registers command 'approve', which "
                                          "is a built-in command"):
        build_parser(host)

    class BadName:
        @hookimpl
        def crownguard_register_commands(self, register: Any) -> None:
            register("Bad Name", run=lambda args, cli: 0)

    host = PluginHost()
    host.add(BadName(), "badname")
    with pytest.raises(PluginError, match="command name 'Bad Name' must match"):
        _ = host.commands


def test_slack_answer_is_the_slack_plugins_command() -> None:
    host = PluginHost.from_entry_points()
    assert host.commands["slack-answer"].plugin == "slack"
