"""Any JSON webhook to ModelMovementEvent through a JMESPath mapping kept in configuration.

    mappings:
      acme-dlp:
        when: "source == 'acme-dlp'"            # optional: recognise this payload's shape
        fields:
          id: "alert.uuid"
          time: "alert.created_at"               # ISO 8601, or epoch seconds/milliseconds
          actor.email: "lower(user.mail)"
          file.name: "file.filename"
          file.size: "to_number(file.bytes)"
          destination.kind: "'personal_cloud'"   # a JMESPath raw string
          destination.domain: "target.host"

Each key is a dotted field of event-v1.json; each value a JMESPath expression over the
payload (with crownguard's added functions: lower, split, coalesce, ...). The assembled event
is validated against the schema, so a payload that misses a required field is rejected with
that field named. A missing destination.kind is inferred from destination.domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ...errors import ExpressionError, Problem, SpecError
from ...expressions import compile_expression, evaluate, truthy
from .classify import DEFAULT_OPTIONS, NormaliseOptions, classify_web_destination
from .model import ModelMovementEvent, event_from_dict, event_schema


def _targets() -> frozenset[str]:
    schema = event_schema()
    names: set[str] = {"id", "time", "action"}
    for section in ("actor", "file", "source", "destination", "device"):
        for key in schema["$defs"][section]["properties"]:
            names.add(f"{section}.{key}")
    return frozenset(names)


@dataclass(frozen=True)
class WebhookMapping:
    """How to read one webhook's payload as a ModelMovementEvent."""

    name: str
    fields: tuple[tuple[str, str], ...]
    when: str | None = None

    def matches(self, raw: Any) -> bool:
        """Whether this mapping's `when` recognises the payload (always, without one)."""
        if self.when is None:
            return True
        try:
            return truthy(evaluate(self.when, raw))
        except ExpressionError:
            return False

    def apply(self, raw: Any, options: NormaliseOptions = DEFAULT_OPTIONS) -> ModelMovementEvent:
        origin = f"webhook:{self.name}"
        data: dict[str, Any] = {}
        for target, expression in self.fields:
            try:
                value = evaluate(expression, raw)
            except ExpressionError as exc:
                raise SpecError([Problem(origin, None, f"{target}: {exc.reason}",
                                         "/" + target.replace(".", "/"))]) from None
            if value is None:
                continue
            section, _, key = target.partition(".")
            if key:
                data.setdefault(section, {})[key] = value
            else:
                data[section] = value
        _coerce(data, options)
        data["origin"] = origin
        data["raw"] = raw
        return event_from_dict(data, origin=origin)


def _coerce(data: dict[str, Any], options: NormaliseOptions) -> None:
    """Forgive the usual webhook habits: epoch times, upper-case digests, missing kind."""
    time = data.get("time")
    if isinstance(time, (int, float)) and not isinstance(time, bool):
        seconds = time / 1000 if time > 1e11 else time
        try:
            data["time"] = datetime.fromtimestamp(seconds, UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            pass  # no time at all: the schema check names the field
    file = data.get("file")
    if isinstance(file, dict):
        for key in ("sha256", "md5"):
            if isinstance(file.get(key), str):
                file[key] = file[key].lower()
    actor = data.get("actor")
    if isinstance(actor, dict) and isinstance(actor.get("email"), str):
        actor["email"] = actor["email"].lower()
    destination = data.setdefault("destination", {})
    if isinstance(destination, dict) and "kind" not in destination:
        domain = destination.get("domain")
        if isinstance(domain, str):
            kind, _ = classify_web_destination([domain], destination.get("name"), None, options)
            destination["kind"] = str(kind)


def mapping_from_dict(name: str, spec: Any, *, origin: str = "mapping",
                      pointer: str = "") -> WebhookMapping:
    """Build and check a mapping: known target fields, expressions that compile."""
    problems: list[Problem] = []
    if not isinstance(spec, Mapping) or not isinstance(spec.get("fields"), Mapping):
        raise SpecError([Problem(origin, None, f"mapping '{name}' needs a 'fields' object",
                                 pointer)])
    targets = _targets()
    fields: list[tuple[str, str]] = []
    for target, expression in spec["fields"].items():
        where = f"{pointer}/fields/{target}"
        if target not in targets:
            problems.append(Problem(origin, None,
                                    f"mapping '{name}': '{target}' is not a field of the event",
                                    where))
            continue
        if not isinstance(expression, str):
            problems.append(Problem(origin, None,
                                    f"mapping '{name}': {target} must be a JMESPath string", where))
            continue
        try:
            compile_expression(expression)
        except ExpressionError as exc:
            problems.append(Problem(origin, None, f"mapping '{name}': {target}: {exc.reason}",
                                    where))
            continue
        fields.append((target, expression))
    when = spec.get("when")
    if when is not None:
        try:
            compile_expression(str(when))
        except ExpressionError as exc:
            problems.append(Problem(origin, None, f"mapping '{name}': when: {exc.reason}",
                                    f"{pointer}/when"))
    if problems:
        raise SpecError(problems)
    return WebhookMapping(name, tuple(fields), None if when is None else str(when))
