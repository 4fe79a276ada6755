"""A request body to normalised events, or a 400 naming the item and the field.

The same normalisation `crownguard respond` applies (the policy's options and webhook
mappings, the installed event sources): an event the pipeline does not recognise is refused
at the door, and a request with one bad item stores none of its items.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import orjson

from ..errors import SpecError
from ..sources import EventSource, payload_items
from ..triage import ModelMovementEvent, Policy, normalise_many
from .problems import ServiceProblem

_ZEROED = bytes.maketrans(b"123456789", b"000000000")  # every digit a 0: runs found by find()
_RUN = b"0" * 19
_BEFORE_NUMBER = frozenset(b":[,- \t\r\n")
MAX_INT_DIGITS = 308  # past this an integer is no float (and 4300 digits, no int)
MAX_DEPTH = 254  # objects and lists in one another: orjson's limit (deeper, the json module
# that encodes them for the journal overflowed the stack: a 500)


def _long_number(body: bytes) -> bool:
    """Whether the body may hold a number of 19 digits or more, which orjson would read as a
    float past 64 bits (the json module keeps it an int). A number starts the body or follows
    one of `:[,-` or a space; a run of digits after anything else (an Incydr id, "..._118...")
    is inside a string. A string holding ": 1234..." counts too: the json module reads it."""
    zeroed = body.translate(_ZEROED)
    at = zeroed.find(_RUN)
    while at != -1:
        if at == 0 or zeroed[at - 1] in _BEFORE_NUMBER:
            return True
        end = at + len(_RUN)
        while end < len(zeroed) and zeroed[end] == 0x30:  # to the end of this run
            end += 1
        at = zeroed.find(_RUN, end)
    return False


class _Huge:
    """An integer too long for a float (triage reads numbers as floats), kept to be named."""

    def __init__(self, digits: int):
        self.digits = digits


def _int(text: str) -> int | _Huge:
    digits = len(text.lstrip("-"))
    return _Huge(digits) if digits > MAX_INT_DIGITS else int(text)


def unfit(data: Any, where: str) -> tuple[str, str] | None:
    """The first string with a lone surrogate (no Unicode text: the journal's UTF-8 cannot
    hold it, and a run holding one could never be shown) or integer too long, and where."""
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            return where, "holds a lone surrogate escape (\\ud800-\\udfff), which is not text"
    elif isinstance(data, _Huge):
        return where, (f"an integer of {data.digits} digits is too large (at most "
                       f"{MAX_INT_DIGITS})")
    elif isinstance(data, dict):
        for key, value in data.items():
            shown = key.encode("utf-8", "backslashreplace").decode()  # the message is text
            inner = f"{where}.{shown}" if where else shown
            found = unfit(key, inner) or unfit(value, inner)
            if found:
                return found
    elif isinstance(data, list):
        for n, value in enumerate(data):
            found = unfit(value, f"{where}[{n}]")
            if found:
                return found
    return None


def _too_deep(data: Any) -> bool:
    """Whether objects and lists nest past MAX_DEPTH (counted without recursion)."""
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        inner = node.values() if isinstance(node, dict) else node
        stack.extend((v, depth + 1) for v in inner if isinstance(v, dict | list))
    return False


def _refuse_deep(body: bytes, data: Any) -> None:
    """A 400 for an item nested past MAX_DEPTH: it parsed, and then encoding it for the
    journal overflowed Python's stack (a 500)."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH or not isinstance(data, dict | list):
        return  # too few brackets to nest that deep: the common case, at no cost
    items = enumerate(data, 1) if isinstance(data, list) else [(0, data)]
    for n, item in items:
        try:
            orjson.dumps(item)  # C speed; its only refusal here is its recursion limit
        except orjson.JSONEncodeError:
            if _too_deep(item):  # a big integer (from the json module) is no refusal
                where = f"item {n}" if n else "body"
                raise ServiceProblem(400, "invalid_event", f"{where}: objects and lists nest "
                                     f"deeper than {MAX_DEPTH} levels; nothing was stored",
                                     where) from None


def parse_json(body: bytes) -> Any:
    data = None
    if not _long_number(body):
        try:
            data = orjson.loads(body)  # a quarter of the intake's time with the json module
        except orjson.JSONDecodeError:
            pass  # the json module decides (NaN, Infinity) and words the error
    if data is None:
        try:
            data = json.loads(body, parse_int=_int)
        except (ValueError, RecursionError) as exc:
            where = f"line {exc.lineno} column {exc.colno}" \
                if isinstance(exc, json.JSONDecodeError) else ""
            raise ServiceProblem(400, "not_json", f"the body is not JSON: {exc}", where
                                 ) from None
        _refuse_deep(body, data)  # first: the walk below recurses
        # orjson refuses both; the json module reads them: refused here, naming the field
        items = enumerate(data, 1) if isinstance(data, list) else [(0, data)]
        for n, item in items:
            found = unfit(item, "")
            if found:
                where = ": ".join(p for p in (f"item {n}" if n else "", found[0]) if p)
                raise ServiceProblem(400, "invalid_event", f"{where or 'body'}: {found[1]}; "
                                     "nothing was stored", where or "body")
    else:
        _refuse_deep(body, data)
    if not isinstance(data, dict | list):
        raise ServiceProblem(400, "not_an_event", "the body must be an event object or a list "
                             "of events", "body")
    return data



def normalise_payload(payload: Any, policy: Policy, sources: Iterable[EventSource]
                      ) -> list[ModelMovementEvent]:
    """Every event of a request, normalised; a 400 ServiceProblem naming the first bad item
    and field (the message names them all) when any item is not an event."""
    sources = tuple(sources)
    events: list[ModelMovementEvent] = []
    problems: list[tuple[str, str]] = []
    items = payload_items(payload, sources)
    if not items:
        raise ServiceProblem(400, "no_events", "the body holds no events", "body")
    for label, item in items:
        try:
            events.extend(normalise_many(item, options=policy.options,
                                         mappings=policy.mappings.values(), sources=sources))
        except SpecError as exc:
            for problem in exc.problems:
                field, _, message = problem.message.partition(": ")
                if not message:
                    field, message = "", field
                field = "" if field == "(event)" else field
                text = problem.message.removeprefix("(event): ")
                problems.append((": ".join(p for p in (label, field) if p),
                                 ": ".join(p for p in (label, text) if p)))
    if problems:
        shown = "; ".join(message for _, message in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ServiceProblem(400, "invalid_event", f"{shown}{more}; nothing was stored",
                             problems[0][0] or "body")
    return events
