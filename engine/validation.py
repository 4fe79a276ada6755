"""JSON Schema helpers that config, playbooks, policies, events and scenarios share: one cached
validator per schema, every error sorted by where it is, and a sentence a person can read; and
the warnings `validate` gives about credentials written into a playbook."""

from __future__ import annotations

import re
import threading
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema

if TYPE_CHECKING:
    from .errors import Problem
    from .loader import Document

_VALIDATORS: dict[int, tuple[dict[str, Any], Any]] = {}
_VALIDATORS_LOCK = threading.Lock()


def _validator(schema: dict[str, Any]) -> Any:
    """A compiled validator per schema object (schemas are built once, at plugin loading)."""
    cached = _VALIDATORS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    validator_cls = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft202012Validator)
    validator: Any = validator_cls(schema, format_checker=jsonschema.FormatChecker())
    if schema == {"type": "object"}:  # most actions' inputs and outputs: one isinstance
        validator = _AnyObject(validator)
    with _VALIDATORS_LOCK:
        if len(_VALIDATORS) > 4096:
            _VALIDATORS.clear()
        _VALIDATORS[id(schema)] = (schema, validator)  # the schema is kept alive with it
    return validator


class _AnyObject:
    """The validator of `{"type": "object"}`: valid is a dict (what jsonschema's own type
    check tests); the errors of anything else come from the full validator."""

    def __init__(self, full: Any):
        self.iter_errors = full.iter_errors

    @staticmethod
    def is_valid(value: Any) -> bool:
        return isinstance(value, dict)


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


# --- literal credentials in a playbook ---------------------------------------------------------

# Header and field names that carry a credential, and query parameters that do.
_SECRET_NAME = re.compile(r"token|secret|passw(or)?d|api[-_]?key|"
                          r"^(proxy-)?authorization$|^(set-)?cookie$|^x-auth", re.IGNORECASE)
_SECRET_PARAM = re.compile(r"token|secret|passw(or)?d|pwd|api[-_]?key|^key$|^sig(nature)?$|"
                           r"^auth|^code$", re.IGNORECASE)


def literal_credentials(doc: Document) -> list[Problem]:
    """Warnings (not errors) for credentials written into a playbook, where they are stored
    with every run: a header or field such as Authorization, X-API-Key, Cookie, *token*,
    *secret* or *password* with a literal value, a URL with user:password@, or a URL with a
    token-like query parameter. A value built by an expression is not literal."""
    steps = doc.data.get("steps") if isinstance(doc.data, dict) else None
    found: list[Problem] = []
    for index, step in enumerate(steps if isinstance(steps, list) else []):
        if not isinstance(step, dict) or not isinstance(step.get("with"), dict):
            continue
        where = f"step '{step['id']}'" if isinstance(step.get("id"), str) else f"steps[{index}]"
        for pointer, path, text in _literal_strings(step["with"], f"/steps/{index}/with", ""):
            reason = _credential_in(path, text)
            if reason:
                found.append(doc.problem(pointer, f"warning: {where}: with.{path}: {reason}; "
                                                  "it would be stored in the journal with "
                                                  "every run: keep it in the connections file "
                                                  "(core.http_request: `credential: NAME`)",
                                         "credentials"))
    return found


def _literal_strings(value: Any, pointer: str, path: str) -> list[tuple[str, str, str]]:
    if isinstance(value, dict):
        return [s for k, v in value.items()
                for s in _literal_strings(v, f"{pointer}/{_token(k)}",
                                          f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [s for i, v in enumerate(value)
                for s in _literal_strings(v, f"{pointer}/{i}", f"{path}[{i}]")]
    if isinstance(value, str) and value.strip() and "${{" not in value:
        return [(pointer, path, value)]
    return []


def _token(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _credential_in(path: str, text: str) -> str | None:
    name = re.split(r"[.\[]", path)[-1] if not path.endswith("]") else ""
    if name and _SECRET_NAME.search(name):
        return f"a literal credential in '{name}'"
    if not text.lower().startswith(("http://", "https://")):
        return None
    try:
        parts = urlsplit(text.strip())
        password = parts.password
    except ValueError:
        return None
    if password:
        return "a URL with a password in it (user:password@)"
    for key, val in parse_qsl(parts.query, keep_blank_values=False):
        if _SECRET_PARAM.search(key) and val:
            return f"a URL with a credential in its query ('{key}=')"
    return None
