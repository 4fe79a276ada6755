"""The connections file's `service` section: API tokens with roles, signed event sources.

    service:
      tokens:
        - {name: alice@corp.example, token: "${env:CG_TOKEN_ALICE}", role: approver}
      sources:
        siem: {secret: "${env:CG_SIEM_SECRET}", max_requests_per_minute: 600}
      incydr_poll: {interval_seconds: 60, alerts: true}
      max_body_bytes: 1048576

Tokens and source secrets are resolved by reference (`${env:..}`, `${file:..}`) only here, when
the service starts: a CLI command reading the same file needs none of them.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ..config import Config
from ..errors import ConfigError, Problem, SpecError
from ..loader import pointer_join
from ..secrets import Secret, reveal
from ..validation import describe_schema_error, schema_errors

MIN_SECRET_CHARS = 16  # shorter tokens and signing secrets are guessable
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_REQUESTS_PER_MINUTE = 600


class Role(IntEnum):
    """What a token may do; each role includes the ones before it. `requester`, below
    DESIGN.md's four, only asks for model access and reads its own requests (docs/access.md).
    No role is 0: a role is always true, so `session.role or ...` never mistakes one for none."""

    REQUESTER = 1
    VIEWER = 2
    RESPONDER = 3
    APPROVER = 4
    ADMIN = 5

    def __str__(self) -> str:
        return self.name.lower()


# The length is the resolved value's (`_secret`): a reference such as "${env:CG_T}" is
# shorter than the secret it names.
_SECRET = {"type": "string", "minLength": 1}
SERVICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "tokens": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["name", "token", "role"],
            "properties": {"name": {"type": "string", "minLength": 1}, "token": _SECRET,
                           "role": {"enum": [str(r) for r in Role]}}}},
        "sources": {"type": "object", "propertyNames": {"pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
                    "additionalProperties": {
                        "type": "object", "additionalProperties": False, "required": ["secret"],
                        "properties": {"secret": _SECRET,
                                       "max_requests_per_minute": {"type": "integer",
                                                                   "minimum": 1}}}},
        "incydr_poll": {"type": "object", "additionalProperties": False,
                        "properties": {"interval_seconds": {"type": "number",
                                                            "exclusiveMinimum": 0},
                                       "file_events": {"type": "boolean"},
                                       "alerts": {"type": "boolean"}}},
        "max_body_bytes": {"type": "integer", "minimum": 1024},
    },
}


@dataclass(frozen=True)
class ApiToken:
    name: str
    token: Secret
    role: Role


@dataclass(frozen=True)
class EventSourceSettings:
    name: str
    secret: Secret
    max_requests_per_minute: int = DEFAULT_REQUESTS_PER_MINUTE


@dataclass(frozen=True)
class IncydrPoll:
    """`service.incydr_poll`: what to poll (file events, alerting sessions) and how often."""

    interval_seconds: float = 60.0
    file_events: bool = True
    alerts: bool = False


def incydr_poll_settings(service: Any) -> IncydrPoll | None:
    """`service.incydr_poll` of a validated service section, None when it is not set."""
    poll = service.get("incydr_poll") if isinstance(service, dict) else None
    if poll is None:
        return None
    return IncydrPoll(float(poll.get("interval_seconds", 60)),
                      bool(poll.get("file_events", True)), bool(poll.get("alerts", False)))


@dataclass(frozen=True)
class ServiceSettings:
    tokens: tuple[ApiToken, ...] = ()
    sources: dict[str, EventSourceSettings] | None = None
    incydr_poll_seconds: float | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def caller(self, presented: str) -> ApiToken | None:
        """The token `presented` is, compared in constant time with every configured one."""
        found = None
        given = presented.encode()
        for token in self.tokens:  # no early exit: the time says nothing about which matched
            if hmac.compare_digest(given, token.token.reveal().encode()):
                found = token
        return found


_SHORT = f"must be a string of at least {MIN_SECRET_CHARS} characters (shorter is guessable)"


def _secret(value: Any, source: str, doc: Any, pointer: str) -> Secret:
    secret = value if isinstance(value, Secret) else Secret(str(value), source=source)
    if len(secret.reveal()) < MIN_SECRET_CHARS:  # a reference that resolved to a short value
        raise SpecError([doc.problem(pointer, f"{source}: {_SHORT}", "config")])
    return secret


def service_settings(config: Config, env: dict[str, str] | None = None) -> ServiceSettings:
    """The validated `service` section of `config`'s connections file. A SpecError names the
    file and line of every problem; a ConfigError when there is no section at all."""
    if config.service is None or config.document is None:
        raise ConfigError(f"{config.source or 'the connections file'}: no 'service' section: "
                          "`crownguard serve` needs its API tokens and event sources (see "
                          "docs/service.md)")
    doc = config.document
    problems: list[Problem] = []
    for error in schema_errors(SERVICE_SCHEMA, config.service):
        pointer = pointer_join("/service", *error.absolute_path)
        where = "service" + "".join(f".{p}" if isinstance(p, str) else f"[{p}]"
                                    for p in error.absolute_path)
        message = describe_schema_error(error)
        if error.absolute_path and error.absolute_path[-1] in ("token", "secret"):
            message = _SHORT  # never quote what may be a literal secret
        problems.append(doc.problem(pointer, f"{where}: {config.redactor.redact(message)}",
                                    "config"))
    names: dict[str, int] = {}
    for n, item in enumerate(config.service.get("tokens") or []):
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name in names:
            problems.append(doc.problem(f"/service/tokens/{n}/name",
                                        f"service.tokens[{n}].name: '{name}' is also the name "
                                        f"of tokens[{names[name]}]: names are identities",
                                        "config"))
        elif isinstance(name, str):
            names[name] = n
    poll = config.service.get("incydr_poll")
    if isinstance(poll, dict) and poll.get("file_events") is False and not poll.get("alerts"):
        problems.append(doc.problem("/service/incydr_poll", "service.incydr_poll: polls "
                                    "nothing: file_events is false and alerts is not true",
                                    "config"))
    if problems:
        raise SpecError(sorted(problems, key=lambda p: p.line or 0))
    data = config.resolve_section("service", env)
    tokens = tuple(ApiToken(t["name"], _secret(t["token"], f"service.tokens[{n}].token", doc,
                                               f"/service/tokens/{n}/token"),
                            Role[t["role"].upper()])
                   for n, t in enumerate(data.get("tokens") or []))
    seen: dict[str, str] = {}
    for token in tokens:
        value = token.token.reveal()
        config.redactor.add(value)
        if value in seen:
            raise SpecError([doc.problem("/service/tokens", f"service.tokens: '{token.name}' "
                                         f"and '{seen[value]}' have the same token", "config")])
        seen[value] = token.name
    sources = {}
    for name, item in (data.get("sources") or {}).items():
        secret = _secret(item["secret"], f"service.sources.{name}.secret", doc,
                         pointer_join("/service/sources", name, "secret"))
        config.redactor.add(reveal(secret))
        sources[name] = EventSourceSettings(name, secret, int(item.get(
            "max_requests_per_minute", DEFAULT_REQUESTS_PER_MINUTE)))
    poll = data.get("incydr_poll")
    return ServiceSettings(tokens, sources,
                           float(poll.get("interval_seconds", 60)) if poll is not None else None,
                           int(data.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)))
