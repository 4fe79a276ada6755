"""`-` for a file path: the commands that read a playbook or an event read standard input."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import Problem, SpecError
from ..loader import (
    MAX_DATA_BYTES,
    MAX_DOCUMENT_BYTES,
    Document,
    load_file,
    parse_json_text,
    parse_text,
)

STDIN = "-"
STDIN_NAME = "<stdin>"


def input_name(path: str | Path) -> str:
    """How messages name an input: the path, or `<stdin>` for `-`."""
    return STDIN_NAME if str(path) == STDIN else str(path)


def load_input(path: str | Path, *, locate: bool = True) -> Document:
    """`load_file`, with `-` read from standard input (JSON when it starts as JSON does, which
    may then be as large as a `.json` file; YAML otherwise)."""
    if str(path) != STDIN:
        return load_file(path, locate=locate)
    stream = getattr(sys.stdin, "buffer", None)
    raw = stream.read(MAX_DATA_BYTES + 1) if stream is not None \
        else sys.stdin.read(MAX_DATA_BYTES + 1).encode()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([Problem(STDIN_NAME, None, f"is not UTF-8 text (byte {exc.start + 1} "
                                                   "cannot be read)")]) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
    is_json = text.lstrip("\ufeff \t\n").startswith(("{", "["))
    limit = MAX_DATA_BYTES if is_json else MAX_DOCUMENT_BYTES
    if len(raw) > limit:
        raise SpecError([Problem(STDIN_NAME, None, f"the input is too large: more than "
                                                   f"{limit:,} bytes, past the {limit >> 20} "
                                                   "MiB limit of this kind of input")])
    if is_json:
        return parse_json_text(text, STDIN_NAME, locate=locate)
    return parse_text(text, STDIN_NAME)
