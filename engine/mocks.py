"""Mock vendor servers: stateful imitations of vendor APIs, served by werkzeug in a thread.

A plugin subclasses `MockServer`, declares routes with `@route(METHOD, "/path/{param}")`, keeps
the vendor's state on the instance and answers with the vendor's real bodies. The base class
records every call, enforces nothing by itself, and injects faults on demand:

    mock.inject("status", status=429, retry_after=2, path="/devices/entities/devices-actions/v2")
    mock.inject("latency", seconds=0.2)
    mock.inject("malformed")         # a 200 whose body is not JSON
    mock.inject("timeout", seconds=5)  # answer only after the client gave up
    mock.inject("lost_response", path="/api/now/table/*")  # apply the request, then answer
                                     # 503 (or, with seconds=, too late): the answer is lost

A path ending in `*` matches by prefix; `{name}` matches one segment.
Subclasses may check authentication and rate limits for every request in `before_route`, and
add headers to every answer in `after_route`; calls are recorded before either runs.

Usable from pytest fixtures and, outside pytest, from `crownguard demo`. The server is
werkzeug's own (`werkzeug.serving.make_server`, threaded, on 127.0.0.1 and an OS-chosen port,
in a daemon thread), so installing crownguard installs no pytest plugin besides its own.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from werkzeug import Request, Response
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .errors import MockServerError
from .kinds import FaultKind

FAULT_KINDS = tuple(FaultKind)
# How often the serving loop looks for stop(): ~50 ms to stop instead of socketserver's 500.
_POLL_SECONDS = 0.05


class _QuietRequestHandler(WSGIRequestHandler):
    """werkzeug logs every request at INFO; a demo or a test run wants quiet. Errors (a handler
    that raised) are still logged."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass(frozen=True)
class MockServerSpec:
    """A mock server a plugin ships: `factory()` builds an unstarted MockServer."""

    name: str
    factory: Callable[[], MockServer]
    description: str = ""
    connection: str | None = None  # the connection it stands in for (default: its name)

    @property
    def connection_name(self) -> str:
        return self.connection or self.name


@dataclass
class RecordedCall:
    """One request the mock received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def form(self) -> dict[str, str]:
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.body.decode("utf-8", "replace")))

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Fault:
    kind: str
    path: str | None = None
    method: str | None = None
    times: int | None = 1
    status: int = 500
    retry_after: float | str | None = None
    seconds: float = 0.0
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    template: str
    handler_name: str


def route(method: str, template: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a MockServer method as the handler of METHOD /path/{param}."""

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        routes = list(getattr(func, "_mock_routes", []))
        routes.append((method.upper(), template))
        func._mock_routes = routes  # type: ignore[attr-defined]
        return func

    return mark


def _compile(template: str) -> re.Pattern[str]:
    regex = re.sub(r"\\\{([a-zA-Z_][a-zA-Z0-9_]*)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{regex}$")


class MockServer:
    """Base of every mock vendor server."""

    vendor: ClassVar[str] = "mock"
    _routes: ClassVar[list[_Route]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        routes: list[_Route] = []
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                for method, template in getattr(value, "_mock_routes", []):
                    routes.append(_Route(method, _compile(template), template, name))
        # Literal paths win over parameterised ones at the same length.
        cls._routes = sorted(routes, key=lambda r: (r.template.count("{"), -len(r.template)))

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port  # the port it listens on once started (0: the OS picks one)
        self.calls: list[RecordedCall] = []
        self.faults: list[Fault] = []
        self.state_lock = threading.RLock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.reset_state()

    # life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen and serve in a daemon thread; returns once the socket is bound."""
        if self._server is not None:
            raise MockServerError(f"{type(self).__name__} is already running")
        server = make_server(self.host, self.port, self._wsgi, threaded=True,
                             request_handler=_QuietRequestHandler)
        # Handler threads are daemons (werkzeug's default for threaded servers), so stop() does
        # not wait for an answer a `timeout` fault is still holding back.
        self._server, self.port = server, server.server_port
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": _POLL_SECONDS},
                                        name=f"mock-{self.vendor}-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket (~50 ms)."""
        if self._server is None:
            raise MockServerError(f"{type(self).__name__} is not running")
        server, thread = self._server, self._thread
        self._server = None
        self._thread = None
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()

    def is_running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> MockServer:
        if not self.is_running():
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.is_running():
            self.stop()

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        response = self.application(Request(environ))
        return response(environ, start_response)

    # subclasses ------------------------------------------------------------------------------

    def reset_state(self) -> None:
        """Set up the vendor state (hosts, users...); called at construction."""

    def connection_settings(self) -> dict[str, Any]:
        """The connections-file entry that points a plugin at this mock."""
        return {"base_url": self.base_url}

    def not_found(self, request: Request) -> Response:
        return self.json_response({"error": "not found", "path": request.path}, 404)

    # scenario seeding -------------------------------------------------------------------------

    def seeding_sections(self) -> list[str]:
        """The sections a scenario's `mocks.<name>` may seed: one `seed_<section>` method each."""
        return sorted(name[len("seed_"):] for name in dir(self)
                      if name.startswith("seed_") and callable(getattr(self, name)))

    def seed(self, section: str, items: list[dict[str, Any]]) -> None:
        """Add a scenario's records of one section (hosts, users...) to the vendor state.

        Each mock documents its sections as `seed_<section>(items)` methods, so the scenario
        runner needs no table of vendors. An unknown section is a LookupError naming the known.
        """
        handler = getattr(self, f"seed_{section}", None) if section.isidentifier() else None
        if not callable(handler):
            raise MockServerError(f"no seeding section '{section}' (known: "
                              f"{', '.join(self.seeding_sections()) or 'none'})")
        with self.state_lock:
            handler(list(items))

    # helpers ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url_for(self, path: str) -> str:
        """The full URL of a path on this server."""
        return self.base_url + "/" + path.lstrip("/")

    @staticmethod
    def json_response(body: Any, status: int = 200,
                      headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps(body), status=status, headers=headers,
                        content_type="application/json")

    def calls_to(self, method: str | None = None, path: str | None = None) -> list[RecordedCall]:
        """Recorded calls filtered by method and exact path or path template."""
        pattern = _compile(path) if path and "{" in path else None
        return [c for c in list(self.calls)
                if (method is None or c.method == method.upper())
                and (path is None or (pattern.match(c.path) if pattern else c.path == path))]

    # fault injection -------------------------------------------------------------------------

    def inject(self, kind: str, *, path: str | None = None, method: str | None = None,
               times: int | None = 1, status: int = 500, retry_after: float | str | None = None,
               seconds: float = 0.0, body: Any = None,
               headers: dict[str, str] | None = None) -> Fault:
        """Make the next `times` matching requests (None: all) misbehave; `headers` are added
        to an injected status answer (a vendor's own rate-limit headers...)."""
        if kind not in FAULT_KINDS:
            raise MockServerError(f"unknown fault '{kind}' (one of {', '.join(FAULT_KINDS)})")
        kind = FaultKind(kind)
        if kind == FaultKind.LOST_RESPONSE and status == 500:
            status = 503
        fault = Fault(kind, path, method.upper() if method else None, times, status,
                      retry_after, seconds, body, dict(headers or {}))
        with self.state_lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.state_lock:
            self.faults.clear()

    @staticmethod
    def _path_matches(pattern: str | None, path: str) -> bool:
        if not pattern:
            return True
        if pattern.endswith("*"):
            return path.startswith(pattern[:-1])
        return bool(_compile(pattern).match(path)) if "{" in pattern else pattern == path

    def _take_fault(self, request: Request, lost: bool = False) -> Fault | None:
        with self.state_lock:
            for fault in self.faults:
                if (fault.kind == FaultKind.LOST_RESPONSE) != lost:
                    continue
                if fault.method and fault.method != request.method:
                    continue
                if not self._path_matches(fault.path, request.path):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    def _fault_response(self, fault: Fault) -> Response | None:
        if fault.kind in (FaultKind.LATENCY, FaultKind.TIMEOUT):
            time.sleep(fault.seconds)
            return None
        if fault.kind == FaultKind.MALFORMED:
            return Response(fault.body or '{"truncated": ', status=200,
                            content_type="application/json")
        if fault.kind == FaultKind.RESET:
            # An empty, connection-closing answer that is not valid HTTP body for the client.
            return Response(b"", status=502, headers={"Connection": "close"})
        headers = dict(fault.headers)
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        body = fault.body if fault.body is not None else self.error_body(fault.status)
        return self.json_response(body, fault.status, headers)

    def error_body(self, status: int) -> Any:
        """The vendor's error body for an injected status (subclasses use the real shape)."""
        return {"error": {"code": status, "message": f"injected HTTP {status}"}}

    # dispatch ---------------------------------------------------------------------------------

    def application(self, request: Request) -> Response:
        request.get_data()
        return self.dispatch(request)

    def before_route(self, request: Request) -> Response | None:
        """Checks every request passes before its handler (auth, rate limits); an answer
        returned here is sent instead. Runs under the state lock."""
        return None

    def after_route(self, request: Request, response: Response) -> Response:
        """Adds what every answer carries (request ids, rate-limit headers)."""
        return response

    def dispatch(self, request: Request) -> Response:
        body = request.get_data()
        self.calls.append(RecordedCall(request.method, request.path,
                                       {k: request.args.getlist(k) for k in request.args},
                                       dict(request.headers), body))
        fault = self._take_fault(request)
        if fault is not None:
            response = self._fault_response(fault)
            if response is not None:
                return self.after_route(request, response)
        with self.state_lock:
            early = self.before_route(request)
        if early is not None:
            return self.after_route(request, early)
        response = self._route(request)
        if 200 <= response.status_code < 300:
            lost = self._take_fault(request, lost=True)
            if lost is not None:
                if lost.seconds > 0:
                    time.sleep(lost.seconds)  # the change is made; the answer comes too late
                else:
                    response = self.json_response(self.error_body(lost.status), lost.status)
        return self.after_route(request, response)

    def _route(self, request: Request) -> Response:
        allowed: list[str] = []
        for r in self._routes:
            match = r.pattern.match(request.path)
            if not match:
                continue
            if r.method != request.method:
                allowed.append(r.method)
                continue
            handler = getattr(self, r.handler_name)
            with self.state_lock:
                result = handler(request, **match.groupdict())
            return result if isinstance(result, Response) else self.json_response(result)
        if allowed:
            return self.json_response({"error": "method not allowed"}, 405,
                                      {"Allow": ", ".join(sorted(set(allowed)))})
        return self.not_found(request)
