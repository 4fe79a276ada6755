"""`${{ ... }}` templates over JMESPath.

A string that is exactly `${{ expr }}` yields the expression's value with its type; `${{ }}`
inside longer text is interpolated as text (null as "", strings as they are, anything else as
compact JSON). Expressions are compiled once and cached. JMESPath cannot run code, and the
added functions below are pure, so no template can do more than read its context.

Added functions (beyond JMESPath's built-ins):

| function | result |
|---|---|
| `lower(s)`, `upper(s)`, `trim(s)` | case and whitespace |
| `split(s, sep)` | list of strings |
| `replace(s, old, new)` | every `old` replaced |
| `coalesce(a, b, ...)` | the first argument that is not null |
| `default(value, fallback)` | `value` unless it is null, else `fallback` |
| `now()` | the current UTC time as ISO 8601 (`...Z`) |
| `from_json(s)` | parse a JSON string |
| `format(template, args)` | `{0}`/`{name}` placeholders filled from a list or object |

Budgets (docs/playbooks.md, "Limits"), so that no expression or template is a crash or a hang:
an expression is at most MAX_EXPRESSION_CHARS long, nests brackets and prefix operators at
most MAX_EXPRESSION_NESTING deep, parses to a tree at most MAX_EXPRESSION_DEPTH deep, and its
multi-selects copy what they select at most MAX_FANOUT times over; a string holding
templates is at most MAX_TEMPLATE_CHARS long with at most MAX_TEMPLATES `${{`; splitting a
string into templates is linear in its length. `from_json()` reads JSON only (no NaN or
Infinity), nesting at most MAX_DEPTH deep, and `replace()` and `format()` give at most
MAX_RESULT_CHARS. Any failure of an evaluation is an ExpressionError.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jmespath
from jmespath import exceptions as jp_exceptions
from jmespath import visitor

from ..errors import ExpressionError
from .fastpath import Compiled, compile_ast
from .functions import Functions, to_text
from .limits import (
    CLOSE,
    MAX_EXPRESSION_CHARS,
    MAX_EXPRESSION_DEPTH,
    MAX_EXPRESSION_NESTING,
    MAX_FANOUT,
    MAX_TEMPLATE_CHARS,
    MAX_TEMPLATES,
    OPEN,
    expression_end,
    fanout,
    nesting,
    shown,
    tree_deeper,
)

CONTEXT_ROOTS = ("event", "steps", "vars", "risk", "run", "item")

_FUNCTIONS = Functions()
_OPTIONS = jmespath.Options(custom_functions=_FUNCTIONS)


@lru_cache(maxsize=4096)
def compile_expression(expression: str) -> Any:
    """Compile a bare JMESPath expression once; raise ExpressionError on a syntax error."""
    if not expression.strip():
        raise ExpressionError(expression, "empty expression")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(shown(expression), f"{len(expression):,} characters long, past "
                              f"the limit of {MAX_EXPRESSION_CHARS:,}")
    if nesting(expression) > MAX_EXPRESSION_NESTING:
        raise ExpressionError(shown(expression), "brackets and prefix operators (! &) nest "
                              f"more than {MAX_EXPRESSION_NESTING} levels deep")
    try:
        compiled = jmespath.compile(expression)
    except jp_exceptions.JMESPathError as exc:
        raise ExpressionError(shown(expression), _syntax_message(exc)) from None
    except RecursionError:  # a backstop: _nesting bounds what the parser recurses on
        raise ExpressionError(shown(expression), "nests too deep to parse") from None
    if tree_deeper(compiled.parsed, MAX_EXPRESSION_DEPTH):
        raise ExpressionError(shown(expression), f"more than {MAX_EXPRESSION_DEPTH} "
                              "operations deep (a chain of `|`, `&&` or `||` that long?)")
    if fanout(compiled.parsed) > MAX_FANOUT:
        raise ExpressionError(shown(expression), "its multi-selects ([a, b] and {k: a}) would "
                              f"copy what they select more than {MAX_FANOUT:,} times over")
    return compiled


def _syntax_message(exc: Exception) -> str:
    msg = str(getattr(exc, "msg", "") or str(exc).splitlines()[0])
    pos = getattr(exc, "lex_position", None)
    return f"syntax error: {msg}" + (f" at column {pos + 1}" if isinstance(pos, int) else "")


class _Interpreter(visitor.TreeInterpreter):
    """jmespath's interpreter, except that ordering a string against a number (`'7' > `3``)
    is null, the specification's answer to an invalid ordering, instead of Python's
    TypeError escaping as a crash."""

    def visit_comparator(self, node: Any, value: Any) -> Any:
        if node["value"] in self._EQUALITY_OPS:  # type: ignore[attr-defined]
            return super().visit_comparator(node, value)
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        if isinstance(left, str) is not isinstance(right, str):
            return None
        return super().visit_comparator(node, value)


_INTERPRETER = _Interpreter(_OPTIONS)


@lru_cache(maxsize=4096)
def _compiled(expression: str) -> Compiled:
    return compile_ast(compile_expression(expression).parsed, _INTERPRETER)


# What evaluating JMESPath over anyone's data may raise besides its own errors (a comparison
# of unorderable values, a conversion, a RecursionError on absurd data): an ExpressionError,
# so that the step fails cleanly instead of the run crashing.
_EVALUATION_ERRORS = (jp_exceptions.JMESPathError, ValueError, TypeError, OverflowError,
                      RecursionError, KeyError, IndexError, AttributeError)


def _evaluation_error(expression: str, exc: Exception) -> ExpressionError:
    if isinstance(exc, jp_exceptions.JMESPathError):
        return ExpressionError(shown(expression), str(exc).splitlines()[0])
    if isinstance(exc, RecursionError):
        return ExpressionError(shown(expression), "the data nests too deep to evaluate")
    return ExpressionError(shown(expression), f"cannot be evaluated on this data "
                                               f"({type(exc).__name__}: {str(exc)[:120]})")


def evaluate(expression: str, context: dict[str, Any]) -> Any:
    """Evaluate a bare JMESPath expression against the context (compiled once, see fastpath)."""
    try:
        return _compiled(expression)(context)
    except _EVALUATION_ERRORS as exc:
        raise _evaluation_error(expression, exc) from None


def evaluator(expression: str) -> Callable[[dict[str, Any]], Any]:
    """`evaluate` bound to one expression, compiled now (a syntax error raises here): for an
    expression run on every event, such as a playbook's trigger."""
    run = _compiled(expression)

    def evaluate_bound(context: dict[str, Any]) -> Any:
        try:
            return run(context)
        except _EVALUATION_ERRORS as exc:
            raise _evaluation_error(expression, exc) from None

    return evaluate_bound


def truthy(value: Any) -> bool:
    """JMESPath truthiness: null, false, empty string, list and object are false."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


# --- templates ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    text: str
    is_expression: bool


def _split_template(template: str) -> list[_Part]:
    """Split text into literal and expression parts. An expression ends at the first `}}`
    outside its quoted text, literals and braces, so `${{ {a: b} }}` and `${{ '}}' }}` work;
    when there is none, at the first `}}`, whose expression is then a syntax error, raised at
    once. Each character is looked at a bounded number of times: linear in the text."""
    parts: list[_Part] = []
    pos = 0
    while True:
        start = template.find(OPEN, pos)
        if start < 0:
            break
        if start > pos:
            parts.append(_Part(template[pos:start], False))
        search_from = start + len(OPEN)
        first = template.find(CLOSE, search_from)
        if first < 0:
            raise ExpressionError(shown(template), "'${{' without a closing '}}'")
        end = expression_end(template, search_from)
        if end < 0:
            end = first
            compile_expression(template[search_from:end].strip())  # raises, in all but name
        parts.append(_Part(template[search_from:end].strip(), True))
        pos = end + len(CLOSE)
    if pos < len(template):
        parts.append(_Part(template[pos:], False))
    return parts


@dataclass(frozen=True)
class Template:
    """A compiled string template."""

    source: str
    parts: tuple[_Part, ...]

    @property
    def expressions(self) -> list[str]:
        return [p.text for p in self.parts if p.is_expression]

    def render(self, context: dict[str, Any]) -> Any:
        if len(self.parts) == 1 and self.parts[0].is_expression:
            return evaluate(self.parts[0].text, context)
        return "".join(to_text(evaluate(p.text, context)) if p.is_expression else p.text
                       for p in self.parts)


@lru_cache(maxsize=4096)
def compile_template(source: str) -> Template:
    """Compile a string template; raises ExpressionError for the first bad expression."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise ExpressionError(shown(source), f"a string with templates is {len(source):,} "
                              f"characters long, past the limit of {MAX_TEMPLATE_CHARS:,}")
    if source.count(OPEN) > MAX_TEMPLATES:
        raise ExpressionError(shown(source), f"more than {MAX_TEMPLATES} '${{{{' templates "
                              "in one string")
    parts = _split_template(source)
    for part in parts:
        if part.is_expression:
            compile_expression(part.text)
    return Template(source, tuple(parts))


def has_template(value: Any) -> bool:
    """Whether a (nested) value contains any `${{ }}`."""
    if isinstance(value, str):
        return OPEN in value
    if isinstance(value, dict):
        return any(has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(has_template(v) for v in value)
    return False


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every template inside a nested value; other values are returned as they are."""
    if isinstance(value, str):
        return compile_template(value).render(context) if OPEN in value else value
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value


def renderer(value: Any) -> Callable[[dict[str, Any]], Any]:
    """`render` bound to one value, its templates compiled now (an error in one raises here):
    for a value rendered again and again, such as a step's inputs."""
    if isinstance(value, str):
        if OPEN not in value:
            return lambda context: value
        parts = compile_template(value).parts
        if len(parts) == 1 and parts[0].is_expression:
            return evaluator(parts[0].text)
        pieces = [(evaluator(p.text), "") if p.is_expression else (None, p.text) for p in parts]
        return lambda context: "".join(text if run is None else to_text(run(context))
                                       for run, text in pieces)
    if isinstance(value, dict):
        items = [(key, renderer(v)) for key, v in value.items()]
        return lambda context: {key: run(context) for key, run in items}
    if isinstance(value, list):
        each = [renderer(v) for v in value]
        return lambda context: [run(context) for run in each]
    return lambda context: value


def iter_strings(value: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a nested value with its JSON pointer (for static checks)."""
    if isinstance(value, str):
        yield pointer, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from iter_strings(v, f"{pointer}/{str(k).replace('~', '~0').replace('/', '~1')}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from iter_strings(v, f"{pointer}/{i}")


# --- static analysis ---------------------------------------------------------------------------


def _leftmost_fields(node: dict[str, Any]) -> list[str]:
    """The field chain at the left of a subexpression: `steps.a.output` -> [steps, a, output]."""
    if node.get("type") == "field":
        return [node["value"]]
    if node.get("type") == "subexpression":
        chain = _leftmost_fields(node["children"][0])
        if chain and len(chain) == _chain_len(node["children"][0]):
            right = node["children"][1]
            if right.get("type") == "field":
                return [*chain, right["value"]]
        return chain
    if node.get("type") in ("index_expression", "projection", "filter_projection",
                            "value_projection", "flatten"):
        children = node.get("children") or []
        return _leftmost_fields(children[0]) if children else []
    return []


def _chain_len(node: dict[str, Any]) -> int:
    return len(_leftmost_fields(node)) if node.get("type") in ("field", "subexpression") else -1


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for child in node.get("children") or []:
            yield from _walk(child)
    elif isinstance(node, list):
        for child in node:
            yield from _walk(child)


_LEFT_ONLY = {"index_expression", "projection", "value_projection", "flatten",
              "filter_projection", "pipe"}
_ALL_CHILDREN = {"comparator", "and_expression", "or_expression", "not_expression",
                 "function_expression", "multi_select_list", "multi_select_dict",
                 "key_val_pair"}


def _root_names(node: dict[str, Any]) -> Iterator[str]:
    """Names read from the top of the context (not relative to a projection or a filter)."""
    kind = node.get("type")
    if kind in ("field", "subexpression"):
        chain = _leftmost_fields(node)
        if chain:
            yield chain[0]
        elif kind == "subexpression":
            yield from _root_names(node["children"][0])
    elif kind in _LEFT_ONLY:
        children = node.get("children") or []
        if children:
            yield from _root_names(children[0])
    elif kind in _ALL_CHILDREN:
        for child in node.get("children") or []:
            if isinstance(child, dict):
                yield from _root_names(child)


_LITERAL_TYPES = {str: "string", bool: "boolean", int: "number", float: "number",
                  list: "array", dict: "object", type(None): "null"}


def function_problems(expression: str) -> list[str]:
    """Unknown functions, wrong argument counts and literal arguments of the wrong type:
    what JMESPath itself reports only when the expression runs."""
    table = _FUNCTIONS.FUNCTION_TABLE
    problems = []
    for node in _walk(compile_expression(expression).parsed):
        if node.get("type") != "function_expression":
            continue
        name, args = node["value"], node.get("children") or []
        if name not in table:
            problems.append(f"unknown function {name}()")
            continue
        signature = table[name]["signature"]
        variadic = bool(signature) and signature[-1].get("variadic")
        fixed = len(signature) - (1 if variadic else 0)
        if len(args) < fixed + (1 if variadic else 0) or (not variadic and len(args) > fixed):
            wanted = f"at least {fixed + 1}" if variadic else str(fixed)
            problems.append(f"{name}() takes {wanted} argument(s), got {len(args)}")
            continue
        for arg, spec in zip(args, signature, strict=False):
            types = spec.get("types") or []
            if arg.get("type") == "literal" and types and "expref" not in types:
                kind = _LITERAL_TYPES.get(type(arg["value"]), "")
                if kind and kind not in types and not (kind == "array" and any(
                        t.startswith("array") for t in types)):
                    problems.append(f"{name}() takes {' or '.join(types)}, not the {kind} "
                                    f"{json.dumps(arg['value'])}")
    return problems


def negation_traps(expression: str) -> list[str]:
    """`!a.b` is `(!a).b` in JMESPath (always null); the operand a reader meant, for each."""
    parsed = compile_expression(expression).parsed
    traps = []
    for node in _walk(parsed):
        if node.get("type") in ("subexpression", "index_expression") and node.get("children") \
                and node["children"][0].get("type") == "not_expression":
            chain = _leftmost_fields(node["children"][0]["children"][0])
            traps.append(".".join(chain) if chain else "...")
    return traps


class _Whole:
    """The marker for "read as a whole" in `Reads`."""

    def __repr__(self) -> str:
        return "WHOLE"


WHOLE = _Whole()
Reads = dict[str, "Reads"] | _Whole
_RELATIVE_RIGHT = {"subexpression", "index_expression", "projection", "value_projection",
                   "flatten", "filter_projection", "pipe"}


def merge_reads(a: Reads, b: Reads) -> Reads:
    if isinstance(a, _Whole) or isinstance(b, _Whole):
        return WHOLE
    merged = dict(a)
    for key, sub in b.items():
        merged[key] = merge_reads(merged[key], sub) if key in merged else sub
    return merged


def _reads(node: dict[str, Any]) -> Reads:
    kind = node.get("type")
    children = node.get("children") or []
    if kind == "field":
        return {node["value"]: WHOLE}
    if kind == "literal" or kind == "expref":
        return {}  # an expref is applied to the elements of another argument, not to @
    if kind == "subexpression" and children and children[0].get("type") == "field":
        rest = children[1:]
        inner = _reads(rest[0] if len(rest) == 1 else {"type": "subexpression",
                                                        "children": rest})
        return {children[0]["value"]: inner}
    if kind in _RELATIVE_RIGHT and children:
        # The left side reads the current value; what follows reads what the left returned,
        # which the left side already marks as read whole.
        return _reads(children[0])
    if kind in _ALL_CHILDREN:
        reads: Reads = {}
        for child in children:
            reads = merge_reads(reads, _reads(child))
        return reads
    return WHOLE  # @, a bare [0] or anything new: the whole value


def reads(expression: str) -> Reads:
    """What an expression reads of the value it runs on: `{key: what it reads of value[key]}`,
    or WHOLE. `event.file.name && risk.level` reads {event: {file: {name: WHOLE}}, risk:
    {level: WHOLE}}; `keys(event)` reads all of event; `@` reads everything. Evaluating the
    expression on a value holding only what it reads gives the same result (routing builds
    only those parts of an event's context; tests/test_fastpath.py checks the promise)."""
    return _reads(compile_expression(expression).parsed)


_IMPURE_FUNCTIONS = frozenset({"now"})


def is_pure(expression: str) -> bool:
    """Whether the expression's result depends only on what it reads (no `now()`)."""
    return not any(node.get("type") == "function_expression"
                   and node.get("value") in _IMPURE_FUNCTIONS
                   for node in _walk(compile_expression(expression).parsed))


def referenced_roots(expression: str) -> tuple[set[str], set[str]]:
    """The context roots an expression reads and every `steps.<id>` it names."""
    parsed = compile_expression(expression).parsed
    roots = set(_root_names(parsed))
    steps: set[str] = set()
    for node in _walk(parsed):
        chain = _leftmost_fields(node)
        if len(chain) >= 2 and chain[0] == "steps":
            steps.add(chain[1])
    return roots, steps
