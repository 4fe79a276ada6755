"""A deliberately tiny template language for nudge texts.

Playbook authors may override the nudge texts, so rendering must never run code: a template
is literal text plus three tags and nothing else,

    {{ name }}                 the value of `name`, escaped for the output format
    {{#name}} ... {{/name}}    the part in between, only when `name` is not empty
    {{^name}} ... {{/name}}    the part in between, only when `name` is empty

Names are plain identifiers looked up in a flat mapping of strings: no attribute access, no
indexing, no filters, no calls. Anything else between `{{` and `}}` is an error that names the
template and line, so a typo never silently renders as nothing.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from crownguard.engine import InputError

Escape = Callable[[str], str]

_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_INNER = re.compile(r"([#^/]?)\s*([A-Za-z_][A-Za-z0-9_]*)")
# A section tag alone on its line takes the line with it (as in Mustache), so optional
# paragraphs leave no blank lines behind.
_STANDALONE = re.compile(
    r"(?m)^[ \t]*(\{\{\s*[#^/]\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\})[ \t]*(?:\r?\n|\Z)")


class TemplateError(InputError):
    """A nudge template is malformed or names a value that does not exist."""


def plain(value: str) -> str:
    """No escaping: plain-text output (an e-mail text part)."""
    return value


def escape_html(value: str) -> str:
    """Escaping for HTML text and attribute values."""
    return html.escape(value, quote=True)


def escape_mrkdwn(value: str) -> str:
    """Slack's escaping: `&`, `<` and `>` only, so a value cannot mention @channel or plant a
    link (https://docs.slack.dev/messaging/formatting-message-text#escaping)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Value:
    name: str


@dataclass(frozen=True)
class _Section:
    name: str
    inverted: bool
    children: tuple[_Node, ...]


_Node = _Text | _Value | _Section


class Template:
    """A compiled template; `render(values, escape)` fills it in."""

    def __init__(self, source: str, name: str = "<template>"):
        self.name = name
        self._nodes = _parse(source, name)
        self.names: frozenset[str] = frozenset(_names(self._nodes))

    def render(self, values: Mapping[str, str], escape: Escape = plain) -> str:
        unknown = sorted(self.names - set(values))
        if unknown:
            known = ", ".join(sorted(values))
            raise TemplateError(f"template {self.name} uses unknown value(s) "
                                f"{', '.join(unknown)} (known: {known})")
        return "".join(_render(self._nodes, values, escape))


def _parse(source: str, name: str) -> tuple[_Node, ...]:
    source = _STANDALONE.sub(r"\1", source)
    root: list[_Node] = []
    # Each open section: (name, inverted, the list its children go into, the parent list, line)
    stack: list[tuple[str, bool, list[_Node], list[_Node], int]] = []
    current = root
    position = 0
    for match in _TAG.finditer(source):
        line = source.count("\n", 0, match.start()) + 1
        if match.start() > position:
            current.append(_Text(source[position:match.start()]))
        position = match.end()
        inner = match.group(1).strip()
        tag = _INNER.fullmatch(inner)
        if tag is None:
            raise TemplateError(f"template {name}, line {line}: '{{{{{inner}}}}}' is not a "
                                "placeholder (use {{ name }}, {{#name}}, {{^name}} or {{/name}})")
        sigil, key = tag.group(1), tag.group(2)
        if sigil in ("#", "^"):
            children: list[_Node] = []
            stack.append((key, sigil == "^", children, current, line))
            current = children
        elif sigil == "/":
            if not stack or stack[-1][0] != key:
                expected = f"{{{{/{stack[-1][0]}}}}}" if stack else "no closing tag"
                raise TemplateError(f"template {name}, line {line}: {{{{/{key}}}}} closes nothing "
                                    f"open here (expected {expected})")
            key, inverted, children, parent, _ = stack.pop()
            parent.append(_Section(key, inverted, tuple(children)))
            current = parent
        else:
            current.append(_Value(key))
    tail = source[position:]
    if "{{" in tail:
        line = source.count("\n", 0, position + tail.index("{{")) + 1
        raise TemplateError(f"template {name}, line {line}: '{{{{' is never closed")
    if tail:
        current.append(_Text(tail))
    if stack:
        key, _, _, _, line = stack[-1]
        raise TemplateError(f"template {name}, line {line}: {{{{#{key}}}}} is never closed")
    return tuple(root)


def _names(nodes: tuple[_Node, ...]) -> set[str]:
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, _Value):
            found.add(node.name)
        elif isinstance(node, _Section):
            found.add(node.name)
            found |= _names(node.children)
    return found


def _render(nodes: tuple[_Node, ...], values: Mapping[str, str], escape: Escape) -> list[str]:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Value):
            out.append(escape(values[node.name]))
        elif bool(values[node.name].strip()) != node.inverted:
            out.extend(_render(node.children, values, escape))
    return out
