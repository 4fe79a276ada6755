"""JMESPath compiled to Python closures, for expressions evaluated on every event.

jmespath's TreeInterpreter walks the AST with a method dispatch per node on every call;
routing evaluates each playbook's trigger for every event, and that walk dominated triage
(about 50 µs a trigger). `compile_ast` turns the common node types (fields, sub-expressions,
literals, comparisons, and/or/not, function calls, multi-selects, pipes) into nested closures
with the interpreter's exact semantics, and hands any other node (projections, filters,
slices, expression references) to the interpreter itself, so results never differ.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from jmespath import visitor

Compiled = Callable[[Any], Any]

# The interpreter's own equality and comparability rules (private helpers of jmespath, used so
# that the two paths cannot disagree; tests/test_fastpath.py checks they still exist and agree).
_equals: Callable[[Any, Any], bool] = visitor._equals  # type: ignore[attr-defined]
_is_comparable: Callable[[Any], bool] = visitor._is_comparable  # type: ignore[attr-defined]
_is_actual_number: Callable[[Any], bool] = visitor._is_actual_number  # type: ignore[attr-defined]

_ORDERING = {"lt": operator.lt, "gt": operator.gt, "lte": operator.le, "gte": operator.ge}


def _is_false(value: Any) -> bool:
    # JMESPath falsiness, spelled as the interpreter spells it (0 is true).
    return (value == "" or value == [] or value == {} or value is None
            or value is False)


def compile_ast(node: dict[str, Any], interpreter: visitor.TreeInterpreter) -> Compiled:
    """A closure computing `node` on a value, exactly as `interpreter.visit(node, value)`."""
    kind = node["type"]
    children = node.get("children") or []

    if kind == "field":
        key = node["value"]

        def field(value: Any) -> Any:
            try:
                return value.get(key)
            except AttributeError:
                return None

        return field

    if kind == "subexpression" and all(child["type"] == "field" for child in children):
        keys = tuple(child["value"] for child in children)

        def path(value: Any) -> Any:  # a.b.c: the commonest expression, in one closure
            for key in keys:
                try:
                    value = value.get(key)
                except AttributeError:
                    return None
            return value

        return path

    if kind in ("subexpression", "pipe"):
        parts = [compile_ast(child, interpreter) for child in children]

        def chain(value: Any) -> Any:
            for part in parts:
                value = part(value)
            return value

        return chain

    if kind == "literal":
        constant = node["value"]
        return lambda value: constant

    if kind == "current":
        return lambda value: value

    if kind == "comparator":
        left, right = (compile_ast(child, interpreter) for child in children)
        op = node["value"]
        if op == "eq":
            return lambda value: _equals(left(value), right(value))
        if op == "ne":
            return lambda value: not _equals(left(value), right(value))
        compare = _ORDERING[op]

        def ordering(value: Any) -> Any:
            a, b = left(value), right(value)
            if not (_is_comparable(a) and _is_comparable(b)):
                return None
            return compare(a, b)

        return ordering

    if kind == "and_expression":
        first, second = (compile_ast(child, interpreter) for child in children)

        def both(value: Any) -> Any:
            matched = first(value)
            return matched if _is_false(matched) else second(value)

        return both

    if kind == "or_expression":
        first, second = (compile_ast(child, interpreter) for child in children)

        def either(value: Any) -> Any:
            matched = first(value)
            return second(value) if _is_false(matched) else matched

        return either

    if kind == "not_expression":
        inner = compile_ast(children[0], interpreter)

        def negate(value: Any) -> Any:
            result = inner(value)
            if _is_actual_number(result) and result == 0:
                return False  # !0 is false: 0 is not falsy in JMESPath
            return not result

        return negate

    if kind == "function_expression" and not any(c["type"] == "expref" for c in children):
        name = node["value"]
        args = [compile_ast(child, interpreter) for child in children]
        call = interpreter._functions.call_function  # type: ignore[attr-defined]
        return lambda value: call(name, [arg(value) for arg in args])

    if kind == "multi_select_list":
        items = [compile_ast(child, interpreter) for child in children]

        def select_list(value: Any) -> Any:
            return None if value is None else [item(value) for item in items]

        return select_list

    if kind == "multi_select_dict":
        pairs = [(child["value"], compile_ast(child["children"][0], interpreter))
                 for child in children]

        def select_dict(value: Any) -> Any:
            return None if value is None else {key: item(value) for key, item in pairs}

        return select_dict

    # Projections, filters, flatten, slices, indexes, expression references: the interpreter.
    tree: Any = node
    return lambda value: interpreter.visit(tree, value)
