"""Markdown or plain text to Atlassian Document Format (ADF), which Jira's v3 API requires for
descriptions and comments.

A small, safe converter, not a Markdown engine: it never passes markup through (ADF has no raw
HTML), only links to http, https and mailto become links, control characters are dropped, and
hostile input (thousands of unmatched `*`, `[` or backticks) stays linear: a delimiter that found
no closer is remembered, and no regular expression can backtrack quadratically. Supported:

- blocks: paragraphs (a single newline is a hard break), `#`..`######` headings, `-`/`*`/`+`
  bullet and `1.`/`1)` numbered lists (nested by indentation), ``` and ~~~ fenced code blocks
  with an optional language, `>` quotes, `---` rules;
- inline: `**bold**`/`__bold__`, `*italic*`/`_italic_` (not inside words, so file_names_stay),
  `***both***`, `` `code` ``, `[text](url)`, bare http(s) URLs, backslash escapes.

Plain text gives paragraphs and hard breaks only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from crownguard.engine import unquote

Node = dict[str, Any]
Mark = dict[str, Any]

SAFE_SCHEMES = ("http://", "https://", "mailto:")
MAX_DEPTH = 8
MAX_URL = 2048
HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})([^`]*)$")
LANGUAGE = re.compile(r"[A-Za-z0-9_+.#-]{1,40}")
RULE = re.compile(r"^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$")
LIST_ITEM = re.compile(r"^([ \t]*)([-*+]|\d{1,9}[.)])[ \t]+(.*)$")
QUOTE = re.compile(r"^ {0,3}> ?(.*)$")
BARE_URL = re.compile(r"https?://[^\s<>\"'`]+")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
ESCAPABLE = set("\\`*_{}[]()#+-.!>~|")


def to_adf(text: str, text_format: str = "markdown") -> Node:
    """An ADF document for `text` in `text_format` ("markdown" or "plain")."""
    text = CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = text.split("\n")
    content = _plain_blocks(lines) if text_format == "plain" else _Blocks(lines).parse(0)
    return {"type": "doc", "version": 1, "content": [_literal(node) for node in content]}


def _literal(node: Node) -> Node:
    """Values a step interpolated reach here quoted (crownguard.engine.unquote): parsing saw
    no markup in them, and now they are their own characters again, as text."""
    if node.get("type") == "text":
        return {**node, "text": unquote(node["text"])}
    if "content" in node:
        return {**node, "content": [_literal(child) for child in node["content"]]}
    return node


def _paragraph(lines: list[str], inline: bool) -> Node | None:
    content: list[Node] = []
    for index, line in enumerate(lines):
        if index:
            content.append({"type": "hardBreak"})
        line = line.strip() if inline else line
        content.extend(parse_inline(line) if inline else _text(line, []))
    content = [n for n in content if n.get("type") != "text" or n["text"]]
    while content and content[-1]["type"] == "hardBreak":
        content.pop()
    return {"type": "paragraph", "content": content} if content else None


def _plain_blocks(lines: list[str]) -> list[Node]:
    blocks: list[Node] = []
    chunk: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            chunk.append(line.rstrip())
            continue
        paragraph = _paragraph(chunk, inline=False)
        if paragraph:
            blocks.append(paragraph)
        chunk = []
    return blocks


# blocks ----------------------------------------------------------------------------------------


@dataclass
class _Item:
    indent: int
    ordered: bool
    number: int
    lines: list[str]
    children: list[_Item] = field(default_factory=list)


class _Blocks:
    """Turns lines into ADF block nodes, one pass, quotes recursing on their inner lines."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        self.at = 0

    def parse(self, depth: int) -> list[Node]:
        blocks: list[Node] = []
        paragraph: list[str] = []

        def flush() -> None:
            node = _paragraph(paragraph, inline=True)
            if node:
                blocks.append(node)
            paragraph.clear()

        while self.at < len(self.lines):
            line = self.lines[self.at]
            if not line.strip():
                flush()
                self.at += 1
            elif fence := FENCE.match(line):
                flush()
                blocks.append(self._code(fence))
            elif heading := HEADING.match(line):
                flush()
                self.at += 1
                inline = parse_inline((heading.group(2) or "").strip())
                node: Node = {"type": "heading", "attrs": {"level": len(heading.group(1))}}
                if inline:
                    node["content"] = inline
                blocks.append(node)
            elif RULE.match(line):
                flush()
                self.at += 1
                blocks.append({"type": "rule"})
            elif LIST_ITEM.match(line):
                flush()
                blocks.extend(self._lists())
            elif QUOTE.match(line) and depth < MAX_DEPTH:
                flush()
                inner: list[str] = []
                while self.at < len(self.lines) and (quoted := QUOTE.match(self.lines[self.at])):
                    inner.append(quoted.group(1))
                    self.at += 1
                content = _quotable(_Blocks(inner).parse(depth + 1))
                if content:
                    blocks.append({"type": "blockquote", "content": content})
            else:
                paragraph.append(line)
                self.at += 1
        flush()
        return blocks

    def _code(self, fence: re.Match[str]) -> Node:
        marker = fence.group(2)
        info = LANGUAGE.match(fence.group(3).strip())
        language = info.group(0) if info else ""
        self.at += 1
        body: list[str] = []
        while self.at < len(self.lines):
            line = self.lines[self.at]
            self.at += 1
            if line.strip().startswith(marker[0] * len(marker)) and \
                    not line.strip().strip(marker[0]):
                break
            body.append(line)
        node: Node = {"type": "codeBlock", "attrs": {"language": language} if language else {}}
        text = "\n".join(body)
        if text:
            node["content"] = [{"type": "text", "text": text}]
        return node

    def _lists(self) -> list[Node]:
        """Consecutive list lines (with continuation lines) as nested bullet/ordered lists."""
        items: list[_Item] = []
        while self.at < len(self.lines):
            line = self.lines[self.at]
            match = LIST_ITEM.match(line)
            if match and not RULE.match(line):
                marker = match.group(2)
                ordered = marker[0].isdigit()
                items.append(_Item(len(match.group(1).expandtabs(4)), ordered,
                                   int(marker[:-1]) if ordered else 1, [match.group(3)]))
                self.at += 1
            elif line.strip() and items and _indent(line) > items[-1].indent:
                items[-1].lines.append(line.strip())  # a continuation of the last item
                self.at += 1
            elif not line.strip():
                # Blank lines between items keep the list going; skip them all at once so a
                # long run of them is read once.
                ahead = self.at
                while ahead < len(self.lines) and not self.lines[ahead].strip():
                    ahead += 1
                if ahead < len(self.lines) and LIST_ITEM.match(self.lines[ahead]):
                    self.at = ahead
                else:
                    break
            else:
                break
        return _build_lists(_nest(items))


def _quotable(blocks: list[Node]) -> list[Node]:
    """ADF quotes hold paragraphs, lists and code only: headings become paragraphs, rules go,
    nested quotes are flattened."""
    out: list[Node] = []
    for block in blocks:
        if block["type"] == "heading":
            out.append({"type": "paragraph", "content": block.get("content", [])})
        elif block["type"] == "blockquote":
            out.extend(block["content"])
        elif block["type"] != "rule":
            out.append(block)
    return out


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip(" "))


def _nest(items: list[_Item]) -> list[_Item]:
    """Items indented deeper than the one before become its children (depth is bounded)."""
    roots: list[_Item] = []
    stack: list[_Item] = []
    for item in items:
        while stack and item.indent <= stack[-1].indent:
            stack.pop()
        if stack and len(stack) < MAX_DEPTH:
            stack[-1].children.append(item)
        else:
            roots.append(item)
        stack.append(item)
    return roots


def _build_lists(items: list[_Item]) -> list[Node]:
    """Runs of items of the same kind become one bulletList or orderedList."""
    lists: list[Node] = []
    for item in items:
        kind = "orderedList" if item.ordered else "bulletList"
        if not lists or lists[-1]["type"] != kind:
            node: Node = {"type": kind, "content": []}
            if item.ordered:
                node["attrs"] = {"order": item.number}
            lists.append(node)
        content: list[Node] = []
        paragraph = _paragraph(item.lines, inline=True)
        content.append(paragraph or {"type": "paragraph", "content": []})
        content.extend(_build_lists(item.children))
        lists[-1]["content"].append({"type": "listItem", "content": content})
    return lists


# inline ----------------------------------------------------------------------------------------


def _text(text: str, marks: list[Mark]) -> list[Node]:
    if not text:
        return []
    node: Node = {"type": "text", "text": text}
    if marks:
        node["marks"] = [dict(m) for m in marks]
    return [node]


def _merge(nodes: list[Node]) -> list[Node]:
    merged: list[Node] = []
    for node in nodes:
        previous = merged[-1] if merged else None
        if previous and previous["type"] == node["type"] == "text" \
                and previous.get("marks") == node.get("marks"):
            previous["text"] += node["text"]
        else:
            merged.append(node)
    return merged


def _safe_url(url: str) -> str | None:
    url = url.strip()
    return url if url.lower().startswith(SAFE_SCHEMES) and not any(c.isspace() for c in url) \
        else None


def _with(marks: list[Mark], mark: Mark) -> list[Mark]:
    # ADF allows `code` only together with `link`.
    if mark["type"] == "code":
        return [m for m in marks if m["type"] == "link"] + [mark]
    # A mark already in force (`*_a_*` is em inside em) is not applied twice: ADF forbids it.
    if any(m["type"] == "code" for m in marks) or any(m["type"] == mark["type"] for m in marks):
        return marks
    return [*marks, mark]


def parse_inline(text: str, marks: list[Mark] | None = None, depth: int = 0) -> list[Node]:
    """Text nodes with strong/em/code/link marks for one line (or run) of Markdown."""
    return _Inline(text, depth).parse(marks or [])


class _Inline:
    """One scan of one run of text. A delimiter that found no closer from position p finds none
    from any later position either: remembering that keeps hostile input (thousands of
    unmatched `*`, `[` or backticks) linear instead of quadratic."""

    def __init__(self, text: str, depth: int):
        self.text = text
        self.depth = depth
        self.unclosed: dict[str, int] = {}  # delimiter -> earliest start that found no closer
        self.brackets = _matching_brackets(text)

    def _failed(self, key: str, start: int) -> bool:
        return key in self.unclosed and start >= self.unclosed[key]

    def _fail(self, key: str, start: int) -> None:
        self.unclosed[key] = min(start, self.unclosed.get(key, start))

    def parse(self, marks: list[Mark]) -> list[Node]:
        text = self.text
        out: list[Node] = []
        plain: list[str] = []
        i = 0

        def emit(nodes: list[Node]) -> None:
            out.extend(_text("".join(plain), marks))
            plain.clear()
            out.extend(nodes)

        while i < len(text):
            char = text[i]
            if char == "\\" and i + 1 < len(text) and text[i + 1] in ESCAPABLE:
                plain.append(text[i + 1])
                i += 2
                continue
            if char == "`":
                run = _run_length(text, i)
                key = "`" * run
                close = -1 if self._failed(key, i) else text.find(key, i + run)
                if close != -1:
                    emit(_text(text[i + run:close], _with(marks, {"type": "code"})))
                    i = close + run
                    continue
                self._fail(key, i)
                plain.append(key)
                i += run
                continue
            if char == "[" and self.depth < MAX_DEPTH:
                link = self._link_at(i)
                if link is not None:
                    label, url, end = link
                    safe = _safe_url(url)
                    inner = _with(marks, {"type": "link", "attrs": {"href": safe}}) if safe \
                        else marks
                    emit(_Inline(label, self.depth + 1).parse(inner))
                    i = end
                    continue
            if char in "*_" and self.depth < MAX_DEPTH:
                emphasis = self._emphasis_at(i)
                if emphasis is not None:
                    inner_text, kinds, end = emphasis
                    inner_marks = marks
                    for kind in kinds:
                        inner_marks = _with(inner_marks, {"type": kind})
                    emit(_Inline(inner_text, self.depth + 1).parse(inner_marks))
                    i = end
                    continue
            if char == "h" and not any(m["type"] == "link" for m in marks):
                bare = BARE_URL.match(text, i)
                if bare and (i == 0 or not text[i - 1].isalnum()):
                    href = bare.group(0).rstrip(".,;:!?)")
                    emit(_text(href, _with(marks, {"type": "link", "attrs": {"href": href}})))
                    i += len(href)
                    continue
            plain.append(char)
            i += 1
        emit([])
        return _merge(out)

    def _link_at(self, start: int) -> tuple[str, str, int] | None:
        """`[label](url)` starting at `start`: (label, url, end)."""
        close = self.brackets.get(start)
        text = self.text
        if close is None or close + 1 >= len(text) or text[close + 1] != "(":
            return None
        end = text.find(")", close + 2, close + 2 + MAX_URL)
        if end == -1:
            return None
        return text[start + 1:close], text[close + 2:end], end + 1

    def _emphasis_at(self, start: int) -> tuple[str, tuple[str, ...], int] | None:
        """`***x***`, `**x**`, `__x__`, `*x*` or `_x_` at `start`: (inner, marks, end)."""
        text = self.text
        char = text[start]
        run = _run_length(text, start, limit=3)
        for size in range(run, 0, -1):
            found = self._closing(start, char, size)
            if found is not None:
                kinds = {1: ("em",), 2: ("strong",), 3: ("strong", "em")}[size]
                return found[0], kinds, found[1]
        return None

    def _closing(self, start: int, char: str, size: int) -> tuple[str, int] | None:
        """The text up to the delimiter run of `size` that closes the one at `start`."""
        text = self.text
        delimiter = char * size
        after = start + size
        if after >= len(text) or text[after].isspace():
            return None
        if char == "_" and start > 0 and text[start - 1].isalnum():
            return None  # intra-word underscores (snake_case, file_names) are text
        if self._failed(delimiter, start):
            return None
        search = after + (1 if text[after] == char else 0)
        while True:
            close = text.find(delimiter, search)
            if close == -1:
                self._fail(delimiter, start)
                return None
            end = close + size
            if end < len(text) and text[end] == char:
                search = end + _run_length(text, end)
                continue  # a longer run does not close a shorter one
            if text[close - 1].isspace():
                search = end
                continue
            if char == "_" and end < len(text) and text[end].isalnum():
                search = end
                continue
            return text[after:close], end


def _run_length(text: str, start: int, limit: int | None = None) -> int:
    """How many times text[start] repeats from `start`, counting up to `limit` (without
    slicing: slices would make long inputs quadratic)."""
    end = start
    stop = len(text) if limit is None else min(len(text), start + limit)
    while end < stop and text[end] == text[start]:
        end += 1
    return end - start


def _matching_brackets(text: str) -> dict[int, int]:
    """Index of each `[` -> index of its matching `]` (escaped brackets ignored), in one pass."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "[":
            stack.append(i)
        elif text[i] == "]" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs
