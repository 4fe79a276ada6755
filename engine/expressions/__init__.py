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
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import jmespath
from jmespath import exceptions as jp_exceptions
from jmespath import functions as jp_functions
from jmespath import visitor

from ..errors import ExpressionError
from .fastpath import Compiled, compile_ast

CONTEXT_ROOTS = ("event", "steps", "vars", "risk", "run", "item")
_OPEN = "${{"
_CLOSE = "}}"
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]*)\}")


class _Functions(jp_functions.Functions):
    @jp_functions.signature({"types": ["string"]})
    def _func_lower(self, s: str) -> str:
        return s.lower()

    @jp_functions.signature({"types": ["string"]})
    def _func_upper(self, s: str) -> str:
        return s.upper()

    @jp_functions.signature({"types": ["string"]})
    def _func_trim(self, s: str) -> str:
        return s.strip()

    @jp_functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_split(self, s: str, sep: str) -> list[str]:
        return s.split(sep) if sep else list(s)

    @jp_functions.signature({"types": ["string"]}, {"types": ["string"]}, {"types": ["string"]})
    def _func_replace(self, s: str, old: str, new: str) -> str:
        return s.replace(old, new)

    @jp_functions.signature({"types": [], "variadic": True})
    def _func_coalesce(self, *args: Any) -> Any:
        return next((a for a in args if a is not None), None)

    @jp_functions.signature({"types": []}, {"types": []})
    def _func_default(self, value: Any, fallback: Any) -> Any:
        return fallback if value is None else value

    @jp_functions.signature()
    def _func_now(self) -> str:
        return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    @jp_functions.signature({"types": ["string"]})
    def _func_sha256(self, s: str) -> str:
        return hashlib.sha256(s.encode()).hexdigest()

    @jp_functions.signature({"types": ["string"]})
    def _func_from_json(self, s: str) -> Any:
        try:
            return json.loads(s)
        except json.JSONDecodeError as exc:
            raise jp_exceptions.JMESPathError(f"from_json: not JSON ({exc.msg})") from None

    @jp_functions.signature({"types": ["string"]}, {"types": ["array", "object"]})
    def _func_format(self, template: str, args: Any) -> str:
        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            if isinstance(args, list):
                index = int(key) if key.isdigit() else -1
                value = args[index] if 0 <= index < len(args) else None
            else:
                value = args.get(key)
            return to_text(value)

        return _PLACEHOLDER.sub(fill, template)


_FUNCTIONS = _Functions()
_OPTIONS = jmespath.Options(custom_functions=_FUNCTIONS)


@lru_cache(maxsize=4096)
def compile_expression(expression: str) -> Any:
    """Compile a bare JMESPath expression once; raise ExpressionError on a syntax error."""
    if not expression.strip():
        raise ExpressionError(expression, "empty expression")
    try:
        return jmespath.compile(expression)
    except jp_exceptions.JMESPathError as exc:
        raise ExpressionError(expression, _syntax_message(exc)) from None


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


def evaluate(expression: str, context: dict[str, Any]) -> Any:
    """Evaluate a bare JMESPath expression against the context (compiled once, see fastpath)."""
    try:
        return _compiled(expression)(context)
    except jp_exceptions.JMESPathError as exc:
        raise ExpressionError(expression, str(exc).splitlines()[0]) from None


def evaluator(expression: str) -> Callable[[dict[str, Any]], Any]:
    """`evaluate` bound to one expression, compiled now (a syntax error raises here): for an
    expression run on every event, such as a playbook's trigger."""
    run = _compiled(expression)

    def evaluate_bound(context: dict[str, Any]) -> Any:
        try:
            return run(context)
        except jp_exceptions.JMESPathError as exc:
            raise ExpressionError(expression, str(exc).splitlines()[0]) from None

    return evaluate_bound


def truthy(value: Any) -> bool:
    """JMESPath truthiness: null, false, empty string, list and object are false."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


# --- templates ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    text: str
    is_expression: bool


def _split_template(template: str) -> list[_Part]:
    """Split text into literal and expression parts; an expression ends at the first `}}` that
    closes a compilable expression, so `${{ {a: b} }}` works."""
    parts: list[_Part] = []
    pos = 0
    while True:
        start = template.find(_OPEN, pos)
        if start < 0:
            break
        if start > pos:
            parts.append(_Part(template[pos:start], False))
        search_from = start + len(_OPEN)
        end = template.find(_CLOSE, search_from)
        if end < 0:
            raise ExpressionError(template, "'${{' without a closing '}}'")
        chosen = end
        candidate = end
        while candidate >= 0:
            try:
                compile_expression(template[search_from:candidate].strip())
                chosen = candidate
                break
            except ExpressionError:
                candidate = template.find(_CLOSE, candidate + 1)
        parts.append(_Part(template[search_from:chosen].strip(), True))
        pos = chosen + len(_CLOSE)
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
    parts = _split_template(source)
    for part in parts:
        if part.is_expression:
            compile_expression(part.text)
    return Template(source, tuple(parts))


def has_template(value: Any) -> bool:
    """Whether a (nested) value contains any `${{ }}`."""
    if isinstance(value, str):
        return _OPEN in value
    if isinstance(value, dict):
        return any(has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(has_template(v) for v in value)
    return False


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every template inside a nested value; other values are returned as they are."""
    if isinstance(value, str):
        return compile_template(value).render(context) if _OPEN in value else value
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value


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
