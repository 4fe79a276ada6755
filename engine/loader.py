"""Safe YAML/JSON loading that remembers where every value came from.

YAML is composed into nodes with PyYAML's SafeLoader (no object construction beyond plain
scalars, lists and mappings), so every value gets a JSON pointer -> line map that validation
errors use. Duplicate mapping keys, which YAML would silently collapse, are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem, SpecError


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


def _index(node: yaml.Node, pointer: str, lines: dict[str, int], problems: list[Problem],
           file: str, line: int | None = None) -> None:
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
                   key_node.start_mark.line + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, pointer_join(pointer, i), lines, problems, file)


def parse_text(text: str, file: str) -> Document:
    """Parse YAML (JSON is a subset) safely; raise SpecError with the line on a syntax error."""
    loader = yaml.SafeLoader(text)
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


def load_file(path: str | Path) -> Document:
    """Read and parse a YAML or JSON file; unreadable files become a SpecError."""
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
    return parse_text(text, str(path))
