"""The event schema's local $refs inlined for the validator: same verdicts, fewer lookups."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
from servicetest import BASE_EVENT

from crownguard.engine.triage.events.model import event_schema, inline_local_refs


def _errors(schema: dict[str, Any], data: Any) -> list[tuple[list[Any], str]]:
    validator = jsonschema.Draft202012Validator(schema,
                                                format_checker=jsonschema.FormatChecker())
    return sorted((list(e.absolute_path), e.message) for e in validator.iter_errors(data))


def test_inlined_schema_gives_the_same_errors() -> None:
    original = event_schema()
    flat = inline_local_refs(original)
    assert "$ref" not in json.dumps(flat) and "$defs" not in flat
    broken = []
    for path, value in ((("actor", "id"), 3), (("file", "path"), ["x"]),
                        (("device", "falcon_id"), {"a": 1}), (("source", "registry"), 7),
                        (("actor", "email"), "not-an-email"), (("file", "sha256"), "XYZ")):
        event = copy.deepcopy(BASE_EVENT)
        event.setdefault(path[0], {})[path[1]] = value
        broken.append(event)
    for data in [BASE_EVENT, *broken, {}, {"id": ""}]:
        assert _errors(flat, data) == _errors(original, data), data
    assert all(_errors(flat, data) for data in broken)


def test_a_schema_with_a_cycle_of_definitions_is_kept_as_it_is() -> None:
    chained = {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"type": "string"}},
               "properties": {"x": {"$ref": "#/$defs/a"}}}
    assert inline_local_refs(chained) == {"properties": {"x": {"type": "string"}}}
    cycle = {"$defs": {"a": {"properties": {"next": {"$ref": "#/$defs/a"}}}},
             "properties": {"x": {"$ref": "#/$defs/a"}}}
    assert inline_local_refs(cycle) is cycle
