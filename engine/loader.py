"""Safe YAML/JSON loading that remembers where every value came from.

YAML is composed into nodes with PyYAML's SafeLoader (no object construction beyond plain
scalars, lists and mappings), so every value gets a JSON pointer -> line map that validation
errors use. Duplicate mapping keys, which YAML would silently collapse, are reported.

A `.json` file is read as JSON, and its errors are JSON's, with line and column (PyYAML
would read `1e9` as text, split an escaped emoji into two lone surrogates, refuse tab
indentation and accept a trailing comma); the line map comes from the YAML composer where it
can read the file. Lists and mappings nest at most MAX_DEPTH deep: deeper input is an input
error, not a RecursionError somewhere later.

Every value is one JSON has: text, a number, true/false, null, a list or a mapping with text
keys (a YAML key `1:` is the key "1"). So YAML's other types are refused where they stand,
with the line: `!!binary`, `!!set`, `!!omap`, `!!pairs`, local tags, NaN and infinities, lone
UTF-16 surrogates, lists or mappings as keys, and explicit tags whose text is not of the tag
(`!!int abc`); YAML timestamps stay text. Plain scalars follow YAML 1.2's core schema
(`NO`, `yes`, `on` are text, `017` is 17): see `_BOOLEANS` below. Recursive aliases, control
characters and files past their size budget are refused the same way: bad input is a
`file:line: message`, never a crash.

Budgets (docs/playbooks.md, "Limits"): MAX_DOCUMENT_BYTES for a file read as YAML (every
playbook, connections file, policy, scenario or event file not named `.json`), MAX_DATA_BYTES
for a `.json` file (which has line numbers up to MAX_DOCUMENT_BYTES), MAX_DEPTH levels of
nesting and MAX_VALUES values repeated through aliases.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem, SpecError

MAX_DEPTH = 100
MAX_DOCUMENT_BYTES = 1 << 20  # 1 MiB: the pure-Python YAML composer reads ~100 KB/s
MAX_DATA_BYTES = 64 << 20  # 64 MiB: an Incydr search answer of 10,000 events is ~40 MB
MAX_NUMBER_DIGITS = 4300  # Python's own limit on converting text to an int
_BOM = "\ufeff"
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


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


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit >> 10} KiB"


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


def _kind(node: yaml.Node) -> str:
    return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"


def _index(node: yaml.Node, pointer: str, lines: dict[str, int], problems: list[Problem],
           file: str, line: int | None = None, budget: _Budget | None = None,
           depth: int = 1) -> None:
    budget = budget or _Budget(file)
    budget.spend(node)
    # A mapping value is located at its key's line: that is where a reader looks.
    lines[pointer] = line or node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        return
    if depth > MAX_DEPTH:  # aliases nest what each nests: the composer saw only one level
        raise _too_deep(file, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError([Problem(file, key_node.start_mark.line + 1,
                                         f"invalid YAML: a mapping key is {_kind(key_node)}; "
                                         "keys are plain text", pointer)])
            key = key_node.value
            if key in seen:
                problems.append(Problem(file, key_node.start_mark.line + 1,
                                        f"duplicate key '{key}' (first at line {seen[key]})",
                                        pointer_join(pointer, key)))
            seen[key] = key_node.start_mark.line + 1
            _index(value_node, pointer_join(pointer, key), lines, problems, file,
                   key_node.start_mark.line + 1, budget, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, pointer_join(pointer, i), lines, problems, file, None, budget,
                   depth + 1)


def _too_deep(file: str, line: int | None) -> SpecError:
    return SpecError([Problem(file, line, f"lists and objects nest more than {MAX_DEPTH} "
                                          "levels deep")])


_REFUSED_TAGS = {
    "tag:yaml.org,2002:binary": "!!binary",
    "tag:yaml.org,2002:set": "!!set",
    "tag:yaml.org,2002:omap": "!!omap",
    "tag:yaml.org,2002:pairs": "!!pairs",
}


def _refuse(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None, None, f"the tag {_REFUSED_TAGS[node.tag]} makes a value JSON has no type for "
                    "(use text, numbers, true/false, null, lists and mappings)", node.start_mark)


def _as_text(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    """A YAML timestamp stays the text it is: JSON has no date type, and events parse their
    own times (with a time zone, which YAML would drop)."""
    return loader.construct_scalar(node)  # type: ignore[arg-type]


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses to nest deeper than MAX_DEPTH (its composer recurses), refuses
    recursive aliases, and constructs only JSON's values (see the module docstring)."""

    def __init__(self, text: str, file: str):
        self.file = file
        self.depth = 0
        self.open_anchors: list[str] = []
        super().__init__(text)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            alias = self.peek_event()
            if alias.anchor in self.open_anchors:
                raise SpecError([Problem(self.file, alias.start_mark.line + 1,
                                         f"invalid YAML: recursive alias *{alias.anchor}: the "
                                         f"value of &{alias.anchor} contains itself")])
            return super().compose_node(parent, index)
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        event = self.peek_event()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _too_deep(self.file, event.start_mark.line + 1)
        anchor = event.anchor
        if anchor is not None:
            self.open_anchors.append(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
            if anchor is not None:
                self.open_anchors.pop()

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            value = super().construct_object(node, deep)
        except (ValueError, KeyError, TypeError, OverflowError):
            # `!!int abc`, `!!bool maybe`, `!!float x`: the tag's own converter failed.
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise yaml.constructor.ConstructorError(
                None, None, f"{str(node.value)[:40]!r} is not a valid {tag} value",
                node.start_mark) from None
        if value.__class__ is float and not math.isfinite(value):
            raise yaml.constructor.ConstructorError(
                None, None, f"{str(node.value)[:40]!r} is not a JSON number (NaN and "
                            "infinities have no JSON form)", node.start_mark)
        if value.__class__ is str and not value.isascii() and has_surrogate(value):
            raise yaml.constructor.ConstructorError(
                None, None, "a \\u escape gives half of a UTF-16 surrogate pair, which is not "
                            "a character (write the character itself, or \\U and 8 hex digits)",
                node.start_mark)
        return value

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, f"a mapping key is {_kind(key_node)}; keys are plain text",
                    key_node.start_mark)
            key = self.construct_object(key_node, deep=deep)
            # JSON's keys are text: YAML's `1:`, `true:` or `null:` are the keys "1", ...
            mapping[key if key.__class__ is str else str(key_node.value)] = \
                self.construct_object(value_node, deep=deep)
        return mapping


# YAML 1.2's core schema, not PyYAML's 1.1: `country: NO`, `on`, `y` stay text, `017` is the
# number 17 (not 15), `0o17` is 15, and `1_000`, `1:20` (sexagesimal) and `0b1` stay text.
_BOOLEANS = {"true": True, "True": True, "TRUE": True,
             "false": False, "False": False, "FALSE": False}
_INTEGER = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")


def _core_bool(loader: yaml.SafeLoader, node: yaml.Node) -> bool:
    return _BOOLEANS[loader.construct_scalar(node)]  # type: ignore[arg-type]


def _core_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = loader.construct_scalar(node)  # type: ignore[arg-type]
    if not _INTEGER.fullmatch(text):
        raise ValueError(text)
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


def _core_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = loader.construct_scalar(node)  # type: ignore[arg-type]
    if _INTEGER.fullmatch(text) and not text.startswith(("0o", "0x")):
        return float(text)
    if not _FLOAT.fullmatch(text):
        raise ValueError(text)
    return float(text.replace(".", "", 1)) if "inf" in text.lower() or "nan" in text.lower() \
        else float(text)


_CORE_TAGS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _CORE_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool",
                              re.compile("|".join(_BOOLEANS).join(("^(?:", ")$"))), list("tTfF"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(f"^(?:{_INTEGER.pattern})$"),
                              list("-+0123456789"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(f"^(?:{_FLOAT.pattern})$"),
                              list("-+.0123456789"))
for _tag in _REFUSED_TAGS:
    _Loader.add_constructor(_tag, _refuse)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _as_text)
_Loader.add_constructor("tag:yaml.org,2002:bool", _core_bool)
_Loader.add_constructor("tag:yaml.org,2002:int", _core_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _core_float)


def has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _control_character(exc: yaml.reader.ReaderError, text: str, file: str) -> SpecError:
    position = exc.position
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    char = exc.character if isinstance(exc.character, str) else chr(exc.character)
    return SpecError([Problem(file, line, f"invalid YAML: control character U+{ord(char):04X} "
                                          f"at column {column} (only tab, newline and "
                                          "printable characters may appear)")])


def parse_text(text: str, file: str) -> Document:
    """Parse YAML (JSON is a subset) safely; raise SpecError with the line on a syntax error."""
    try:
        loader = _Loader(text, file)
    except yaml.reader.ReaderError as exc:
        raise _control_character(exc, text, file) from None
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
    except RecursionError:  # a backstop: the composer and _index bound the nesting
        raise _too_deep(file, None) from None
    finally:
        loader.dispose()
    return Document(file, data, lines, text)


class _NotJSON(ValueError):
    """NaN and Infinity: Python's json reads them, JSON has no such values."""


def _no_constant(name: str) -> Any:
    raise _NotJSON(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJSON(f"{text[:40]} is too large for a JSON number")
    return value


def _integer(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS:
        raise _NotJSON(f"a number of more than {MAX_NUMBER_DIGITS:,} digits")
    return int(text)


def loads_json(text: str, **hooks: Any) -> Any:
    """`json.loads` that reads only JSON: no NaN or Infinity, no number past a float's range
    or of more than MAX_NUMBER_DIGITS digits (raises ValueError, with JSONDecodeError's line
    and column where json has them)."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite,
                      parse_int=_integer, **hooks)


def nests_deeper(data: Any, limit: int) -> bool:
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


def holds_surrogate(data: Any) -> bool:
    """Whether any text (key or value) holds a lone surrogate (without recursing)."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if has_surrogate(value):
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
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
        data = loads_json(body, object_pairs_hook=unique)
    except json.JSONDecodeError as exc:
        raise SpecError([Problem(file, exc.lineno, f"invalid JSON: {exc.msg} "
                                                   f"(column {exc.colno})")]) from None
    except RecursionError:
        raise _too_deep(file, None) from None
    except ValueError as exc:
        raise SpecError([Problem(file, None, f"invalid JSON: {exc}")]) from None
    if nests_deeper(data, MAX_DEPTH):
        raise _too_deep(file, None)
    if _ESCAPED_SURROGATE.search(body) and holds_surrogate(data):
        raise SpecError([Problem(file, None, "invalid JSON: a \\u escape gives half of a "
                                             "UTF-16 surrogate pair, which is not a character")])
    if locate and len(text) > MAX_DOCUMENT_BYTES:
        locate = False  # valid JSON: only the line numbers are past the composer's budget
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


def _read(path: str | Path, limit: int) -> str:
    """The file's text, refusing one past `limit` bytes before reading it all (a device or a
    pipe is read up to the limit, never to its end)."""
    where = str(path)
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            raw = stream.read(limit + 1) if size <= limit else b""
            if size > limit or len(raw) > limit:
                shown = f"{size:,} bytes" if size > limit else f"more than {limit:,} bytes"
                raise SpecError([Problem(where, None, f"the file is too large: {shown}, past "
                                                      f"the {_size(limit)} limit of this kind "
                                                      "of file")])
    except FileNotFoundError:
        raise SpecError([Problem(where, None, "no such file")]) from None
    except IsADirectoryError:
        raise SpecError([Problem(where, None, "is a directory, not a file")]) from None
    except OSError as exc:
        raise SpecError([Problem(where, None, f"cannot read: {exc.strerror or exc}")]) from None
    except ValueError:  # a NUL in the path
        raise SpecError([Problem(where.replace("\0", "\\0"), None,
                                 "cannot read: the path holds a NUL character")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([Problem(where, None, f"is not UTF-8 text (byte {exc.start + 1} "
                                              "cannot be read)")]) from None
    # As Path.read_text does: universal newlines.
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def load_file(path: str | Path, *, locate: bool = True) -> Document:
    """Read and parse a YAML or JSON file; unreadable files become a SpecError. Without
    `locate`, a JSON file's Document has no line numbers (and is read much faster). A JSON
    file may be up to MAX_DATA_BYTES (with lines up to MAX_DOCUMENT_BYTES), any other file up
    to MAX_DOCUMENT_BYTES."""
    is_json = Path(path).suffix.lower() == ".json"
    text = _read(path, MAX_DATA_BYTES if is_json else MAX_DOCUMENT_BYTES)
    if is_json:
        return parse_json_text(text, str(path), locate=locate)
    return parse_text(text, str(path))
