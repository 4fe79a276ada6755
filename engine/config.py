"""The connections file: where each vendor is and how to authenticate, with secrets by reference.

    connections:
      falcon: {base_url: "https://api.crowdstrike.com", client_id: "${env:FALCON_CLIENT_ID}",
               client_secret: "${env:FALCON_CLIENT_SECRET}"}
      http:   {allowed_hosts: ["hooks.example.com"]}
    settings:
      max_concurrency: 16

`${env:NAME}` and `${file:PATH}` (relative to the file) may stand anywhere in a string value;
the value then becomes a Secret that prints as *** and is registered with the Redactor.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from .assertion import signer_problems
from .egress import EGRESS_SETTINGS, egress_problems
from .errors import ConfigError, Problem, SpecError
from .loader import Document, load_file, parse_text, pointer_join
from .ratelimit import Limiter, LocalLimiter
from .secrets import Redactor, Secret, reveal
from .validation import describe_schema_error, schema_errors

REFERENCE = re.compile(r"\$\{(env|file):([^}]+)\}")
# Anything that looks like a reference but is not a valid one (${evn:X}, ${vault:x}, ${env:}).
T = TypeVar("T")

SUSPECT = re.compile(r"\$\{(?!\{)[^}]*\}")

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "connections": {"type": "object", "additionalProperties": {"type": "object"}},
        "settings": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_concurrency": {"type": "integer", "minimum": 1, "maximum": 1024},
                "vars": {"type": "object"},
                "approvers": {"type": "array", "items": {"type": "string", "minLength": 1},
                              "description": "Who may answer a wait that names no approvers."},
            },
        },
        # `crownguard serve`'s own section, checked by engine/service when the service starts.
        "service": {"type": "object"},
    },
}

_URL = {"type": "string", "pattern": "^https?://"}
_SECONDS = {"type": "number", "exclusiveMinimum": 0}

# The settings every vendor connection takes (docs/writing-plugins.md): where the vendor
# is, so that tests and the demo point it at a mock, and how long to wait for it.
CONNECTION_SETTINGS: dict[str, Any] = {
    "base_url": {**_URL, "description": "the vendor's API root"},
    "timeout_seconds": {**_SECONDS, "description": "the most one request may take, connect, "
                                                  "headers and body together (default 30; "
                                                  "never past the step's timeout)"},
    "connect_timeout_seconds": {**_SECONDS, "description": "connect timeout (default 5)"},
    "max_response_bytes": {"type": "integer", "minimum": 1,
                           "description": "refuse an answer whose body is larger (default "
                                          "8388608, 8 MiB; a streamed download such as "
                                          "MLflow's artifact digest is exempt)"},
    # How to get there from a company network: proxy, CA bundle, trust store, client cert.
    **EGRESS_SETTINGS,
    # How fast (engine/ratelimit.py): shared by every step, and by every worker over Redis.
    "rate_limit": {"type": "object", "additionalProperties": False,
                   "required": ["requests_per_second"],
                   "description": "a token bucket: at most requests_per_second, in bursts of "
                                  "`burst`; a 429's Retry-After then holds every request",
                   "properties": {"requests_per_second": _SECONDS,
                                  "burst": {"type": "integer", "minimum": 1}}},
}
TOKEN_URL_SETTING: dict[str, Any] = {
    **_URL, "description": "the OAuth2 token endpoint (default: the vendor's own, on base_url)"}
POLLING_SETTINGS: dict[str, Any] = {
    "poll_interval_seconds": {**_SECONDS, "description": "wait between status polls"},
    "max_wait_seconds": {**_SECONDS, "description": "give up waiting for the vendor's "
                                                    "asynchronous work after this long (the "
                                                    "step timeout also bounds it)"},
}


def connection_schema(properties: dict[str, Any], *, required: tuple[str, ...] = (),
                      base_url: bool = True, **schema: Any) -> dict[str, Any]:
    """The JSON Schema of a connection type: the shared settings (`base_url`, timeouts)
    extended with the vendor's own `properties`; unknown keys are errors. Pass
    `base_url=False` for a connection with no single API root."""
    shared = dict(CONNECTION_SETTINGS)
    if not base_url:
        shared.pop("base_url")
    return {"type": "object", "additionalProperties": False, **schema,
            **({"required": list(required)} if required else {}),
            "properties": {**shared, **properties}}


HTTP_CONNECTION_SCHEMA: dict[str, Any] = connection_schema(
    {"allowed_hosts": {"type": "array", "items": {"type": "string", "minLength": 1}}},
    base_url=False)


@dataclass(frozen=True)
class ConnectionType:
    """A kind of connection a plugin understands, with the JSON Schema of its settings."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    secrets: tuple[str, ...] = ()
    plugin: str = ""


class Connection:
    """One configured connection: settings (secrets as Secret) and what its steps share (the
    pooled HTTP session, the cached auth), made once on first use."""

    def __init__(self, name: str, settings: dict[str, Any], redactor: Redactor,
                 limiter: Limiter | None = None):
        self.name = name
        self.settings = settings
        self.redactor = redactor
        self.limiter: Limiter = limiter or LocalLimiter()
        self._shared: dict[str, Any] = {}
        self._lock = threading.Lock()

    def cached(self, key: str, make: Callable[[], T]) -> T:
        """The connection's one `key` (made by `make()` the first time): every step and client
        of this connection shares it."""
        with self._lock:
            if key not in self._shared:
                self._shared[key] = make()
            return cast(T, self._shared[key])

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)

    def secret(self, key: str) -> str:
        """The plain value of a (secret) setting, for sending it to the vendor."""
        value = self.settings.get(key)
        if value is None:
            raise ConfigError(f"connection '{self.name}' has no '{key}'")
        return str(reveal(value))

    def close(self) -> None:
        with self._lock:
            shared, self._shared = list(self._shared.values()), {}
        for item in shared:
            close = getattr(item, "close", None)
            if callable(close):
                close()


class Connections:
    """All connections of a config; `get` raises a clear ConfigError for a missing one."""

    def __init__(self, settings: dict[str, dict[str, Any]] | None = None,
                 redactor: Redactor | None = None):
        self.redactor = redactor or Redactor()
        limiter = LocalLimiter()  # one for all: a Retry-After holds the connection everywhere
        self._items = {name: Connection(name, values, self.redactor, limiter)
                       for name, values in (settings or {}).items()}

    def use_limiter(self, limiter: Limiter) -> None:
        """Pace every connection with `limiter` (a worker's, shared through Redis)."""
        for conn in self._items.values():
            conn.limiter = limiter

    def get(self, name: str) -> Connection:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(f"no connection '{name}' in the connections file "
                              f"(configured: {', '.join(sorted(self._items)) or 'none'})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def names(self) -> list[str]:
        return sorted(self._items)

    def close(self) -> None:
        for conn in self._items.values():
            conn.close()


@dataclass
class Config:
    connections: Connections = field(default_factory=Connections)
    max_concurrency: int = 64
    vars: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    approvers: list[str] = field(default_factory=list)
    # The `service` section as written, references unresolved: only `crownguard serve` needs
    # its tokens, and a CLI command must not fail for want of the service's environment.
    service: dict[str, Any] | None = None
    document: Document | None = None

    @property
    def redactor(self) -> Redactor:
        return self.connections.redactor

    def resolve_section(self, key: str, env: dict[str, str] | None = None) -> Any:
        """A top-level section (`service`) with its secret references resolved, as for
        connections (each value a Secret registered with this config's redactor); a SpecError
        naming file and line for every reference that does not resolve."""
        value = {"service": self.service}.get(key)
        if value is None or self.document is None:
            return value
        problems: list[Problem] = []
        base = Path(self.document.file).parent if self.document.file else Path.cwd()
        resolved = _resolve(value, f"/{key}", self.document, base, self.redactor, problems,
                            dict(os.environ) if env is None else env)
        if problems:
            raise SpecError(sorted(problems, key=lambda p: p.line or 0))
        return resolved


def _resolve(value: Any, pointer: str, doc: Document, base: Path, redactor: Redactor,
             problems: list[Problem], env: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _resolve(v, pointer_join(pointer, k), doc, base, redactor, problems, env)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, pointer_join(pointer, i), doc, base, redactor, problems, env)
                for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    where = pointer.lstrip("/").replace("/", ".")
    for suspect in SUSPECT.findall(value):
        if not REFERENCE.fullmatch(suspect):
            problems.append(doc.problem(pointer, f"{where}: '{suspect}' is not a secret "
                                                 "reference (use ${env:NAME} or ${file:PATH})",
                                        "config"))
            return None
    failed = False
    parts: list[str] = []  # each referenced value is a secret on its own too ("Bearer ${env:X}")

    def substitute(match: re.Match[str]) -> str:
        nonlocal failed
        kind, ref = match.group(1), match.group(2).strip()
        if kind == "env":
            if ref not in env:
                problems.append(doc.problem(pointer, f"{where}: environment variable {ref} is "
                                                     "not set", "config"))
                failed = True
                return ""
            parts.append(env[ref])
            return env[ref]
        try:
            parts.append(_read_secret_file(ref, base))
            return parts[-1]
        except _Unreadable as exc:
            shown = ref.replace("\0", "\\0")
            problems.append(doc.problem(pointer, f"{where}: cannot read secret file {shown} "
                                                 f"({exc})", "config"))
            failed = True
            return ""

    plain = REFERENCE.sub(substitute, value)
    if failed or plain == value:
        return value if not failed else None
    for part in (plain, *parts):
        redactor.add(part)
    return Secret(plain, source=value)


MAX_SECRET_FILE_BYTES = 64 << 10  # a token, a key or a certificate chain fits many times over


class _Unreadable(Exception):
    """Why a `${file:...}` reference cannot be read (its message goes into the problem)."""


def _read_secret_file(ref: str, base: Path) -> str:
    """The text of a `${file:PATH}` secret (relative to the connections file's folder), up to
    MAX_SECRET_FILE_BYTES: a device or a pipe is never read to its end."""
    if "\0" in ref:
        raise _Unreadable("the path holds a NUL character")
    try:
        path = Path(ref).expanduser()
    except RuntimeError:  # ~someone with no home directory
        raise _Unreadable("no such home directory") from None
    path = path if path.is_absolute() else base / path
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise _Unreadable(exc.strerror or type(exc).__name__) from None
    if len(raw) > MAX_SECRET_FILE_BYTES:
        raise _Unreadable(f"larger than {MAX_SECRET_FILE_BYTES >> 10} KiB, the limit of a "
                          "secret file")
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise _Unreadable("not UTF-8 text") from None


def _strings(value: Any, pointer: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(pointer, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, pointer_join(pointer, k))]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, pointer_join(pointer, i))]
    return []


def _revealed(value: Any) -> Any:
    """Settings with secrets as plain values, for schema validation (messages are redacted)."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, dict):
        return {k: _revealed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_revealed(v) for v in value]
    return value


def build_config(doc: Document, connection_types: dict[str, ConnectionType],
                 env: dict[str, str] | None = None) -> Config:
    """Resolve references and validate every connection against its type's schema."""
    data = doc.data
    problems: list[Problem] = []
    if not isinstance(data, dict):
        raise SpecError([doc.problem("", "the connections file must be a mapping with a "
                                         "'connections' key", "config")])
    for error in schema_errors(CONFIG_SCHEMA, data):
        pointer = "/" + "/".join(str(p) for p in error.absolute_path)
        problems.append(doc.problem(pointer.rstrip("/"), describe_schema_error(error), "config"))
    # A schema error does not hide the reference and connection problems: what is usable is
    # checked too, and every problem is reported at once.
    redactor = Redactor()
    base = Path(doc.file).parent if doc.file else Path.cwd()
    resolved: dict[str, dict[str, Any]] = {}
    connections = data.get("connections")
    for name, settings in (connections if isinstance(connections, dict) else {}).items():
        pointer = pointer_join("/connections", name)
        if not isinstance(settings, dict):  # the schema has said so
            continue
        ctype = connection_types.get(str(settings.get("type", name)))
        if ctype is None:
            known = ", ".join(sorted(connection_types)) or "none"
            problems.append(doc.problem(pointer, f"connections.{name}: no installed plugin "
                                                 f"provides this connection type (known: {known})",
                                        "config"))
            continue
        before = len(problems)
        values = _resolve(settings, pointer, doc, base, redactor, problems,
                          dict(os.environ) if env is None else env)
        # An unresolved reference has its own message; no schema error on top of it.
        unresolved = {p.pointer for p in problems[before:]}
        values.pop("type", None)
        for key in ctype.secrets:
            if isinstance(values.get(key), str):
                values[key] = Secret(str(values[key]), source=f"connections.{name}.{key}")
                redactor.add(values[key])
        for error in schema_errors(ctype.schema, _revealed(values)):
            sub = pointer_join(pointer, *error.absolute_path)
            if sub in unresolved:
                continue
            message = redactor.redact(describe_schema_error(error))
            problems.append(doc.problem(sub, f"connections.{name}: {message}", "config"))
        if len(problems) == before:  # the settings are well-formed: do they work?
            # Only where the shared egress settings are the type's (not SMTP's own ca_file).
            properties = ctype.schema.get("properties", {})
            found = (egress_problems(values, base, redactor)
                     if all(key in properties for key in EGRESS_SETTINGS) else [])
            if values.get("private_key") is not None:  # a client assertion's key (assertion.py)
                found += signer_problems(values)
            for key, problem in found:
                problems.append(doc.problem(pointer_join(pointer, key),
                                            f"connections.{name}.{key}: {problem}", "config"))
        resolved[name] = values
    raw = data.get("settings")
    file_settings: dict[str, Any] = raw if isinstance(raw, dict) else {}
    # vars are plain data for expressions: a secret reference there would be sent as text.
    for pointer, text in _strings(file_settings.get("vars") or {}, "/settings/vars"):
        if SUSPECT.search(text):
            problems.append(doc.problem(pointer, f"{pointer.lstrip('/').replace('/', '.')}: "
                                                 "secret references are resolved only in "
                                                 "connections, not in settings.vars", "config"))
    if problems:
        raise SpecError(sorted(problems, key=lambda p: p.line or 0))
    return Config(connections=Connections(resolved, redactor),
                  max_concurrency=int(file_settings.get("max_concurrency", 64)),
                  vars=dict(file_settings.get("vars") or {}), source=doc.file,
                  approvers=list(file_settings.get("approvers") or []),
                  service=data["service"] if isinstance(data.get("service"), dict) else None,
                  document=doc)


def load_config(path: str | Path | None, connection_types: dict[str, ConnectionType],
                env: dict[str, str] | None = None) -> Config:
    """Load a connections file; None gives an empty config (no connections)."""
    if path is None:
        return Config()
    config = build_config(load_file(path), connection_types, env)
    # Recorded with each run: resume, approve and undo find it again from any directory.
    config.source = str(Path(path).resolve())
    return config


def config_from_mapping(data: dict[str, Any], connection_types: dict[str, ConnectionType],
                        env: dict[str, str] | None = None, file: str = "<config>") -> Config:
    """Build a Config from an in-memory mapping (tests, the demo)."""
    import json

    return build_config(parse_text(json.dumps(data), file), connection_types, env)
