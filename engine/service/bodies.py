"""Request bodies of the service: read raw (a signature is over their bytes) and refused past
the size limit whatever Content-Length says, on every route; the events route's path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message, Receive

from .problems import ServiceProblem

EVENTS_PREFIX = "/v1/events/"
INLINE_BODY_BYTES = 64 * 1024  # normalised on the event loop up to this size (~40 us/event)


class Gone(Exception):
    """The client disconnected while sending its body."""


def is_events_path(path: str) -> bool:
    return (path.startswith(EVENTS_PREFIX) and len(path) > len(EVENTS_PREFIX)
            and "/" not in path[len(EVENTS_PREFIX):])


def too_large(limit: int) -> ServiceProblem:
    return ServiceProblem(413, "too_large", f"the body is larger than {limit} bytes "
                          "(service.max_body_bytes): send fewer events a request", "body")


def declared_too_large(declared: str | None, limit: int) -> bool:
    return declared is not None and declared.isdigit() and int(declared) > limit


def limited(receive: Receive, declared: str | None, limit: int) -> Receive:
    """`receive` of an ASGI request whose body may be at most `limit` bytes: past it (or a
    Content-Length past it), an HTTPException 413 (the framework's body parsing re-raises
    those; anything else it turns into a 400)."""
    size = 0

    async def receive_limited() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit or declared_too_large(declared, limit):
                raise HTTPException(413, too_large(limit).message)
        return message

    return receive_limited


async def read_body(declared: str | None, chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The raw body, refused (413) past `limit` bytes whatever Content-Length says."""
    too_big = too_large(limit)
    if declared_too_large(declared, limit):
        raise too_big
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_big
        parts.append(chunk)
    return b"".join(parts)


async def body_of(request: Request, limit: int) -> bytes:
    return await read_body(request.headers.get("content-length"), request.stream(), limit)


# The runs API's JSON bodies (parsed by the framework) ------------------------------------------

def _text(value: str) -> str:
    """Text, not a lone surrogate escape ("\\ud800" is JSON; the journal's UTF-8 cannot
    hold it, so it was a 500)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("holds a lone surrogate escape (\\ud800-\\udfff), which is not "
                         "text") from None
    return value


Text = Annotated[str, AfterValidator(_text)]


class AnswerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")  # no `by`: the caller's token says who
    decision: Literal["approve", "reject"]
    comment: Text | None = None


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Text | None = None


class RerunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")  # it takes nothing: `by` is refused, not ignored


class UndoBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: Text | None = None
    dry_run: bool = False
