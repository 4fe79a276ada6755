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
    # JMESPath falsiness, as the interpreter has it (0 is true); booleans, the commonest
    # operands of and/or in triggers, are decided by identity first.
    if value is True:
        return False
    if value is False or value is None:
        return True
    return value == "" or value == [] or value == {}


def _literal_list(node: dict[str, Any]) -> list[Any] | None:
    """The values of a multi-select list made only of literals (`['a', 'b']`), else None."""
    if node["type"] != "multi_select_list":
        return None
    children = node.get("children") or []
    if not all(child["type"] == "literal" for child in children):
        return None
    return [child["value"] for child in children]


def _chain(node: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The operands of a run of one associative operator: (a && b) && c -> [a, b, c]."""
    operands: list[dict[str, Any]] = []
    for child in node["children"]:
        operands.extend(_chain(child, kind) if child["type"] == kind else [child])
    return operands


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
        # a.b.c, the commonest expression, in one closure; a field of a non-object (null, a
        # list, a string) is null, which is what the AttributeError stands for.
        if len(keys) == 2:
            k1, k2 = keys

            def path2(value: Any) -> Any:
                try:
                    return value.get(k1).get(k2)
                except AttributeError:
                    return None

            return path2
        if len(keys) == 3:
            k1, k2, k3 = keys

            def path3(value: Any) -> Any:
                try:
                    return value.get(k1).get(k2).get(k3)
                except AttributeError:
                    return None

            return path3

        def path(value: Any) -> Any:
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
        if op in ("eq", "ne"):
            for literal, other in ((children[1], left), (children[0], right)):
                constant = literal.get("value") if literal["type"] == "literal" else None
                if isinstance(constant, str):
                    # _equals(x, 'text') is x == 'text': its 0/1-against-boolean rule cannot
                    # apply to a string.
                    if op == "eq":
                        return lambda value: other(value) == constant
                    return lambda value: other(value) != constant
                if constant is True or constant is False:
                    # _equals(x, true) holds only for x true itself (1 and 1.0 are not true).
                    if op == "eq":
                        return lambda value: other(value) is constant
                    return lambda value: other(value) is not constant
        if op == "eq":
            return lambda value: _equals(left(value), right(value))
        if op == "ne":
            return lambda value: not _equals(left(value), right(value))
        compare = _ORDERING[op]

        def ordering(value: Any) -> Any:
            a, b = left(value), right(value)
            if not (_is_comparable(a) and _is_comparable(b)):
                return None
            if (a.__class__ is str) is not (b.__class__ is str):
                # A string against a number: the interpreter lets Python raise TypeError (a
                # crash in a trigger); the specification's answer to an invalid ordering is null.
                return None
            return compare(a, b)

        return ordering

    if kind == "and_expression":
        # a && b && c parses as ((a && b) && c): one loop over the operands instead of nested
        # calls. The result is the first false operand, else the last one.
        operands = [compile_ast(child, interpreter) for child in _chain(node, kind)]

        def every(value: Any) -> Any:
            matched = None
            for operand in operands:
                matched = operand(value)
                if _is_false(matched):
                    return matched
            return matched

        return every

    if kind == "or_expression":
        operands = [compile_ast(child, interpreter) for child in _chain(node, kind)]

        def some(value: Any) -> Any:
            matched = None
            for operand in operands:
                matched = operand(value)
                if not _is_false(matched):
                    return matched
            return matched

        return some

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
        constants = _literal_list(children[0]) if name == "contains" and len(children) == 2 \
            else None
        if constants is not None:
            members = constants
            # contains(['a', 'b'], x): the list's type is known now, so what is left of the
            # built-in is its body, `search in subject`.
            search = args[1]

            def contains_constant(value: Any) -> Any:
                if value is None:  # the list is null on a null value: let the built-in fail
                    return call(name, [None, search(value)])
                return search(value) in members

            return contains_constant
        return lambda value: call(name, [arg(value) for arg in args])

    if kind == "multi_select_list":
        constants = _literal_list(node)
        if constants is not None:
            frozen = tuple(constants)
            return lambda value: None if value is None else list(frozen)
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
