"""The plugin host: discovers plugins through the `crownguard` entry-point group, loads them
explicitly (never at import time) and collects what they register."""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .actions import ACTION_NAME, Action
from .config import ConnectionType
from .content_sources import ContentSource
from .errors import PluginError
from .mocks import MockServerSpec
from .sources import EventSource

log = logging.getLogger("crownguard.plugins")
ENTRY_POINT_GROUP = "crownguard"
ALLOW_ENV = "CROWNGUARD_PLUGINS"
BLOCK_ENV = "CROWNGUARD_DISABLE_PLUGINS"
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
COMMAND_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def _names(env_value: str | None) -> set[str] | None:
    if env_value is None or not env_value.strip():
        return None
    return {n.strip() for n in env_value.split(",") if n.strip()}


@dataclass
class PluginInfo:
    name: str
    module: str
    distribution: str = ""
    version: str = ""


@dataclass(frozen=True)
class Command:
    """A `crownguard` sub-command a plugin adds (crownguard_register_commands)."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, hookspecs.CommandContext], int]
    plugin: str


@dataclass(frozen=True)
class InteractionReceiver:
    """A chat tool's signed interactions (crownguard_register_interaction_receivers)."""

    name: str
    verify: Callable[[Any, bytes, Any], Any]
    resolve: Callable[[Any, Any], dict[str, Any]]
    plugin: str


@dataclass(frozen=True)
class Poller:
    """A tool whose new events the service fetches on an interval (crownguard_register_pollers)."""

    name: str
    connection: str
    poll: Callable[..., Any]
    plugin: str


@dataclass
class PluginHost:
    """Owns one pluggy PluginManager and the registries built from it."""

    pm: pluggy.PluginManager = field(default_factory=lambda: pluggy.PluginManager("crownguard"))
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    _actions: dict[str, Action] | None = None
    _connection_types: dict[str, ConnectionType] | None = None
    _mock_servers: dict[str, MockServerSpec] | None = None
    _playbooks: list[Path] | None = None
    _commands: dict[str, Command] | None = None
    _event_sources: dict[str, EventSource] | None = None
    _content_sources: dict[str, ContentSource] | None = None
    _receivers: dict[str, InteractionReceiver] | None = None
    _pollers: dict[str, Poller] | None = None

    def __post_init__(self) -> None:
        self.pm.add_hookspecs(hookspecs)

    # loading --------------------------------------------------------------------------------

    @classmethod
    def from_entry_points(cls, env: dict[str, str] | None = None) -> PluginHost:
        """A host with every installed plugin, filtered by CROWNGUARD_PLUGINS (allow list) and
        CROWNGUARD_DISABLE_PLUGINS (block list)."""
        host = cls()
        host.load_entry_points(env)
        return host

    def load_entry_points(self, env: dict[str, str] | None = None) -> None:
        environ = os.environ if env is None else env
        allow, block = _names(environ.get(ALLOW_ENV)), _names(environ.get(BLOCK_ENV)) or set()
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in self.plugins or ep.name in block or (allow and ep.name not in allow):
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party plugin must be named, not crash
                raise PluginError(f"plugin '{ep.name}' ({ep.value}) failed to import: "
                                  f"{type(exc).__name__}: {exc}") from None
            dist = getattr(ep, "dist", None)
            self.add(module, ep.name, distribution=getattr(dist, "name", "") or "",
                     version=getattr(dist, "version", "") or "")
        self.pm.check_pending()

    def add(self, plugin: ModuleType | object | str, name: str, *, distribution: str = "",
            version: str = "") -> None:
        """Register one plugin (a module, an object with hookimpls or an import path)."""
        if isinstance(plugin, str):
            plugin = import_module(plugin)
        if not NAME.match(name):
            raise PluginError(f"plugin name '{name}' must match {NAME.pattern}")
        if name in self.plugins:
            raise PluginError(f"a plugin named '{name}' is already loaded")
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin '{name}': {exc}") from None
        self.plugins[name] = PluginInfo(name, getattr(plugin, "__name__", type(plugin).__name__),
                                        distribution, version)
        self._actions = self._connection_types = self._mock_servers = None
        self._playbooks = self._commands = self._event_sources = None
        self._content_sources = None
        self._receivers = self._pollers = None

    # registries -----------------------------------------------------------------------------

    def _collect(self, hook_name: str, check: Any) -> None:
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            current = impl.plugin_name

            def register(*args: Any, _plugin: str = current, **kwargs: Any) -> None:
                check(*args, _plugin, **kwargs)

            try:
                impl.function(register)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"plugin '{current}' failed in {hook_name}: "
                                  f"{type(exc).__name__}: {exc}") from None

    @property
    def actions(self) -> dict[str, Action]:
        if self._actions is None:
            found: dict[str, Action] = {}

            def check(item: Any, plugin: str) -> None:
                if not isinstance(item, Action):
                    raise PluginError(f"plugin '{plugin}' registered {item!r}, not an Action "
                                      "(decorate the function with @action)")
                if not ACTION_NAME.match(item.name):
                    raise PluginError(f"plugin '{plugin}': action name '{item.name}' must look "
                                      "like 'vendor.verb_noun'")
                if item.name in found:
                    raise PluginError(f"action '{item.name}' is registered by both "
                                      f"'{found[item.name].plugin}' and '{plugin}'")
                found[item.name] = _with_plugin(item, plugin)

            self._collect("crownguard_register_actions", check)
            self._actions = found
        return self._actions

    @property
    def connection_types(self) -> dict[str, ConnectionType]:
        if self._connection_types is None:
            found: dict[str, ConnectionType] = {}

            def check(item: Any, plugin: str) -> None:
                if not isinstance(item, ConnectionType):
                    raise PluginError(f"plugin '{plugin}' registered {item!r}, not a "
                                      "ConnectionType")
                if item.name in found:
                    raise PluginError(f"connection type '{item.name}' is registered by both "
                                      f"'{found[item.name].plugin}' and '{plugin}'")
                found[item.name] = ConnectionType(item.name, item.schema, item.description,
                                                  item.secrets, plugin)

            self._collect("crownguard_register_connection_types", check)
            self._connection_types = found
        return self._connection_types

    @property
    def mock_servers(self) -> dict[str, MockServerSpec]:
        if self._mock_servers is None:
            found: dict[str, MockServerSpec] = {}

            def check(item: Any, plugin: str) -> None:
                if not isinstance(item, MockServerSpec):
                    raise PluginError(f"plugin '{plugin}' registered {item!r}, not a "
                                      "MockServerSpec")
                if item.name in found:
                    raise PluginError(f"mock server '{item.name}' is registered twice")
                found[item.name] = item

            self._collect("crownguard_register_mock_servers", check)
            self._mock_servers = found
        return self._mock_servers

    @property
    def playbooks(self) -> list[Path]:
        if self._playbooks is None:
            found: list[Path] = []

            def check(item: Any, plugin: str) -> None:
                path = Path(item)
                if not path.is_file():
                    raise PluginError(f"plugin '{plugin}' registered playbook {path}, which is "
                                      "not a file")
                found.append(path)

            self._collect("crownguard_register_playbooks", check)
            self._playbooks = found
        return self._playbooks

    @property
    def commands(self) -> dict[str, Command]:
        if self._commands is None:
            found: dict[str, Command] = {}

            def check(name: Any, plugin: str, *, help: str = "",
                      configure: Callable[[argparse.ArgumentParser], None] | None = None,
                      run: Callable[..., int] | None = None) -> None:
                if not isinstance(name, str) or not COMMAND_NAME.match(name):
                    raise PluginError(f"plugin '{plugin}': command name {name!r} must match "
                                      f"{COMMAND_NAME.pattern}")
                if not callable(run) or (configure is not None and not callable(configure)):
                    raise PluginError(f"plugin '{plugin}': command '{name}' needs a callable "
                                      "run (and configure, when given)")
                if name in found:
                    raise PluginError(f"command '{name}' is registered by both "
                                      f"'{found[name].plugin}' and '{plugin}'")
                found[name] = Command(name, help, configure or (lambda parser: None), run,
                                      plugin)

            self._collect("crownguard_register_commands", check)
            self._commands = found
        return self._commands

    @property
    def event_sources(self) -> dict[str, EventSource]:
        """The registered event sources by name, in the order they were registered."""
        if self._event_sources is None:
            found: dict[str, EventSource] = {}

            def check(item: Any, plugin: str) -> None:
                if not isinstance(item, EventSource):
                    raise PluginError(f"plugin '{plugin}' registered {item!r}, not an "
                                      "EventSource")
                if not NAME.match(item.name):
                    raise PluginError(f"plugin '{plugin}': event source name '{item.name}' "
                                      f"must match {NAME.pattern}")
                if not callable(item.recognise) or not callable(item.map):
                    raise PluginError(f"plugin '{plugin}': event source '{item.name}' needs "
                                      "callable recognise and map")
                if item.name in found:
                    raise PluginError(f"event source '{item.name}' is registered by both "
                                      f"'{found[item.name].plugin}' and '{plugin}'")
                found[item.name] = EventSource(item.name, item.recognise, item.map,
                                               item.description, item.split, plugin)

            self._collect("crownguard_register_event_sources", check)
            self._event_sources = found
        return self._event_sources

    @property
    def content_sources(self) -> dict[str, ContentSource]:
        """The registered content sources by name, in the order they were registered."""
        if self._content_sources is None:
            found: dict[str, ContentSource] = {}

            def check(item: Any, plugin: str) -> None:
                if not isinstance(item, ContentSource):
                    raise PluginError(f"plugin '{plugin}' registered {item!r}, not a "
                                      "ContentSource")
                if not NAME.match(item.name) or not callable(item.fetch_head):
                    raise PluginError(f"plugin '{plugin}': content source '{item.name}' needs "
                                      f"a name matching {NAME.pattern} and a callable "
                                      "fetch_head")
                if item.name in found:
                    raise PluginError(f"content source '{item.name}' is registered by both "
                                      f"'{found[item.name].plugin}' and '{plugin}'")
                found[item.name] = ContentSource(item.name, item.connection, item.fetch_head,
                                                 item.description, plugin)

            self._collect("crownguard_register_content_sources", check)
            self._content_sources = found
        return self._content_sources

    @property
    def interaction_receivers(self) -> dict[str, InteractionReceiver]:
        if self._receivers is None:
            found: dict[str, InteractionReceiver] = {}

            def check(name: Any, plugin: str, *, verify: Any = None,
                      resolve: Any = None) -> None:
                if not isinstance(name, str) or not NAME.match(name):
                    raise PluginError(f"plugin '{plugin}': interaction receiver name "
                                      f"{name!r} must match {NAME.pattern}")
                if not callable(verify) or not callable(resolve):
                    raise PluginError(f"plugin '{plugin}': interaction receiver '{name}' "
                                      "needs callable verify and resolve")
                if name in found:
                    raise PluginError(f"interaction receiver '{name}' is registered by both "
                                      f"'{found[name].plugin}' and '{plugin}'")
                found[name] = InteractionReceiver(name, verify, resolve, plugin)

            self._collect("crownguard_register_interaction_receivers", check)
            self._receivers = found
        return self._receivers

    @property
    def pollers(self) -> dict[str, Poller]:
        if self._pollers is None:
            found: dict[str, Poller] = {}

            def check(name: Any, plugin: str, *, connection: Any = None,
                      poll: Any = None) -> None:
                if not isinstance(name, str) or not NAME.match(name):
                    raise PluginError(f"plugin '{plugin}': poller name {name!r} must match "
                                      f"{NAME.pattern}")
                if not isinstance(connection, str) or not callable(poll):
                    raise PluginError(f"plugin '{plugin}': poller '{name}' needs a connection "
                                      "name and a callable poll")
                if name in found:
                    raise PluginError(f"poller '{name}' is registered by both "
                                      f"'{found[name].plugin}' and '{plugin}'")
                found[name] = Poller(name, connection, poll, plugin)

            self._collect("crownguard_register_pollers", check)
            self._pollers = found
        return self._pollers

    def action(self, name: str) -> Action:
        try:
            return self.actions[name]
        except KeyError:
            raise PluginError(f"unknown action '{name}'") from None

    # observers ------------------------------------------------------------------------------

    def observed(self, hook_name: str) -> bool:
        """Whether any plugin implements the observer hook (else its arguments need not be
        made)."""
        return bool(getattr(self.pm.hook, hook_name).get_hookimpls())

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Fire an observer hook; a failing observer is logged, never fatal to the run."""
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            try:
                impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as exc:
                log.warning("observer %s.%s failed: %s: %s", impl.plugin_name, hook_name,
                            type(exc).__name__, exc)


def _with_plugin(item: Action, plugin: str) -> Action:
    from dataclasses import replace

    return item if item.plugin == plugin else replace(item, plugin=plugin)
