"""Safe YAML/JSON loading that remembers where every value came from.

YAML is composed into nodes with PyYAML's SafeLoader (no object construction beyond plain
scalars, lists and mappings), so every value gets a JSON pointer -> line map that validation
errors use. Duplicate mapping keys, which YAML would silently collapse, are reported.

A `.json` file is read as JSON, and its errors are JSON's, with line and column (PyYAML
would read `1e9` as text, split an escaped emoji into two lone surrogates, refuse tab
indentation and accept a trailing comma); the line map comes from the YAML composer where it
can read the file. Lists and mappings nest at most MAX_DEPTH deep: deeper input is an input
error, not a RecursionError somewhere later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem, SpecError

MAX_DEPTH = 100
_BOM = "\ufeff"


@dataclass
class Document:
    """A parsed file: its data and the line of each JSON pointer in it."""

    file: str
    data: Any
    lines: dict[str, int] = field(default_factory=dict)
    text: str = ""

    def line_of(self, pointer: str) -> int | None:
        """The line of `pointer`, or of its nearest ancestor that has one."""
        while True:
            if pointer in self.lines:
                return self.lines[pointer]
            if not pointer:
                return None
            pointer = pointer.rsplit("/", 1)[0]

    def problem(self, pointer: str, message: str, group: str = "syntax") -> Problem:
        return Problem(self.file, self.line_of(pointer), message, pointer, group)


def escape_pointer_token(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer_join(base: str, *tokens: str | int) -> str:
    return base + "".join("/" + escape_pointer_token(t) for t in tokens)


MAX_VALUES = 200_000  # values repeated through aliases


class _Budget:
    """How many values a document may expand to: YAML aliases share one node many times
    over, and a few lines of nested aliases ("billion laughs") expand to billions."""

    def __init__(self, file: str):
        self.file = file
        self.left = MAX_VALUES
        self.seen: set[int] = set()

    def spend(self, node: yaml.Node) -> None:
        """Count a node met again through an alias (a file without aliases spends nothing)."""
        if id(node) not in self.seen:
            self.seen.add(id(node))
            return
        self.left -= 1
        if self.left < 0:
            raise SpecError([Problem(self.file, node.start_mark.line + 1,
                                     f"the document expands to more than {MAX_VALUES:,} "
                                     "values (YAML aliases repeated within aliases?)")])


def _index(node: yaml.Node, pointer: str, lines: dict[str, int], problems: list[Problem],
           file: str, line: int | None = None, budget: _Budget | None = None) -> None:
    budget = budget or _Budget(file)
    budget.spend(node)
    # A mapping value is located at its key's line: that is where a reader looks.
    lines[pointer] = line or node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                problems.append(Problem(file, key_node.start_mark.line + 1,
                                        f"duplicate key '{key}' (first at line {seen[key]})",
                                        pointer_join(pointer, key)))
            seen[key] = key_node.start_mark.line + 1
            _index(value_node, pointer_join(pointer, key), lines, problems, file,
                   key_node.start_mark.line + 1, budget)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, pointer_join(pointer, i), lines, problems, file, None, budget)


def _too_deep(file: str, line: int | None) -> SpecError:
    return SpecError([Problem(file, line, f"lists and objects nest more than {MAX_DEPTH} "
                                          "levels deep")])


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses to nest deeper than MAX_DEPTH (its composer recurses)."""

    def __init__(self, text: str, file: str):
        super().__init__(text)
        self.file = file
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _too_deep(self.file, self.peek_event().start_mark.line + 1)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def parse_text(text: str, file: str) -> Document:
    """Parse YAML (JSON is a subset) safely; raise SpecError with the line on a syntax error."""
    loader = _Loader(text, file)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError([Problem(file, 1, "the file is empty")])
        problems: list[Problem] = []
        lines: dict[str, int] = {}
        _index(node, "", lines, problems, file)
        if problems:
            raise SpecError(problems)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = exc.problem or exc.context or "invalid YAML"
        raise SpecError([Problem(file, line, f"invalid YAML: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(file, None, f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    return Document(file, data, lines, text)


class _NotJSON(ValueError):
    """NaN and Infinity: Python's json reads them, JSON has no such values."""


def _no_constant(name: str) -> Any:
    raise _NotJSON(f"{name} is not a JSON value")


def _nests_deeper(data: Any, limit: int) -> bool:
    """Whether lists and objects nest more than `limit` deep (without recursing)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else \
            value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_json_text(text: str, file: str, *, locate: bool = True) -> Document:
    """Parse a `.json` file as JSON, with lines where the YAML composer can read it (unless
    not `locate`: composing is a hundred times slower than JSON, and event files are big)."""
    body = text.removeprefix(_BOM)
    if not body.strip():
        raise SpecError([Problem(file, 1, "the file is empty")])
    duplicates: list[str] = []

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        data = dict(pairs)
        if len(data) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    duplicates.append(key)
                seen.add(key)
        return data

    try:
        data = json.loads(body, object_pairs_hook=unique, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise SpecError([Problem(file, exc.lineno, f"invalid JSON: {exc.msg} "
                                                   f"(column {exc.colno})")]) from None
    except _NotJSON as exc:
        raise SpecError([Problem(file, None, f"invalid JSON: {exc}")]) from None
    except RecursionError:
        raise _too_deep(file, None) from None
    if _nests_deeper(data, MAX_DEPTH):
        raise _too_deep(file, None)
    try:
        located = parse_text(text, file) if locate or duplicates else None
    except SpecError as exc:
        # Duplicate keys come with their lines from YAML; any other YAML complaint about
        # valid JSON (tab indentation) only costs the line numbers.
        if duplicates and any(p.message.startswith("duplicate key") for p in exc.problems):
            raise
        located = None
    if duplicates:
        raise SpecError([Problem(file, None, f"duplicate key '{key}'") for key in duplicates])
    return Document(file, data, located.lines if located else {}, text)


def load_file(path: str | Path, *, locate: bool = True) -> Document:
    """Read and parse a YAML or JSON file; unreadable files become a SpecError. Without
    `locate`, a JSON file's Document has no line numbers (and is read much faster)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem(str(path), None, "no such file")]) from None
    except IsADirectoryError:
        raise SpecError([Problem(str(path), None, "is a directory, not a file")]) from None
    except UnicodeDecodeError:
        raise SpecError([Problem(str(path), None, "is not UTF-8 text")]) from None
    except OSError as exc:
        raise SpecError([Problem(str(path), None, f"cannot read: {exc.strerror}")]) from None
    if p.suffix.lower() == ".json":
        return parse_json_text(text, str(path), locate=locate)
    return parse_text(text, str(path))
