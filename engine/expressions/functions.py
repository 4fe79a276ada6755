"""The functions crownguard adds to JMESPath (listed in the package docstring): pure, and
bounded in what they make (see limits)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from jmespath import exceptions as jp_exceptions
from jmespath import functions as jp_functions

from ..loader import MAX_DEPTH, holds_surrogate, loads_json, nests_deeper
from .limits import MAX_RESULT_CHARS, capped

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]*)\}")


class Functions(jp_functions.Functions):
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
        # Each `old` grows by len(new) - len(old) (every gap, for an empty `old`): check first.
        count = s.count(old) if old else len(s) + 1
        if len(s) + count * (len(new) - len(old)) > MAX_RESULT_CHARS:
            capped(" " * (MAX_RESULT_CHARS + 1), "replace")
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
        return hashlib.sha256(s.encode("utf-8", "surrogatepass")).hexdigest()

    @jp_functions.signature({"types": ["string"]})
    def _func_from_json(self, s: str) -> Any:
        """JSON only, as the loader reads files: event data is anyone's text."""
        try:
            value = loads_json(s)
        except json.JSONDecodeError as exc:
            raise jp_exceptions.JMESPathError(f"from_json: not JSON ({exc.msg})") from None
        except RecursionError:
            value = None
            deep = True
        except ValueError as exc:  # NaN, Infinity, 1e999, a 5,000-digit number
            raise jp_exceptions.JMESPathError(f"from_json: not JSON ({exc})") from None
        else:
            deep = nests_deeper(value, MAX_DEPTH)
        if deep:
            raise jp_exceptions.JMESPathError(f"from_json: lists and objects nest more than "
                                              f"{MAX_DEPTH} levels deep")
        if not s.isascii() or "\\u" in s:
            if holds_surrogate(value):
                raise jp_exceptions.JMESPathError("from_json: a \\u escape gives half of a "
                                                  "UTF-16 surrogate pair, not a character")
        return value

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

        return capped(_PLACEHOLDER.sub(fill, template), "format")





def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
