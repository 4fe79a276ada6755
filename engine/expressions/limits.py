"""The budgets of expressions and templates, and the linear scans that enforce them.

Every expression and every templated string is bounded (docs/playbooks.md, "Limits"), so that
no input is a RecursionError in JMESPath's recursive parser or interpreter, or a hang.
"""

from __future__ import annotations

from typing import Any

from jmespath import exceptions as jp_exceptions

OPEN = "${{"
CLOSE = "}}"

MAX_EXPRESSION_CHARS = 4096  # the longest shipped trigger is ~300
MAX_EXPRESSION_NESTING = 32  # brackets and prefix operators (! &): the parser recurses on them
MAX_EXPRESSION_DEPTH = 128  # the parsed tree: evaluating it recurses once per level
MAX_TEMPLATE_CHARS = 64 << 10  # a nudge or ticket body is a few KB
MAX_TEMPLATES = 256  # `${{` in one string
MAX_FANOUT = 4096  # how many times over multi-selects may copy what they select
MAX_RESULT_CHARS = 1 << 20  # what replace() and format() may make of their text


def shown(text: str) -> str:
    """An expression as an error message shows it: long ones cut, with their length."""
    return text if len(text) <= 200 else f"{text[:80]}... ({len(text):,} characters)"


class TooLarge(jp_exceptions.JMESPathError):
    """A function's result past its budget (raised during evaluation)."""


def capped(text: str, function: str) -> str:
    if len(text) > MAX_RESULT_CHARS:
        raise TooLarge(f"{function}: the result would be {len(text):,} characters, past the "
                        f"{MAX_RESULT_CHARS:,}-character limit")
    return text


def nesting(expression: str) -> int:
    """How deep brackets and runs of prefix operators (`!`, `&`) nest, outside quoted text
    (inside a backtick JSON literal brackets count: json recurses on them too)."""
    depth = deepest = run = 0
    quote = ""
    escaped = False
    for char in expression:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
            elif quote == "`" and char in "[{":
                depth += 1
                deepest = max(deepest, depth)
            elif quote == "`" and char in "]}":
                depth = max(depth - 1, 0)
            continue
        if char in "'\"`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        elif char in "!&":
            run += 1
            deepest = max(deepest, depth + run)
            continue
        elif char in " \t\n\r":
            continue
        run = 0
        deepest = max(deepest, depth)
    return deepest


def tree_deeper(node: Any, limit: int) -> bool:
    """Whether a parsed expression is more than `limit` levels deep (without recursing)."""
    stack = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > limit:
            return True
        for child in current.get("children") or ():
            if isinstance(child, dict):
                stack.append((child, depth + 1))
    return False


def expression_end(text: str, pos: int) -> int:
    """Where the expression starting at `pos` ends: the first `}}` outside quotes ('raw',
    "identifier", `literal`) and braces, or -1. It stops at a `$` outside quotes too (no
    expression holds one), so that a broken template is not scanned to the end of the text
    again for every `${{` in it."""
    depth = 0
    quote = ""
    escaped = False
    end = len(text)
    while pos < end:
        char = text[pos]
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return pos if text.startswith(CLOSE, pos) else -1
            depth -= 1
        elif char == "$":
            return -1
        pos += 1
    return -1


def fanout(node: Any) -> int:
    """How many times over a parsed expression may repeat the values it reads: the product of
    its multi-selects' widths (literals not counted). `@ | [@, @] | [@, @]` makes four copies
    of the context, and forty such pipes 2**40: whatever then serialises, compares or
    schema-checks the result would not finish (without recursing)."""
    product = 1
    stack = [node]
    while stack:
        current = stack.pop()
        children = [c for c in current.get("children") or () if isinstance(c, dict)]
        if current.get("type") in ("multi_select_list", "multi_select_dict"):
            width = sum(1 for child in children if not _literal(child))
            product *= max(width, 1)
            if product > MAX_FANOUT:
                return product
        stack.extend(children)
    return product


def _literal(node: dict[str, Any]) -> bool:
    if node.get("type") == "key_val_pair":
        children = node.get("children") or [{}]
        return bool(children[0].get("type") == "literal")
    return node.get("type") == "literal"
