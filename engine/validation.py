"""JSON Schema helpers that config, playbooks, policies, events and scenarios share: one cached
validator per schema, every error sorted by where it is, and a sentence a person can read."""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from typing import Any

import jsonschema

_VALIDATORS: dict[int, tuple[dict[str, Any], Any]] = {}
_VALIDATORS_LOCK = threading.Lock()


def _validator(schema: dict[str, Any]) -> Any:
    """A compiled validator per schema object (schemas are built once, at plugin loading)."""
    cached = _VALIDATORS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    validator_cls = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft202012Validator)
    validator = validator_cls(schema, format_checker=jsonschema.FormatChecker())
    with _VALIDATORS_LOCK:
        if len(_VALIDATORS) > 4096:
            _VALIDATORS.clear()
        _VALIDATORS[id(schema)] = (schema, validator)  # the schema is kept alive with it
    return validator


def schema_errors(schema: dict[str, Any], value: Any) -> list[jsonschema.ValidationError]:
    validator = _validator(schema)
    if validator.is_valid(value):
        return []
    return sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))


def describe_schema_error(error: jsonschema.ValidationError) -> str:
    path = "/".join(str(p) for p in error.absolute_path)
    where = f"'{path}'" if path else "the value"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = schema.get("properties", {})
        extra = sorted(set(error.instance) - set(known))
        if extra and not schema.get("patternProperties"):
            keys = ", ".join(f"'{k}'" for k in extra)
            allowed = f" (allowed: {', '.join(sorted(known))})" if known else ""
            prefix = f"{where}: " if path else ""
            return f"{prefix}unknown key{'s' if len(extra) > 1 else ''} {keys}{allowed}"
    return f"{where}: {error.message}"


# A problem these report on a value holding an unknown part may be that part's doing.
_COMBINATORS = frozenset({"anyOf", "oneOf", "allOf", "not", "if", "then", "else"})


def about_unknown(error: jsonschema.ValidationError,
                   unknown: Collection[Sequence[str | int]]) -> bool:
    path = tuple(error.absolute_path)
    for where in unknown:
        part = tuple(where)
        if path[:len(part)] == part:
            return True  # at or inside the unknown value
        if error.validator in _COMBINATORS and part[:len(path)] == path:
            return True
    return False
