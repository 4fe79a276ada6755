"""The crownguard plugin hooks, grouped by life-cycle phase.

Providers fire once when a PluginHost loads its plugins; each is handed a `register` callback
so the host owns collection, duplicate checks and error messages. Observers fire during runs;
an observer that raises is logged and does not break the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from .actions import Action
    from .config import Config, ConnectionType
    from .content_sources import ContentSource
    from .mocks import MockServerSpec
    from .sources import EventSource

PROJECT = "crownguard"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- providers: fired once at plugin loading ---------------------------------------------------


@hookspec
def crownguard_register_actions(register: Callable[[Action], None]) -> None:
    """Called at loading: call `register(action)` for every Action the plugin offers."""


@hookspec
def crownguard_register_connection_types(register: Callable[[ConnectionType], None]) -> None:
    """Called at loading: call `register(ConnectionType(...))` for each connection type whose
    settings (with a JSON Schema) the plugin's actions read from the connections file."""


@hookspec
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    """Called at loading: call `register(MockServerSpec(...))` for each mock vendor server the
    plugin ships (used by tests, the pytest plugin and `crownguard demo`)."""


@hookspec
def crownguard_register_playbooks(register: Callable[[Path], None]) -> None:
    """Called at loading: call `register(path)` for each playbook file the plugin ships."""


class CommandContext(Protocol):
    """What the `crownguard` command hands a plugin command's `run`, besides its arguments."""

    def config(self) -> Config:
        """The connections file of `--config` (none given: an empty one)."""

    def answer(self, run_id: str, step: str, decision: str, *, by: str,
               comment: str | None = None, aliases: Sequence[str] = ()) -> int:
        """Answer a waiting step in the journal of `--journal` (or $CROWNGUARD_JOURNAL) as
        `crownguard approve` does, resume the run, print it (`--json` honoured) and return
        the exit code. `by` is the identity recorded; `aliases` (the same person's other
        names, such as a Slack user id) also count for the step's approvers."""


@hookspec
def crownguard_register_commands(register: Callable[..., None]) -> None:
    """Called when the `crownguard` command builds its parser: call
    `register(name, help=..., configure=fn(parser), run=fn(args, cli) -> exit code)` for each
    extra command the plugin offers. `configure` adds the command's options to its argparse
    parser; `run` gets the parsed arguments and a `CommandContext`. A name that a built-in
    command or another plugin's command already has is refused, naming both."""


@hookspec
def crownguard_register_event_sources(register: Callable[[EventSource], None]) -> None:
    """Called when a host's event sources are first asked for (`host.event_sources`, when
    triage is set up): call `register(EventSource(...))` for each tool whose raw payloads the
    plugin reads. Triage tries the sources in turn on a payload that is not a normalised
    event, before the policy's webhook mappings."""


@hookspec
def crownguard_register_content_sources(register: Callable[[ContentSource], None]) -> None:
    """Called when a host's content sources are first asked for (`host.content_sources`, when
    triage is set up with a connections file): call `register(ContentSource(...))` for each
    place the plugin can fetch a file's first bytes from by SHA-256. Triage asks them, in
    turn, for files whose metadata leaves the model question open."""


@hookspec
def crownguard_register_interaction_receivers(register: Callable[..., None]) -> None:
    """Called when the service first takes a chat interaction: call `register(name,
    verify=fn(connections, body, headers) -> parsed, resolve=fn(connections, parsed) ->
    answer)` for each chat tool whose signed button clicks answer waiting steps
    (`POST /v1/<name>/interactions`). `verify` checks the request's signature with the
    connection's secret and reads it, without network calls (the tool waits for the
    answer): AuthError for a bad or stale signature, BadResponse for a body that is no
    interaction. `resolve` (in the background) names who answered: a dict with run_id,
    step_id, decision, by, aliases (the same person's other names), comment and note (why
    `by` is not the person's e-mail, or None)."""


@hookspec
def crownguard_register_pollers(register: Callable[..., None]) -> None:
    """Called when the service starts a poller: call `register(name, connection=...,
    poll=fn(connections, since, page_size) -> iterator of pages)` for each tool whose new
    events the service may fetch on an interval. `since` is an aware datetime; each page is
    a list of `{"id": event id or None, "at": ISO time or None, "raw": the tool's event}`,
    oldest first, so the service can keep its cursor at the last stored page; an item the
    plugin could not read carries `"problem": why` and is set aside as a dead letter."""


# --- observers: fired while runs execute -------------------------------------------------------


@hookspec
def crownguard_step_started(run_id: str, step_id: str, attempt: int,
                            inputs: dict[str, Any]) -> None:
    """Called when an attempt of a step starts, with its resolved (redacted) inputs."""


@hookspec
def crownguard_step_finished(run_id: str, step_id: str, result: dict[str, Any]) -> None:
    """Called when a step reaches a final status; `result` is its entry in the run record."""


@hookspec
def crownguard_run_finished(record: dict[str, Any]) -> None:
    """Called when a run ends (succeeded, failed, waiting or cancelled) with its run record."""
