"""The compiled fast path gives exactly what jmespath's interpreter gives."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crownguard.engine.expressions import _OPTIONS, ExpressionError, evaluate

EXPRESSIONS = [
    "a", "a.b", "a.b.c", "@", "a | b", "`1`", "'x'", "a == b", "a != `null`", "a < b",
    "a.b >= `3`", "a && b", "a || b", "!a", "!(a.b)", "!a.b", "a && !b || c",
    "length(a)", "contains(a, 'x')", "lower(a)", "coalesce(a, b, 'd')", "[a, b]",
    "{x: a, y: b.c}", "a[0]", "a[*].b", "a[?b > `1`].c", "max_by(a, &b)", "a[].b", "a[1:2]",
    "keys(@)", "to_string(a) == '1'", "type(a) == 'number'", "a == `0`", "!`0`",
    "risk.score >= `70` && event.file.is_model && !(event.actor.departing)",
    "contains(['personal_cloud', 'genai_tool'], event.destination.kind)",
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
    try:
        return "ok", jmespath.search(expression, context, options=_OPTIONS)
    except jmespath.exceptions.JMESPathError:
        return "error", None


def compiled(expression: str, context: Any) -> tuple[str, Any]:
    try:
        return "ok", evaluate(expression, context)
    except ExpressionError:
        return "error", None


@settings(max_examples=300, deadline=None)
@given(CONTEXT, st.sampled_from(EXPRESSIONS))
def test_compiled_equals_interpreted(context: dict[str, Any], expression: str) -> None:
    assert compiled(expression, context) == interpreted(expression, context)


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_every_expression_is_exercised(expression: str) -> None:
    context = {"a": [{"b": 2, "c": "x"}, {"b": 0}], "b": 1, "c": {"c": 3},
               "risk": {"score": 80}, "event": {"file": {"is_model": True},
                                                "actor": {"departing": False},
                                                "destination": {"kind": "genai_tool"}}}
    assert compiled(expression, context) == interpreted(expression, context)
