"""The compiled fast path gives exactly what jmespath's interpreter gives."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crownguard.engine.errors import ExpressionError
from crownguard.engine.expressions import (
    _INTERPRETER,
    WHOLE,
    Reads,
    evaluate,
    reads,
)

EXPRESSIONS = [
    "a", "a.b", "a.b.c", "@", "a | b", "`1`", "'x'", "a == b", "a != `null`", "a < b",
    "a.b >= `3`", "a && b", "a || b", "!a", "!(a.b)", "!a.b", "a && !b || c",
    "length(a)", "contains(a, 'x')", "lower(a)", "coalesce(a, b, 'd')", "[a, b]",
    "{x: a, y: b.c}", "a[0]", "a[*].b", "a[?b > `1`].c", "max_by(a, &b)", "a[].b", "a[1:2]",
    "keys(@)", "to_string(a) == '1'", "type(a) == 'number'", "a == `0`", "!`0`",
    "risk.score >= `70` && event.file.is_model && !(event.actor.departing)",
    "contains(['personal_cloud', 'genai_tool'], event.destination.kind)",
    # the specialised forms: comparisons with a string or boolean literal, contains() over a
    # list of literals, a list of literals
    "a == 'x'", "'x' != a", "a == `true`", "`false` != a", "a != `true`", "a == `\"1\"`",
    "contains(['x', `1`, `true`, `null`], a)", "!contains(['x', 'X'], b)", "['x', 'y']",
    "a.['x', 'y']", "a.contains(['x'], @)", "c.contains(['x'], b)",
    "a && b && c", "a || b || c && a", "(a && b) && (c || a)", "a.b.c.a", "a.c",
    "event.destination.trusted != `true` && contains(['genai_tool'], event.destination.kind)",
]

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2, allow_nan=False)
    | st.sampled_from(["", "x", "X", "genai_tool", "1"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "b", "c", "score", "kind"]), inner, max_size=4),
    max_leaves=12)

CONTEXT = st.fixed_dictionaries({
    "a": JSON, "b": JSON, "c": JSON,
    "risk": st.fixed_dictionaries({"score": st.integers(0, 100)}),
    "event": st.fixed_dictionaries({
        "file": st.fixed_dictionaries({"is_model": st.booleans()}),
        "actor": st.fixed_dictionaries({"departing": st.booleans() | st.none()}),
        "destination": st.fixed_dictionaries({"kind": st.sampled_from(
            ["personal_cloud", "genai_tool", "removable_media"])})}),
})


def interpreted(expression: str, context: Any) -> tuple[str, Any]:
    # jmespath's interpreter, with crownguard's one change (a string ordered against a number
    # is null, not a TypeError; see test_ordering_a_string_against_a_number_is_null).
    try:
        return "ok", _INTERPRETER.visit(jmespath.compile(expression).parsed, context)
    except jmespath.exceptions.JMESPathError:
        return "error", None


def compiled(expression: str, context: Any) -> tuple[str, Any]:
    try:
        return "ok", evaluate(expression, context)
    except ExpressionError:
        return "error", None


@pytest.mark.parametrize("expression", EXPRESSIONS)
@settings(max_examples=40, deadline=None)
@given(context=CONTEXT)
def test_compiled_equals_interpreted(context: dict[str, Any], expression: str) -> None:
    assert compiled(expression, context) == interpreted(expression, context)


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_every_expression_is_exercised(expression: str) -> None:
    context = {"a": [{"b": 2, "c": "x"}, {"b": 0}], "b": 1, "c": {"c": 3},
               "risk": {"score": 80}, "event": {"file": {"is_model": True},
                                                "actor": {"departing": False},
                                                "destination": {"kind": "genai_tool"}}}
    assert compiled(expression, context) == interpreted(expression, context)


@pytest.mark.parametrize("expression", ["a > `3`", "`3` <= a", "b[?c > `1`]"])
def test_ordering_a_string_against_a_number_is_null(expression: str) -> None:
    # Plain jmespath raises Python's TypeError here: a crash in a trigger for one odd event.
    context = {"a": "7", "b": [{"c": "x"}, {"c": 2}]}
    with pytest.raises(TypeError):
        jmespath.search(expression, context)
    expected = [{"c": 2}] if expression.startswith("b") else None
    assert evaluate(expression, context) == expected


@pytest.mark.parametrize("expression", ["a == `true`", "a != `true`", "`false` == a",
                                        "a != `false`", "a == '1'", "'true' != a",
                                        "contains(['1', `1`, `true`], a)"])
@pytest.mark.parametrize("a", [0, 1, 0.0, 1.0, 2, True, False, "1", "true", "", None, [], {}])
def test_equality_with_literals_keeps_jmespath_number_rules(expression: str, a: Any) -> None:
    # JMESPath: 1 == true is false (Python says True); the specialised forms must agree.
    assert compiled(expression, {"a": a}) == interpreted(expression, {"a": a})


def pruned(value: Any, read: Reads) -> Any:
    """`value` with every object key the expression does not read taken out."""
    if read is WHOLE or not isinstance(value, dict):
        return value
    assert isinstance(read, dict)
    return {key: pruned(value[key], sub) for key, sub in read.items() if key in value}


@pytest.mark.parametrize("expression", [*EXPRESSIONS,
    "event.[file, actor]", "a.length(@)", "{x: a.b, y: c.c}", "a | b", "a[?b].c",
    "sort_by(a, &b)", "keys(event)", "[0]", "@.a", "(a || b).c", "not_null(a.b, c)"])
@settings(max_examples=25, deadline=None)
@given(context=CONTEXT)
def test_an_expression_sees_the_same_in_only_what_it_reads(context: dict[str, Any],
                                                          expression: str) -> None:
    # Routing builds only the parts of an event's context that the triggers read.
    assert compiled(expression, pruned(context, reads(expression))) == \
        compiled(expression, context)


def test_reads_names_what_an_expression_reads() -> None:
    assert reads("event.file.is_model && contains(['high'], risk.level)") == \
        {"event": {"file": {"is_model": WHOLE}}, "risk": {"level": WHOLE}}
    assert reads("keys(event.actor) && vars.x") == {"event": {"actor": WHOLE},
                                                    "vars": {"x": WHOLE}}
    assert reads("event.files[?size > `1`].name") == {"event": {"files": WHOLE}}
    assert reads("length(@)") is WHOLE
    assert reads("`1` == `2`") == {}
