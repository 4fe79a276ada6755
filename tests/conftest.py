"""Shared test setup: no real network, ever."""

from __future__ import annotations

import ipaddress
import json as _json
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import settings
from werkzeug import Request, Response

from crownguard.engine.mocks import MockServer, RecordedCall

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


# --- a scripted HTTP endpoint ------------------------------------------------------------------


@dataclass
class _Expectation:
    path: str
    method: str | None
    json: Any
    query_string: str | None
    once: bool
    answer: tuple[bytes, int, str] = (b"", 200, "text/plain")

    def matches(self, call: RecordedCall) -> bool:
        if call.path != self.path or (self.method and call.method != self.method.upper()):
            return False
        if self.query_string is not None and urlencode(call.query, doseq=True) != \
                self.query_string:
            return False
        return self.json is None or call.json == self.json

    def respond_with_json(self, body: Any, status: int = 200) -> None:
        self.answer = (_json.dumps(body).encode(), status, "application/json")

    def respond_with_data(self, body: str | bytes, status: int = 200,
                          content_type: str = "text/plain") -> None:
        self.answer = (body.encode() if isinstance(body, str) else body, status, content_type)


class ScriptedEndpoint(MockServer):
    """A generic HTTP endpoint that answers what a test scripts: `expect_request(path,
    method=, json=, query_string=)` (or `expect_oneshot_request`, answered once) then
    `.respond_with_json(body, status)` or `.respond_with_data(text, status)`. One-shot
    expectations are tried first; a request nothing expects is a 500. `calls` records all."""

    vendor = "scripted"

    def reset_state(self) -> None:
        self.expectations: list[_Expectation] = []

    def expect_request(self, path: str, *, method: str | None = None, json: Any = None,
                       query_string: str | None = None, once: bool = False) -> _Expectation:
        expectation = _Expectation(path, method, json, query_string, once)
        with self.state_lock:
            self.expectations.append(expectation)
        return expectation

    def expect_oneshot_request(self, path: str, **kwargs: Any) -> _Expectation:
        return self.expect_request(path, once=True, **kwargs)

    def not_found(self, request: Request) -> Response:
        call = self.calls[-1]
        ordered = sorted(self.expectations, key=lambda e: not e.once)
        for expectation in ordered:
            if expectation.matches(call):
                if expectation.once:
                    self.expectations.remove(expectation)
                body, status, content_type = expectation.answer
                return Response(body, status=status, content_type=content_type)
        return Response(f"no expectation matches {call.method} {call.path}", status=500)


@pytest.fixture
def endpoint() -> Iterator[ScriptedEndpoint]:
    """A started ScriptedEndpoint on 127.0.0.1, stopped after the test."""
    with ScriptedEndpoint() as server:
        yield server


# --- one action, as the runner calls it -------------------------------------------------------


@pytest.fixture
def one_step() -> Callable[..., str]:
    """Playbook text with one step (`step_id`) that runs `action` with `inputs` under a fast
    retry policy: one_step("okta.get_user", {"user": ...}, attempts=3, timeout=None)."""

    def make(action: str, inputs: dict[str, Any], *, step_id: str = "step", attempts: int = 3,
             backoff: float = 0.01, timeout: float | None = None, name: str = "one-step") -> str:
        lines = [f"name: {name}", "steps:", f"  - id: {step_id}", f"    action: {action}",
                 f"    with: {_json.dumps(inputs)}",
                 f"    retry: {{max_attempts: {attempts}, backoff_seconds: {backoff}}}"]
        if timeout:
            lines.append(f"    timeout_seconds: {timeout}")
        return "\n".join(lines) + "\n"

    return make


@pytest.fixture
def run_step(one_step: Callable[..., str],
             run_playbook: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Run one action as a one-step playbook: the step's record, with the run's under "run".
    run_step(action, inputs, config=..., host=..., events=[...] (the journal), attempts=...,
    timeout=..., dry_run=...)."""

    def run(action: str, inputs: dict[str, Any], *, config: Any, host: Any,
            events: list[dict[str, Any]] | None = None, event: dict[str, Any] | None = None,
            dry_run: bool = False, **options: Any) -> dict[str, Any]:
        text = one_step(action, inputs, step_id="step", **options)
        record = run_playbook(text, event or {}, config=config, host=host, dry_run=dry_run,
                              journal=events.append if events is not None else None)
        return {**record["steps"]["step"], "run": record}

    return run


@pytest.fixture
def call_action() -> Callable[..., Any]:
    """Call one action the way the runner does, without a playbook: inputs validated, an
    ActionContext over the config's connections, the output validated.
    call_action(action_or_name, inputs, config, host=None, run_id=..., step_id=...)."""
    from crownguard.engine import ActionContext

    def call(action: Any, inputs: dict[str, Any], config: Any, *, host: Any = None,
             run_id: str = "run-1", step_id: str = "step", attempt: int = 1,
             idempotency_key: str | None = None) -> Any:
        if isinstance(action, str):
            action = host.action(action)
        action.validate_inputs(inputs)
        ctx = ActionContext(run_id=run_id, step_id=step_id, attempt=attempt,
                            idempotency_key=idempotency_key or f"key-{run_id}-{step_id}",
                            connections=config.connections)
        output = action.func(ctx, inputs)
        action.validate_output(output)
        return output

    return call


@pytest.fixture
def mock_config(crownguard_config: Callable[..., Any]) -> Callable[..., Any]:
    """The Config of one connection pointed at a mock: mock_config(name, mock_or_settings,
    host=..., **overrides); an override of None drops that setting."""

    def make(name: str, mock: Any, *, host: Any, env: dict[str, str] | None = None,
             **overrides: Any) -> Any:
        settings = dict(mock) if isinstance(mock, dict) else mock.connection_settings()
        settings.update(overrides)
        settings = {k: v for k, v in settings.items() if v is not None}
        return crownguard_config({name: settings}, host=host, env=env)

    return make


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    """`run_cli(*args)`: the `crownguard` command in-process; (exit code, stdout, stderr).
    Whatever the arguments, no traceback and no internal error reaches the user. The width
    is the CLI's default (120 columns) unless a test sets COLUMNS itself: otherwise it would
    be whatever terminal the test runner's process happens to have (an xdist worker has 80)."""
    from crownguard.engine.cli import main
    from crownguard.engine.cli.console import DEFAULT_COLUMNS

    monkeypatch.setenv("COLUMNS", str(DEFAULT_COLUMNS))

    def run(*args: Any) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err and "internal error" not in err, err
        return code, out, err

    return run



@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A real PostgreSQL server for the session (tests/pg_server.py): Debian's package,
    installed as root when missing. Tests that need it skip, saying why, when none can be had
    here; in CI as root it must start."""
    from pg_server import PostgresServer, Unavailable

    try:
        server = PostgresServer.start()
    except Unavailable as exc:
        if os.environ.get("CI") and os.geteuid() == 0:
            pytest.fail(f"PostgreSQL must run in CI: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: Any, request: pytest.FixtureRequest) -> str:
    """A DSN of the session's server whose tables live in a new, empty schema."""
    import re

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[-50:]
    return str(postgres_server.fresh_schema(name))
